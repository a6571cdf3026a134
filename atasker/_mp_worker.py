"""The code that runs inside a worker process of the process pool.

Protocol over one duplex pipe per worker: the parent sends the pickled
``(function, args, kwargs)`` of one task at a time (an empty message means
"exit"); the worker answers each with the pickled ``(True, result)`` or
``(False, exception, traceback_text)``.  The worker owns nothing else: it
knows nothing of priorities or ids.

Nothing a task starts outlives the worker: on Linux the worker is a child
subreaper, so even a double-forked daemon stays in its process tree; it
lives in a process group of its own (signals meant for the terminal's or
a launcher's group are not for it: the supervisor decides its fate, and
the parent can end the group if the worker crashes); and whenever it
exits -- told to, or because the parent is gone -- it kills what is left
of its tree first, and does not wait for threads a task left running.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any, NoReturn

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_PR_SET_CHILD_SUBREAPER = 36


def _watch_parent(sentinel: int) -> None:
    """Exit at once when the parent process is gone."""
    from multiprocessing.connection import wait
    wait([sentinel])
    _exit(1)


def _become_subreaper() -> bool:
    """Linux: adopt orphaned descendants, so a task's double-forked
    daemon stays in this process's tree (where timeouts and exits find
    it).  Elsewhere such a daemon can escape.  Whether it worked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(
            _PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap() -> None:
    """Collect the exit status of every child that has ended, adopted
    orphans above all (nobody else waits for them: they would stay
    zombies).  A task's own child that ended is collected too: a process
    a task started is not waited for after the task returned."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


_SUBREAPER = False


def _exit(code: int) -> NoReturn:
    """Kill what is left of this process's tree, then exit at once,
    without waiting for threads a task left running."""
    try:
        import psutil
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except Exception:   # noqa: S110 -- exiting whatever happens
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:   # noqa: S110 -- a closed or broken stream
            pass
    os._exit(code)


def _failure(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(type(exc), exc,
                                              exc.__traceback__))
    try:
        return pickle.dumps((False, exc, text), _PROTOCOL)
    except Exception as pickling_error:   # an unpicklable exception
        substitute = RuntimeError(
            f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} "
            f"(the exception could not be pickled: {pickling_error})")
        return pickle.dumps((False, substitute, text), _PROTOCOL)


def run_one(data: bytes) -> bytes:
    """Run one pickled task; return the pickled outcome."""
    try:
        function, args, kwargs = pickle.loads(data)
        result: Any = function(*args, **kwargs)
    except BaseException as exc:   # reported to the parent, never raised
        return _failure(exc)
    try:
        return pickle.dumps((True, result), _PROTOCOL)
    except Exception as exc:
        return _failure(TypeError(
            f"the result of the task, a {type(result).__name__}, could not "
            f"be pickled: {exc}"))


def worker_main(conn: Any) -> None:
    """Serve tasks from *conn* until told to exit or the parent is gone."""
    # Ctrl-C in a terminal reaches the whole process group; the parent
    # decides what happens to the work, so the workers ignore it, and
    # leave the group (a launcher such as GNU timeout signals it all)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
    except OSError:     # e.g. already a session leader
        pass
    global _SUBREAPER
    _SUBREAPER = _become_subreaper()
    import multiprocessing
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent.sentinel,),
                         name="atasker_parent_watch", daemon=True).start()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            break                   # the parent closed the pipe
        if not data:
            break
        answer = run_one(data)
        if _SUBREAPER:
            _reap()
        try:
            conn.send_bytes(answer)
        except OSError:             # the task closed the pipe
            break
    _exit(0)
