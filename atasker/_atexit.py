"""Run functions at interpreter exit, before threads are joined.

As ``concurrent.futures`` does: then queued work may still drain and pool
threads may still be started.  Where that hook does not exist, ``atexit``
serves instead.  The functions run in the order they were registered
(supervisors drain before the status servers close), each guarded: one
that fails is logged and the next still runs.

State: ``_hooks`` is appended to at import time only (module imports are
serialised by the import lock).
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Callable

logger = logging.getLogger("atasker")

_hooks: list[Callable[[], None]] = []


def before_threads_join(fn: Callable[[], None]) -> None:
    """Call *fn* at exit, before the interpreter joins its threads."""
    _hooks.append(fn)


def _run_hooks() -> None:
    for fn in _hooks:
        try:
            fn()
        except BaseException:  # noqa: B036 -- the next one still runs
            logger.exception("atasker exit hook %r failed", fn)


_register = getattr(threading, "_register_atexit", None)
if _register is not None:
    _register(_run_hooks)
else:  # pragma: no cover
    atexit.register(_run_hooks)
