"""``Locker``: a lock that reports instead of deadlocking silently."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Optional, TypeVar

from ._validation import timeout_arg

logger = logging.getLogger("atasker")

F = TypeVar("F", bound=Callable[..., Any])


class Locker:
    """A lock with an acquisition timeout and a hook for when it expires.

    Use it as a decorator or a context manager.  If the lock cannot be taken
    within *timeout* seconds, the event is logged as critical and
    :meth:`critical` is called (override it, or assign a function to
    ``critical``); then the decorated function returns ``None`` without
    running, while the ``with`` block raises ``TimeoutError``::

        lock = Locker(mod="db", timeout=5)

        @lock
        def update():
            ...

        with lock:
            ...

    Args:
        mod: a name for log messages.
        timeout: seconds to wait for the lock (``None`` or ``inf`` waits
            for ever).
        relative: ``True`` for a re-entrant lock (``RLock``), ``False`` for a
            plain ``Lock``.
    """

    def __init__(self, mod: str = "main", timeout: Optional[float] = 5,
                 relative: bool = True) -> None:
        timeout_arg("timeout", timeout)     # checked now, read at each use
        self.lock = threading.RLock() if relative else threading.Lock()
        self.mod = mod
        self.relative = relative
        self.timeout = timeout

    def _acquire(self, what: str) -> bool:
        if self.lock.acquire(timeout=timeout_arg("timeout", self.timeout)):
            return True
        logger.critical("%s: lock not acquired within %s s (%s)", self.mod,
                        self.timeout, what)
        try:
            self.critical()
        except Exception:
            logger.exception("%s: Locker.critical() raised", self.mod)
        return False

    def __call__(self, f: F) -> F:
        @functools.wraps(f)
        def locked(*args: Any, **kwargs: Any) -> Any:
            if not self._acquire(getattr(f, "__qualname__", repr(f))):
                return None
            try:
                return f(*args, **kwargs)
            finally:
                self.lock.release()

        return locked  # type: ignore[return-value]

    def __enter__(self) -> "Locker":
        if not self._acquire("with block"):
            raise TimeoutError(
                f"{self.mod}: lock not acquired within {self.timeout} s")
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.lock.release()

    def critical(self) -> None:
        """Called when the lock times out; does nothing unless overridden."""
