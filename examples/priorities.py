import threading

from atasker import TASK_CRITICAL, TASK_HIGH, TASK_LOW, TaskSupervisor

# 2 slots for low tasks, +1 for normal, +1 for high; critical always starts
supervisor = TaskSupervisor(pool_size=2, reserve_normal=1, reserve_high=1)
gate = threading.Event()
order = []


def job(name):
    gate.wait()
    order.append(name)


ids = [supervisor.put_task(job, args=(f"low-{n}",), priority=TASK_LOW)
       for n in range(4)]
ids.append(supervisor.put_task(job, args=("high",), priority=TASK_HIGH))
ids.append(supervisor.put_task(job, args=("critical",),
                               priority=TASK_CRITICAL))
info = supervisor.get_info()
print("running:", info.thread_tasks_count, "queued:", info.thread_queue)
gate.set()
supervisor.wait_completed(ids)
print(order.index("low-3") > order.index("high"))   # True
supervisor.stop()
