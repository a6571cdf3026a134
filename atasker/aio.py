"""aloops: named asyncio event loops, each running in a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Coroutine, Optional, Union

__all__ = ["ALoop"]

logger = logging.getLogger("atasker.aio")


class ALoop:
    """An asyncio loop that runs in its own thread, ``supervisor_aloop_<name>``.

    Coroutines are handed to it from any thread::

        aloop = task_supervisor.create_aloop("io", default=True)
        future = aloop.background_task(fetch(url))   # concurrent Future
        page = aloop.run(fetch(url))                 # blocks for the result

    Guarantees: :meth:`stop` ends the thread and closes the loop; tasks still
    on the loop are awaited (or canceled with ``cancel_tasks=True``), never
    abandoned half-way.

    ``_lock`` guards ``_loop``, ``_thread`` and ``_stopping``.
    """

    def __init__(self, name: str, supervisor: Any = None,
                 daemon: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"aloop name must be a non-empty str, got "
                            f"{name!r}")
        self.name = name
        self.supervisor = supervisor
        self.daemon = daemon
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def __repr__(self) -> str:
        state = "active" if self.is_active() else "inactive"
        return f"<ALoop {self.name} {state}>"

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        """Start the loop's thread (does nothing if it runs)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                if self._stopping:
                    raise RuntimeError(
                        f"aloop {self.name} is stopping; start it again "
                        f"once stop() has returned")
                return
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(
                target=self._serve, args=(loop, started),
                name=f"supervisor_aloop_{self.name}", daemon=self.daemon)
            self._loop, self._thread, self._stopping = loop, thread, False
        thread.start()
        started.wait()

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop,
               started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()

    def is_active(self) -> bool:
        """True while the loop runs and accepts coroutines."""
        with self._lock:
            return (self._thread is not None and self._thread.is_alive()
                    and not self._stopping)

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
        ended, a number bounds that wait (tasks still running then are
        canceled), ``False`` returns at once.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            if thread is None or not thread.is_alive() or self._stopping:
                loop = None
            self._stopping = True
        if loop is not None:
            bound = None if isinstance(wait, bool) else float(wait)
            asyncio.run_coroutine_threadsafe(
                self._wind_down(cancel_tasks, bound), loop)
        if thread is not None and wait is not False and \
                thread is not threading.current_thread():
            thread.join()

    @staticmethod
    async def _wind_down(cancel_tasks: bool, bound: Optional[float]) -> None:
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        if others and not cancel_tasks:
            _, others_left = await asyncio.wait(others, timeout=bound)
            others = list(others_left)
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others)
        asyncio.get_running_loop().stop()

    # -- running coroutines --------------------------------------------------
    def background_task(self, coro: Coroutine[Any, Any, Any]
                        ) -> concurrent.futures.Future:
        """Schedule *coro* on the loop; return a ``concurrent.futures``
        Future of its result."""
        if not asyncio.iscoroutine(coro):
            raise TypeError(f"background_task() needs a coroutine, got "
                            f"{coro!r}")
        return asyncio.run_coroutine_threadsafe(coro, self._accepting_loop(
            coro))

    def run(self, coro: Coroutine[Any, Any, Any],
            timeout: Optional[float] = None) -> Any:
        """Run *coro* on the loop and block until it returns (or raises).

        Must not be called from the loop's own thread (it would wait for
        itself): that raises ``RuntimeError``.
        """
        with self._lock:
            own = self._thread is threading.current_thread()
        if own:
            coro.close()
            raise RuntimeError(f"ALoop.run() called from aloop {self.name}'s "
                               f"own thread; await the coroutine instead")
        return self.background_task(coro).result(timeout)

    def _accepting_loop(self, coro: Coroutine[Any, Any, Any]
                        ) -> asyncio.AbstractEventLoop:
        with self._lock:
            loop = self._loop
            accepting = (loop is not None and not self._stopping
                         and self._thread is not None
                         and self._thread.is_alive())
        if not accepting:
            coro.close()
            raise RuntimeError(f"aloop {self.name} is not running")
        return loop  # type: ignore[return-value]
