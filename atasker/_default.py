"""The global supervisor, as the modules below the facade see it.

``_supervisor`` makes ``task_supervisor`` and registers it here; the
clients that take ``supervisor=None`` (tasks, workers, collections) resolve
it here, so they need not import the facade (which imports them: the app
runner's ``timer()``/``worker()`` make workers).
"""

from __future__ import annotations

from typing import Any, Optional

_kind: Optional[type] = None
_global: Any = None


def register(kind: type, instance: Any) -> None:
    """Called once, by ``_supervisor``, with the class and the global one."""
    global _kind, _global
    _kind, _global = kind, instance


def resolve_supervisor(supervisor: Any) -> Any:
    """*supervisor*, or the global one for ``None``; ``TypeError`` for
    anything that is not a ``TaskSupervisor``."""
    if supervisor is None:
        return _global
    if _kind is None or not isinstance(supervisor, _kind):
        raise TypeError(f"supervisor must be a TaskSupervisor, got "
                        f"{supervisor!r}")
    return supervisor
