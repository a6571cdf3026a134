"""A small service for ``atasker run examples/app.py``.

An init task runs first, a task queues a batch of jobs, and a timer
reports progress every half second until the batch is done.  Run it with
``atasker run examples/app.py --status-port 8765`` and watch it with
``atasker status http://127.0.0.1:8765/`` or a browser; Ctrl-C drains the
queued jobs before it exits.  ``python examples/app.py`` runs it until the
batch is done.
"""

import sys
import threading
import time

from atasker import TASK_LOW, task_supervisor

JOBS = 20
task_supervisor.set_thread_pool(pool_size=2, reserve_normal=0,
                                reserve_high=0)
done = []
done_lock = threading.Lock()


@task_supervisor.init_task
def connect():
    print("init: connected", flush=True)


def job(n):
    time.sleep(0.1)         # stands in for real work
    with done_lock:
        done.append(n)
    print(f"job {n} done", flush=True)


@task_supervisor.task
def enqueue_jobs():
    for n in range(JOBS):
        task_supervisor.put_task(job, args=(n,), priority=TASK_LOW)
    print(f"queued {JOBS} jobs", flush=True)


@task_supervisor.timer(interval=0.5)
def progress():
    print(f"progress: {len(done)} of {JOBS} jobs done", flush=True)
    return len(done) < JOBS     # False stops the timer


if __name__ == "__main__":
    sys.exit(task_supervisor.run(until_complete=True))
