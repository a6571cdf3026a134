"""The code that runs inside a worker process of the process pool.

Protocol over one duplex pipe per worker: the parent sends the pickled
``(function, args, kwargs)`` of one task at a time (an empty message means
"exit"); the worker answers each with the pickled ``(True, result)`` or
``(False, exception, traceback_text)``.  The worker owns nothing else: it
knows nothing of priorities or ids.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import traceback
from typing import Any

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _watch_parent(sentinel: int) -> None:
    """Exit at once when the parent process is gone."""
    from multiprocessing.connection import wait
    wait([sentinel])
    os._exit(1)


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
    # decides what happens to the work, so the workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import multiprocessing
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_watch_parent, args=(parent.sentinel,),
                         name="atasker_parent_watch", daemon=True).start()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return                  # the parent closed the pipe
        if not data:
            return
        conn.send_bytes(run_one(data))
