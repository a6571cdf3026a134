"""Function and task collections: run a set of functions in priority order."""

from __future__ import annotations

import traceback
from typing import Any, Callable, Optional, cast

from ._constants import TASK_NORMAL, TASK_STATUS_COMPLETED
from ._default import resolve_supervisor
from ._supervisor import TaskSupervisor
from ._validation import check_callable, check_priority


def _key(f: Callable[..., Any]) -> str:
    return f"{f.__module__}.{f.__name__}"


class FunctionCollection:
    """Functions run one by one, most urgent priority first.

    Register with ``@c``, ``@c(priority=TASK_HIGH)`` or :meth:`append`; call
    :meth:`run` (or the collection itself with no arguments) to get
    ``{"module.function": result}``, or :meth:`execute` to get that dict and
    whether every function succeeded::

        startup = FunctionCollection(on_error=report)

        @startup(priority=TASK_HIGH)
        def open_db():
            return "db ok"

        results, all_ok = startup.execute()

    Args:
        on_error: called as ``on_error(**on_error_kwargs)`` after a function
            raised (from inside an ``except`` block, so
            ``traceback.print_exc()`` works).  Without it the exception
            propagates and the remaining functions do not run.
        on_error_kwargs: keyword arguments for ``on_error``.
        include_exceptions: put ``(exception, traceback text)`` in the
            result of a failed function instead of ``None``.
    """

    def __init__(self, on_error: Optional[Callable[..., Any]] = None,
                 on_error_kwargs: Optional[dict] = None,
                 include_exceptions: bool = False) -> None:
        check_callable("on_error", on_error)
        self.on_error = on_error
        self.on_error_kwargs = dict(on_error_kwargs or {})
        self.include_exceptions = bool(include_exceptions)
        self.default_priority = TASK_NORMAL
        self._functions: list[tuple[int, int, Callable[..., Any]]] = []
        self._seq = 0

    def __call__(self, f: Optional[Callable[..., Any]] = None, *,
                 priority: Optional[int] = None) -> Any:
        if f is not None:
            self.append(f, priority=priority)
            return f
        if priority is not None:
            def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
                self.append(func, priority=priority)
                return func
            return decorator
        return self.run()

    def append(self, f: Callable[..., Any],
               priority: Optional[int] = None) -> None:
        """Add *f* (once; adding it again does nothing)."""
        check_callable("f", f, optional=False)
        if priority is None:
            priority = self.default_priority
        check_priority(priority)
        if any(func is f for _, _, func in self._functions):
            return
        self._seq += 1
        self._functions.append((priority, self._seq, f))

    def remove(self, f: Callable[..., Any]) -> None:
        """Remove *f*; ``ValueError`` if it is not in the collection."""
        for entry in self._functions:
            if entry[2] is f:
                self._functions.remove(entry)
                return
        raise ValueError(f"{f!r} is not in the collection")

    def _ordered(self) -> list[Callable[..., Any]]:
        return [f for _, _, f in sorted(self._functions,
                                        key=lambda e: e[:2])]

    def run(self) -> dict:
        """Run every function; return ``{"module.function": result}``."""
        return self.execute()[0]

    def execute(self) -> tuple[dict, bool]:
        """Run every function; return ``(results, all_ok)``."""
        results: dict = {}
        all_ok = True
        for f in self._ordered():
            try:
                results[_key(f)] = f()
            except Exception as exc:
                all_ok = False
                results[_key(f)] = self._failed(exc)
                self._error()
        return results, all_ok

    def _failed(self, exc: BaseException) -> Any:
        if self.include_exceptions:
            return (exc, "".join(traceback.format_exception(
                type(exc), exc, exc.__traceback__)))
        return None

    def _error(self) -> None:
        if self.on_error is None:
            raise
        self.on_error(**self.on_error_kwargs)


class TaskCollection(FunctionCollection):
    """Like :class:`FunctionCollection`, but every function runs as a
    thread task of *supervisor* (submitted in priority order) and
    :meth:`execute` returns once all of them have ended.

    Without ``on_error`` the first failure (in priority order) is raised
    after all tasks have ended; with it, ``on_error`` is called once per
    failure, in the calling thread.
    """

    def __init__(self, on_error: Optional[Callable[..., Any]] = None,
                 on_error_kwargs: Optional[dict] = None,
                 include_exceptions: bool = False,
                 supervisor: Optional[TaskSupervisor] = None) -> None:
        super().__init__(on_error, on_error_kwargs, include_exceptions)
        self.supervisor = resolve_supervisor(supervisor)

    def execute(self) -> tuple[dict, bool]:
        supervisor = self.supervisor
        functions = [(f, p) for p, _, f in sorted(self._functions,
                                                  key=lambda e: e[:2])]
        ids = [supervisor.put_task(f, priority=p) for f, p in functions]
        records = supervisor._engine.registry.wait(ids, None)
        results: dict = {}
        all_ok = True
        failures: list[BaseException] = []
        for (f, _), info in zip(functions, records):
            if info.status == TASK_STATUS_COMPLETED:
                results[_key(f)] = info.result
            else:
                all_ok = False
                exc = cast(BaseException, info.exception)
                results[_key(f)] = self._failed(exc)
                failures.append(exc)
        for exc in failures:
            if self.on_error is None:
                raise exc
            try:    # on_error runs inside except, as for FunctionCollection
                raise exc
            except BaseException:
                self.on_error(**self.on_error_kwargs)
        return results, all_ok
