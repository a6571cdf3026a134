"""Run a function at interpreter exit, before threads are joined.

As ``concurrent.futures`` does: then queued work may still drain and pool
threads may still be started.  Where that hook does not exist, ``atexit``
serves instead.
"""

from __future__ import annotations

import atexit
import threading
from typing import Callable

_register = getattr(threading, "_register_atexit", None)


def before_threads_join(fn: Callable[[], None]) -> None:
    """Call *fn* at exit, before the interpreter joins its threads."""
    if _register is not None:
        _register(fn)
    else:  # pragma: no cover
        atexit.register(fn)
