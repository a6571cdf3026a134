import threading

from atasker import TASK_LOW, background_worker, task_supervisor

resized, beaten, barked = threading.Event(), threading.Event(), threading.Event()
seen = []


@background_worker(q=True, workers=2)
def resize(path, **kwargs):
    seen.append(path)
    if len(seen) == 3:
        resized.set()


@background_worker(interval=0.05, priority=TASK_LOW)
def heartbeat(_worker, **kwargs):
    _worker.beats = getattr(_worker, "beats", 0) + 1
    if _worker.beats == 3:
        beaten.set()
        return False            # stops the worker


@background_worker(timer=True, delay=0.1)
def watchdog(**kwargs):
    barked.set()


resize.start()
heartbeat.start()
watchdog.start()
for name in ("a.png", "b.png", "c.png"):
    resize.put(name)        # thread-safe; blocks while the queue is full
watchdog.reset()            # pushed back to the full delay again
resized.wait(), beaten.wait(), barked.wait()
print(sorted(seen), heartbeat.beats)
task_supervisor.stop()      # stops the workers, then waits for the tasks
print(resize.is_active(), heartbeat.is_active(), watchdog.is_active())
