import threading

from atasker import TASK_CRITICAL, TASK_HIGH, TASK_LOW, TaskSupervisor

# 2 slots for low tasks, +1 for normal, +1 for high; critical always starts
supervisor = TaskSupervisor(pool_size=2, reserve_normal=1, reserve_high=1)
gate = threading.Event()
tasks = {}
for name, priority in [("low-1", TASK_LOW), ("low-2", TASK_LOW),
                       ("low-3", TASK_LOW), ("high", TASK_HIGH),
                       ("critical", TASK_CRITICAL)]:
    tasks[name] = supervisor.put_task(gate.wait, priority=priority)

for name, task_id in tasks.items():
    status = supervisor.get_task_info(task_id).status
    print(name, "running" if status == 1 else "queued")
# low-1 running, low-2 running, low-3 queued, high running, critical running
info = supervisor.get_info()
print("running:", info.thread_tasks_count, "queued:", info.thread_queue)
gate.set()
supervisor.stop()
