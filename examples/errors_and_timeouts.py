import threading
from concurrent.futures import CancelledError

from atasker import TaskSupervisor, TaskTimeoutError

supervisor = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
release = threading.Event()

# a task that fails: its exception reaches whoever waits for it
failing = supervisor.put_task(int, args=("not a number",))
try:
    supervisor.wait_completed(failing)
except ValueError as exc:
    print("failed:", exc)

# a task that runs too long is failed with TaskTimeoutError
slow = supervisor.put_task(release.wait, timeout=0.1)
try:
    supervisor.wait_completed(slow)
except TaskTimeoutError as exc:
    print("timed out:", exc.timeout)

# the slow thread still holds the only slot, so this one waits: cancel it
waiting = supervisor.put_task(print, args=("never printed",))
print("canceled:", supervisor.cancel_task(waiting))
try:
    supervisor.wait_completed(waiting)
except CancelledError:
    print("waiting task was canceled")

release.set()
supervisor.stop()
