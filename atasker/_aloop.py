"""aloops: named asyncio event loops, each running in a thread of its own.

State
-----
``ALoop._lock`` guards ``_state``, ``_loop`` and ``_thread``.  The state
moves ``new → running → stopping → stopped`` (and ``stopped → running`` on
a new :meth:`ALoop.start`) only under the lock, and the loop's thread is
started under it, so concurrent ``start()`` calls make one thread.  A
coroutine is handed to the loop (:meth:`ALoop.schedule`) under the lock
and only while running: everything handed over before ``stop()`` is
already queued on the loop when the wind-down begins, so it is awaited or
canceled, never left pending on a closed loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import weakref
from typing import Any, Coroutine, Optional, Union

from ._validation import deadline_of, time_left

logger = logging.getLogger("atasker.aio")

_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", \
    "stopped"


class ALoop:
    """An asyncio loop that runs in its own thread, ``supervisor_aloop_<name>``.

    Coroutines are handed to it from any thread::

        aloop = task_supervisor.create_aloop("io", default=True)
        future = aloop.background_task(fetch(url))   # concurrent Future
        page = aloop.run(fetch(url))                 # blocks for the result

    Guarantees: :meth:`stop` ends the thread and closes the loop; tasks still
    on the loop are awaited (or canceled with ``cancel_tasks=True``, or once
    a bounded wait runs out), never abandoned half-way.
    """

    def __init__(self, name: str, supervisor: Any = None,
                 daemon: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"aloop name must be a non-empty str, got "
                            f"{name!r}")
        self.name = name
        # held weakly: a running loop must not keep its supervisor alive
        self._supervisor: Optional[weakref.ref] = None
        self.supervisor = supervisor
        self.daemon = daemon
        self._lock = threading.Lock()
        self._state = _NEW
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def supervisor(self) -> Any:
        """The supervisor this aloop belongs to (``None`` if none or gone)."""
        return None if self._supervisor is None else self._supervisor()

    @supervisor.setter
    def supervisor(self, supervisor: Any) -> None:
        self._supervisor = None if supervisor is None \
            else weakref.ref(supervisor)

    def __repr__(self) -> str:
        state = "active" if self.is_active() else "inactive"
        return f"<ALoop {self.name} {state}>"

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start the loop's thread (does nothing if it runs).

        Raises ``RuntimeError`` while a :meth:`stop` is still winding down.
        """
        with self._lock:
            if self._state == _RUNNING:
                return
            if self._state == _STOPPING:
                raise RuntimeError(
                    f"aloop {self.name} is stopping; start it again once "
                    f"stop() has returned")
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(
                target=self._serve, args=(loop, started),
                name=f"supervisor_aloop_{self.name}", daemon=self.daemon)
            self._loop, self._thread, self._state = loop, thread, _RUNNING
            thread.start()          # under the lock: one thread, always
        started.wait()

    def _serve(self, loop: asyncio.AbstractEventLoop,
               started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()
            with self._lock:
                if self._thread is threading.current_thread():
                    self._state = _STOPPED

    def is_active(self) -> bool:
        """True while the loop runs and accepts coroutines."""
        return self._state == _RUNNING

    def owns(self, thread: threading.Thread) -> bool:
        """Whether *thread* is this aloop's thread."""
        return thread is self._thread

    def get_loop(self) -> asyncio.AbstractEventLoop:
        """The underlying asyncio loop (for ``run_coroutine_threadsafe``).

        Raises ``RuntimeError`` if the aloop has not been started.
        """
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                raise RuntimeError(f"aloop {self.name} is not started")
            return self._loop

    def stop(self, wait: Union[bool, float] = True,
             cancel_tasks: bool = False) -> None:
        """Stop the loop.

        Tasks on the loop are awaited first -- with ``cancel_tasks=True``
        they are canceled instead.  ``wait=True`` returns when the thread has
        ended; a number of seconds bounds the whole stop (tasks still
        running then are canceled); ``False`` returns at once.
        """
        deadline = deadline_of("wait", wait)
        self.request_stop(cancel_tasks, deadline)
        if wait is not False:
            self.join(deadline)

    def request_stop(self, cancel_tasks: bool,
                     deadline: Optional[float]) -> None:
        """Begin :meth:`stop` without waiting: tasks still running at the
        monotonic *deadline* (if any) are canceled."""
        with self._lock:
            if self._state != _RUNNING:
                return
            self._state = _STOPPING
            loop = self._loop
            # under the lock: queued after every coroutine handed over
            asyncio.run_coroutine_threadsafe(
                _wind_down(cancel_tasks, deadline), loop)  # type: ignore

    def join(self, deadline: Optional[float]) -> None:
        """Wait for the thread to end, until *deadline* at most."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(time_left(deadline))

    def reset_after_fork(self) -> None:
        """In a forked child: the loop's thread does not exist there."""
        self._lock = threading.Lock()
        self._state = _STOPPED if self._state != _NEW else _NEW
        self._loop = self._thread = None

    # -- running coroutines --------------------------------------------------
    def schedule(self, coro: Coroutine[Any, Any, Any]
                 ) -> concurrent.futures.Future:
        """Hand *coro* to the loop; ``RuntimeError`` (and *coro* closed)
        unless the aloop is running."""
        with self._lock:
            if self._state == _RUNNING:
                return asyncio.run_coroutine_threadsafe(
                    coro, self._loop)  # type: ignore[arg-type]
        coro.close()
        raise RuntimeError(f"aloop {self.name} is not running")

    def background_task(self, coro: Coroutine[Any, Any, Any]
                        ) -> concurrent.futures.Future:
        """Schedule *coro* on the loop; return a ``concurrent.futures``
        Future of its result."""
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"background_task() needs a coroutine, got "
                            f"{coro!r}")
        return self.schedule(coro)

    def run(self, coro: Coroutine[Any, Any, Any],
            timeout: Optional[float] = None) -> Any:
        """Run *coro* on the loop and block until it returns (or raises).

        Must not be called from the loop's own thread (it would wait for
        itself): that raises ``RuntimeError``.
        """
        if self.owns(threading.current_thread()):
            coro.close()
            raise RuntimeError(f"ALoop.run() called from aloop {self.name}'s "
                               f"own thread; await the coroutine instead")
        return self.background_task(coro).result(timeout)


async def _wind_down(cancel_tasks: bool, deadline: Optional[float]) -> None:
    """Await (or cancel) every other task on the loop, then stop it.

    Tasks that tasks start meanwhile are waited for too.  Once *deadline*
    has passed, what is left is canceled.
    """
    me = asyncio.current_task()
    while True:
        others = [t for t in asyncio.all_tasks() if t is not me]
        if not others:
            break
        if not cancel_tasks:
            left = time_left(deadline)
            _, pending = await asyncio.wait(others, timeout=left)
            if pending and left is not None \
                    and time.monotonic() >= deadline:  # type: ignore
                cancel_tasks = True
            continue
        for task in others:
            task.cancel()
        await asyncio.wait(others)
    asyncio.get_running_loop().stop()
