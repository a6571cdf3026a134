"""``g``: a thread-local namespace with a small dict-like API."""

from __future__ import annotations

import threading
from typing import Any


class LocalProxy(threading.local):
    """Attributes visible only to the thread that set them.

    Pool threads are reused, so a value set by one task is still there for
    the next task on the same thread: use it for per-thread resources (a
    database connection), not per-task state::

        if not g.has("db"):
            g.set("db", connect())
    """

    def get(self, attr: str, default: Any = None) -> Any:
        """The attribute's value in this thread, or *default*."""
        return getattr(self, attr, default)

    def has(self, attr: str) -> bool:
        """Whether the attribute is set in this thread."""
        return hasattr(self, attr)

    def set(self, attr: str, value: Any) -> None:
        """Set the attribute for this thread."""
        setattr(self, attr, value)

    def clear(self, attr: str) -> None:
        """Delete the attribute in this thread (no error if unset)."""
        if hasattr(self, attr):
            delattr(self, attr)


g = LocalProxy()
