"""The engine's aloops and the coroutine tasks (``TT_COROUTINE``) on them.

Coroutine tasks have no slots: they start as soon as their event loop runs
them.  :class:`Aloops` is their pool, behind the same interface as the
thread and process pools, and the registry of the engine's named aloops.

State
-----
Guarded by the engine's lock: ``_aloops`` (name → :class:`ALoop`),
``_default`` and ``_queued`` (coroutine tasks handed to a loop and not yet
started).  ``_create_lock`` serialises making the implicit ``default``
aloop; it is taken before, never inside, the engine's lock.  A queued
coroutine task's ``_runner`` is the loop it goes to (an :class:`ALoop` or
an asyncio loop); a running one's is its ``asyncio.Task``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Optional, Union

from ._aloop import ALoop
from ._constants import SUPERVISOR_RUNNING, TASK_STATUS_QUEUED, \
    TT_COROUTINE
from ._pool import Outcome, Owner
from ._taskinfo import TaskInfo, log_failure


class Aloops:
    """Named aloops and the coroutine tasks of one engine."""

    tt = TT_COROUTINE

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._lock = owner.lock
        self._aloops: dict[str, ALoop] = {}
        self._default: Optional[ALoop] = None
        self._queued: set[TaskInfo] = set()
        self._create_lock = threading.Lock()

    # -- the registry ------------------------------------------------------
    def create(self, name: str, daemon: bool, start: bool, default: bool,
               supervisor: Any) -> ALoop:
        aloop = ALoop(name, supervisor=supervisor, daemon=daemon)
        with self._lock:
            if name in self._aloops:
                raise ValueError(f"aloop {name!r} already exists")
            self._aloops[name] = aloop
            if default:
                self._default = aloop
        if start:
            aloop.start()
        return aloop

    def get(self, name: Optional[str], default: bool = True
            ) -> Optional[ALoop]:
        with self._lock:
            if name is None:
                return self._default if default else None
            return self._aloops.get(name)

    def named(self, name: str) -> ALoop:
        """The aloop *name*; ``KeyError`` if there is none."""
        aloop = self.get(name)
        if aloop is None:
            raise KeyError(f"no aloop named {name!r}")
        return aloop

    def set_default(self, aloop: Union[ALoop, str]) -> None:
        with self._lock:
            if isinstance(aloop, str):
                if aloop not in self._aloops:
                    raise KeyError(f"no aloop named {aloop!r}")
                aloop = self._aloops[aloop]
            elif not isinstance(aloop, ALoop):
                raise TypeError(f"aloop must be an ALoop or a name, got "
                                f"{aloop!r}")
            self._aloops.setdefault(aloop.name, aloop)
            self._default = aloop

    def count(self) -> int:
        """How many aloops there are (a lock-free read)."""
        return len(self._aloops)

    def all_locked(self) -> list[ALoop]:
        return list(self._aloops.values())

    def mapping_locked(self) -> dict[str, ALoop]:
        return dict(self._aloops)

    def stop_all(self, cancel_tasks: bool, deadline: Optional[float],
                 wait: bool) -> None:
        """Stop every aloop: all are asked first, then joined until the
        monotonic *deadline* (with *wait*)."""
        with self._lock:
            aloops = list(self._aloops.values())
        for aloop in aloops:
            aloop.request_stop(cancel_tasks, deadline)
        if wait:
            for aloop in aloops:
                aloop.join(deadline)

    # -- the pool interface ------------------------------------------------
    def prepare(self, target: Any, args: tuple, kwargs: dict, task_id: str,
                loop: Any) -> tuple[Any, Any, Any]:
        return args, kwargs, self._resolve(loop)

    def _resolve(self, loop: Any) -> Any:
        """The loop a coroutine task given ``loop=`` goes to."""
        if self._owner.state != SUPERVISOR_RUNNING:     # raced stop()
            raise RuntimeError(f"supervisor {self._owner.id} is stopped")
        if loop is None:
            with self._create_lock:
                aloop = self.get(None) or self.get("default")
                if aloop is None:
                    aloop = self.create("default", daemon=False, start=False,
                                        default=True, supervisor=None)
                self.set_default(aloop)
                if not aloop.is_active():
                    aloop.start()       # e.g. after a stop() and start()
            return aloop
        if isinstance(loop, str):
            loop = self.named(loop)
        if isinstance(loop, ALoop):
            if not loop.is_active():
                raise RuntimeError(f"aloop {loop.name} is not running")
            return loop
        if isinstance(loop, asyncio.AbstractEventLoop):
            if loop.is_closed():
                raise RuntimeError("the event loop given as loop= is closed")
            return loop
        raise TypeError(f"loop must be an ALoop, an aloop name or an asyncio "
                        f"event loop, got {loop!r}")

    def push_locked(self, record: TaskInfo) -> TaskInfo:
        self._queued.add(record)
        return record

    def launch(self, record: TaskInfo) -> None:
        """Hand a queued coroutine task to its event loop."""
        runner = self._run(record)
        try:
            loop = record._runner
            if isinstance(loop, ALoop):
                loop.schedule(runner)
            else:
                asyncio.run_coroutine_threadsafe(runner, loop)
        except RuntimeError as exc:         # the loop stopped meanwhile
            runner.close()
            with self._lock:
                if record.status != TASK_STATUS_QUEUED:
                    return
                self._queued.discard(record)
                self._owner.start_locked(record)    # a failure needs a start
                due = self._owner.finish_locked(record, (False, exc))
            if due:
                self._owner.after(record)

    def remove_locked(self, record: TaskInfo) -> None:
        self._queued.discard(record)

    def drain_locked(self) -> list[TaskInfo]:
        records = list(self._queued)
        self._queued.clear()
        return records

    def kill(self, record: TaskInfo) -> bool:
        task = record._runner
        if isinstance(task, asyncio.Task):
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)
            except RuntimeError:    # its loop has closed: it has ended
                pass
        return True

    def shutdown_locked(self) -> None:
        pass        # the engine stops the aloops against its deadline

    def restart_locked(self) -> None:
        pass

    def abandon(self) -> None:
        pass        # the engine stops the aloops with cancel_tasks

    def join(self, deadline: Optional[float]) -> None:
        with self._lock:
            aloops = list(self._aloops.values())
        for aloop in aloops:
            aloop.join(deadline)

    def owns(self, thread: threading.Thread) -> bool:
        return any(aloop.owns(thread)
                   for aloop in tuple(self._aloops.values()))

    def reset_after_fork(self) -> None:
        self._queued = set()
        self._create_lock = threading.Lock()
        for aloop in self._aloops.values():
            aloop.reset_after_fork()

    # -- a coroutine task, on its loop ---------------------------------------
    async def _run(self, record: TaskInfo) -> None:
        owner = self._owner
        with self._lock:
            if record.status != TASK_STATUS_QUEUED:
                return                      # canceled meanwhile
            self._queued.discard(record)
            record._runner = asyncio.current_task()
            owner.start_locked(record)
        owner.emit_started(record)
        outcome: Outcome
        try:
            context = owner.task_context
            if context is None:
                outcome = True, await record.task(
                    *record._args, **record._kwargs)  # type: ignore[arg-type]
            else:
                with context():
                    outcome = True, await record.task(
                        *record._args,
                        **record._kwargs)  # type: ignore[arg-type]
        except asyncio.CancelledError as exc:
            # the aloop was stopped with cancel_tasks, or the task timed
            # out (then it has already failed): not a fault of its code
            outcome = False, exc
        except BaseException as exc:  # noqa: B036 -- delivered to its owner
            log_failure(record, exc)
            outcome = False, exc
        with self._lock:
            record._runner = None
            due = owner.finish_locked(record, outcome)
        del outcome
        if due:
            owner.after(record)
