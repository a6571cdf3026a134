"""Functions run by process-pool tests: they must be importable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading


def add(a, b=0):
    return a + b


def noop():
    return None


def with_task_id(x, _task_id=None):
    return x, _task_id


def with_kwargs(x, **kwargs):
    return x, kwargs.get("_task_id")


def pid(_=None):
    return os.getpid()


def fail(message):
    raise ValueError(message)


class Unpicklable(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()      # cannot be pickled


def fail_unpicklable():
    raise Unpicklable("cannot travel")


def return_unpicklable():
    return threading.Lock()


def exit_hard(code):
    os._exit(code)


def kill_self():
    os.kill(os.getpid(), signal.SIGKILL)


def wait_fifo(path, tag=None):
    """Block until the parent opens *path* (a FIFO) for writing and closes
    it; return *tag*.  The parent's open() returns once this task runs."""
    with open(path, "rb") as fifo:
        fifo.read()
    return tag


def spawn_child_and_wait(path):
    """Start a child process, report its pid through the FIFO, then block
    for ever (until killed)."""
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; time.sleep(3600)"])
    with open(path, "w") as fifo:
        fifo.write(str(child.pid))
    threading.Event().wait()


def tag(value):
    return value


def segfault():
    import ctypes
    ctypes.string_at(0)


from atasker import BackgroundQueueWorker  # noqa: E402


class DoublingWorker(BackgroundQueueWorker):
    """Runs in the process pool; results come back to process_result."""

    def __init__(self, expected, **kwargs):
        super().__init__(**kwargs)
        self.expected = expected
        self.results = []
        self.done = threading.Event()

    @staticmethod
    def run(item, _task_id=None):
        return item * 2, os.getpid()

    def process_result(self, result):
        self.results.append(result)
        if len(self.results) == self.expected:
            self.done.set()
            return False


def close_own_pipe_and_wait(path):
    """Say "started" through the FIFO, close the worker's pipe to the
    parent, then keep running (for ever, until killed)."""
    import gc
    from multiprocessing.connection import Connection
    with open(path, "w") as fifo:
        fifo.write("started")
    for obj in gc.get_objects():
        if isinstance(obj, Connection) and not obj.closed:
            obj.close()
    threading.Event().wait()


def leave_thread_behind():
    """Start a non-daemon thread that never ends, and return."""
    threading.Thread(target=threading.Event().wait, daemon=False).start()
    return "left"


_DAEMON = """\
import os, sys, time
if os.fork():
    os._exit(0)             # the intermediate exits: the daemon is orphaned
os.setsid()
with open(sys.argv[1], "w") as fifo:
    fifo.write(str(os.getpid()))
time.sleep(3600)
"""


def start_daemon_and_wait(path):
    """Double-fork a daemon (new session, parent gone) that reports its pid
    through the FIFO; then block for ever (until killed)."""
    subprocess.run([sys.executable, "-c", _DAEMON, path], check=True)
    threading.Event().wait()


def spawn_child_and_crash(path):
    """Start a child process, report its pid through the FIFO, then die by
    SIGKILL (a crashed worker)."""
    child = subprocess.Popen([sys.executable, "-c",
                              "import time; time.sleep(3600)"])
    with open(path, "w") as fifo:
        fifo.write(str(child.pid))
    os.kill(os.getpid(), signal.SIGKILL)


def report_pid_and_wait(path):
    """Write this process's pid to the FIFO, then block for ever (until
    the process is killed)."""
    with open(path, "w") as fifo:
        fifo.write(str(os.getpid()))
    threading.Event().wait()


def orphan_a_child():
    """Start a shell that leaves a short-lived child behind and exits:
    the child is orphaned (adopted by the worker, a subreaper)."""
    # the output pipe closes when the orphan has ended too: by the time
    # this returns it has exited (and waits to be reaped)
    subprocess.run(["sh", "-c", "true & exit 0"], check=True,
                   capture_output=True)
    return os.getpid()
