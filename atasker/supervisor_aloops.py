"""The supervisor's aloops and the coroutine tasks that run on them.

A mixin of :class:`atasker.TaskSupervisor`: its state (``_aloops``,
``_default_aloop``, and the records of coroutine tasks) is guarded by the
supervisor's ``_lock``, like everything else the supervisor owns;
``_aloop_create`` serialises making the implicit ``default`` aloop and is
taken before, never inside, ``_lock``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Optional, Union

from .aio import ALoop
from .constants import TASK_STATUS_QUEUED
from .taskinfo import TaskInfo, log_failure

__all__ = ["AloopsMixin"]


class AloopsMixin:
    """aloop management and coroutine tasks (see the module docstring)."""

    _lock: threading.Lock
    _aloops: dict[str, ALoop]
    _default_aloop: Optional[ALoop]
    _aloop_create: threading.Lock

    # provided by TaskSupervisor
    _start_locked: Callable[[TaskInfo], None]
    _finish_locked: Callable[[TaskInfo, tuple[bool, Any]], bool]
    _after: Callable[[TaskInfo], None]
    _emit: Callable[[str, TaskInfo], None]
    _hooks: dict
    _task_context: Optional[Callable[[], Any]]

    # ------------------------------------------------------------------
    # aloops
    # ------------------------------------------------------------------
    def create_aloop(self, name: str, daemon: bool = False,
                     start: bool = True, default: bool = False) -> ALoop:
        """Create an :class:`ALoop` named *name* (started unless
        ``start=False``; the default aloop if ``default=True``).

        Raises ``ValueError`` if the name is taken.
        """
        aloop = ALoop(name, supervisor=self, daemon=daemon)
        with self._lock:
            if name in self._aloops:
                raise ValueError(f"aloop {name!r} already exists")
            self._aloops[name] = aloop
            if default:
                self._default_aloop = aloop
        if start:
            aloop.start()
        return aloop

    def get_aloop(self, name: Optional[str] = None,
                  default: bool = True) -> Optional[ALoop]:
        """The aloop named *name*; with no name, the default aloop (if
        ``default``).  ``None`` if there is no such aloop."""
        with self._lock:
            if name is None:
                return self._default_aloop if default else None
            return self._aloops.get(name)

    def set_default_aloop(self, aloop: Union[ALoop, str]) -> None:
        """Make *aloop* (an :class:`ALoop` or its name) the default one."""
        with self._lock:
            if isinstance(aloop, str):
                if aloop not in self._aloops:
                    raise KeyError(f"no aloop named {aloop!r}")
                aloop = self._aloops[aloop]
            elif not isinstance(aloop, ALoop):
                raise TypeError(f"aloop must be an ALoop or a name, got "
                                f"{aloop!r}")
            self._aloops.setdefault(aloop.name, aloop)
            self._default_aloop = aloop

    def start_aloop(self, name: str) -> None:
        """Start the aloop named *name*."""
        self._named_aloop(name).start()

    def stop_aloop(self, name: str, wait: Union[bool, float] = True,
                   cancel_tasks: bool = False) -> None:
        """Stop the aloop named *name* (see :meth:`ALoop.stop`)."""
        self._named_aloop(name).stop(wait=wait, cancel_tasks=cancel_tasks)

    def _named_aloop(self, name: str) -> ALoop:
        with self._lock:
            aloop = self._aloops.get(name)
        if aloop is None:
            raise KeyError(f"no aloop named {name!r}")
        return aloop

    def _in_aloop_thread(self) -> bool:
        name = threading.current_thread().name
        with self._lock:
            return any(name == f"supervisor_aloop_{n}" for n in self._aloops)

    def _event_loop_for(self, loop: Any) -> asyncio.AbstractEventLoop:
        """The asyncio loop that a coroutine task given ``loop=`` runs on."""
        if loop is None:
            with self._aloop_create:
                aloop = self.get_aloop()
                if aloop is None:
                    aloop = self.get_aloop("default") or self.create_aloop(
                        "default", default=True)
                    self.set_default_aloop(aloop)
            if not aloop.is_active():
                aloop.start()           # e.g. after a stop() and start()
            loop = aloop
        elif isinstance(loop, str):
            loop = self._named_aloop(loop)
        if isinstance(loop, ALoop):
            if not loop.is_active():
                raise RuntimeError(f"aloop {loop.name} is not running")
            return loop.get_loop()
        if isinstance(loop, asyncio.AbstractEventLoop):
            if loop.is_closed():
                raise RuntimeError("the event loop given as loop= is closed")
            return loop
        raise TypeError(f"loop must be an ALoop, an aloop name or an asyncio "
                        f"event loop, got {loop!r}")

    # ------------------------------------------------------------------
    # coroutine tasks: they run on an event loop, outside the pools
    # ------------------------------------------------------------------
    def _launch_coroutine(self, record: TaskInfo) -> None:
        """Hand a queued coroutine task to its event loop."""
        runner = self._run_coroutine(record)
        try:
            asyncio.run_coroutine_threadsafe(runner, record._runner)
        except RuntimeError as exc:         # the loop has been closed
            runner.close()
            with self._lock:
                if record.status != TASK_STATUS_QUEUED:
                    return
                self._start_locked(record)
                due = self._finish_locked(record, (False, exc))
            if due:
                self._after(record)

    async def _run_coroutine(self, record: TaskInfo) -> None:
        with self._lock:
            if record.status != TASK_STATUS_QUEUED:
                return                      # canceled meanwhile
            record._runner = asyncio.current_task()
            self._start_locked(record)
        if self._hooks:
            self._emit("task_started", record)
        outcome: tuple[bool, Any]
        try:
            if self._task_context is None:
                outcome = True, await record.task(
                    *record._args, **record._kwargs)  # type: ignore[arg-type]
            else:
                with self._task_context():
                    outcome = True, await record.task(
                        *record._args,
                        **record._kwargs)  # type: ignore[arg-type]
        except asyncio.CancelledError as exc:
            # the aloop was stopped with cancel_tasks, or the task timed
            # out (then it has already failed): not a fault of its code
            outcome = False, exc
        except BaseException as exc:  # delivered to the task's owner
            log_failure(record, exc)
            outcome = False, exc
        with self._lock:
            record._runner = None
            due = self._finish_locked(record, outcome)
        del outcome
        if due:
            self._after(record)
