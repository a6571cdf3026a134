"""Process tasks on any ``concurrent.futures.Executor``: the executor pool.

A sibling of the process pool behind the same interface.  The dispatcher
decides, as for the own processes: the executor is treated as
``pool_size + reserve_normal + reserve_high`` slots and is handed a task
only when it may start now, so priorities and reserves stay strict
whatever the executor's own queue does.  The payload is the bytes pickled
at submission; the executor runs :func:`atasker._mp_worker.run_one` on
them, which answers ``(True, result)`` or ``(False, exception, traceback
text)`` pickled: a task's exception is a value to the executor (never
retried by it) and keeps its type.

Completions arrive on the executor's threads (``add_done_callback``); they
only put the record on a queue.  One completion thread of ours records
the outcome, hands the freed slot to the next task and runs the callbacks,
so user code never runs on -- or blocks -- an executor's thread, and
``stop(wait=True)`` from a callback is refused as from any of our threads.

An executor cannot kill what it runs: a task whose ``timeout`` fires
fails with ``TaskTimeoutError`` and keeps its slot until it returns, as a
thread task does.  The executor belongs to the caller: ``stop()`` does not
shut it down.

State
-----
Guarded by the engine's lock: the dispatcher (see :class:`SlotPool`),
``_running`` (record → future, for every task handed to the executor and
not yet recorded as returned), ``_thread`` (the completion thread or
None), ``_closing``.  Invariant: ``dispatcher.running == len(_running)``;
the completion thread exits once ``_closing`` and ``_running`` is empty
(it is told so by a ``None`` on its queue).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from concurrent.futures import Executor, Future
from typing import Any, Optional

from ._constants import TASK_STATUS_STARTED, TT_MP
from ._dispatcher import Dispatcher
from ._backends import DaskBackend, backend_for
from ._mp import prepare_payload
from ._pool import Owner, SlotPool, join_thread
from ._taskinfo import TaskInfo, log_failure

logger = logging.getLogger("atasker.executor_pool")


class ExecutorPool(SlotPool):
    """``TT_MP`` tasks of one engine, run by a user's executor."""

    tt = TT_MP

    def __init__(self, owner: Owner, executor: Executor, pool_size: int,
                 reserve_normal: int, reserve_high: int, name: str) -> None:
        super().__init__(owner, Dispatcher(pool_size, reserve_normal,
                                           reserve_high, capped=True))
        self.executor = executor
        self._backend = backend_for(executor)
        self._name = name
        self._running: dict[TaskInfo, Future] = {}
        # work for the completion thread: (function, record), or None
        self._done: "queue.SimpleQueue[Optional[tuple]]" = \
            queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._last_thread: Optional[threading.Thread] = None
        self._closing = False

    # -- the engine's side -------------------------------------------------
    def prepare(self, target: Any, args: tuple, kwargs: dict, task_id: str,
                loop: Any) -> tuple[Any, Any, Any]:
        payload = prepare_payload(target, args, kwargs, task_id,
                                  self._backend.dumps)
        if self._thread is None:
            self._start_thread()
        return payload, None, None

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._complete,
                                      name=f"{self._name}_executor",
                                      daemon=True)
            self._thread = self._last_thread = thread
            self._closing = False
            # started under the engine's lock, so there is one completion
            # thread at a time; starting a thread takes no lock of ours
            thread.start()

    def push_locked(self, record: TaskInfo) -> Optional[list]:
        record._key = self._push(record.priority, record)
        return self._kick_locked()

    def _kick_locked(self) -> Optional[list]:
        """The records that may start now, marked started (for
        :meth:`launch`)."""
        starting = None
        record = self.take_locked()
        while record is not None:
            if starting is None:
                starting = [(record, record._args)]
            else:
                starting.append((record, record._args))
            record = self.take_locked()
        return starting

    def launch(self, starting: list) -> None:
        """Hand started records to the executor."""
        owner = self._owner
        for record, payload in starting:
            owner.emit_started(record)
            try:
                future = self._backend.submit(payload, record.id)
            except Exception as exc:    # shut down, broken: the task fails
                self._returned(record, (False, exc))
                continue
            with self._lock:
                self._running[record] = future
            # called at once if already done: it only queues the record
            future.add_done_callback(functools.partial(
                _queue, self._done, self._finished, record))

    def kill(self, record: TaskInfo) -> bool:
        """Stop *record*'s call after its timeout, as far as the executor
        can: a plain one only cancels a call not started yet (a running
        one keeps its slot until it returns); a dask cluster's worker is
        made to exit.  Done by the completion thread (it may wait for the
        cluster's scheduler)."""
        if not isinstance(self._backend, DaskBackend):
            with self._lock:
                future = self._running.get(record)
            return future is not None and self._backend.kill(future)
        self._done.put((self._kill_now, record))
        return True

    def _kill_now(self, record: TaskInfo) -> None:
        with self._lock:
            future = self._running.get(record)
        if future is not None:
            self._backend.kill(future)

    def abandon(self) -> None:
        """A bounded stop ran out: cancel what the executor has not
        started; what runs there goes on."""
        with self._lock:
            futures = list(self._running.values())
        for future in futures:
            future.cancel()

    def shutdown_locked(self) -> None:
        self._closing = True
        if not self._running:
            self._done.put(None)

    def restart_locked(self) -> None:
        self._closing = False

    def join(self, deadline: Optional[float]) -> None:
        join_thread(self._last_thread, deadline)

    def owns(self, thread: threading.Thread) -> bool:
        return thread is self._thread

    def reset_after_fork(self) -> None:
        # the executor's work and our thread belong to the parent
        self._running = {}
        self._done = queue.SimpleQueue()
        self._thread = self._last_thread = None
        self.drain_locked()
        self.dispatcher.running = 0

    @property
    def process_count(self) -> int:
        """No processes of ours: the executor has its own."""
        return 0

    def limits_locked(self) -> tuple[int, int, int]:
        """(pool_size, reserve_normal, reserve_high) in effect."""
        d = self.dispatcher
        return d.pool_size, d.reserve_normal, d.reserve_high

    def configure(self, pool_size: Optional[int],
                  reserve_normal: Optional[int],
                  reserve_high: Optional[int]) -> None:
        """Change the numbers (``None`` keeps one); more slots start
        waiting tasks at once."""
        with self._lock:
            self.set_numbers_locked(pool_size, reserve_normal, reserve_high)
            sends = self._kick_locked()
        if sends:
            self.launch(sends)

    # -- the completion thread ---------------------------------------------
    def _complete(self) -> None:
        me = threading.current_thread()
        while True:
            work = self._done.get()
            if work is None:
                with self._lock:
                    if self._closing and not self._running:
                        if self._thread is me:
                            self._thread = None
                        return
                continue
            function, record = work
            try:
                function(record)
            except Exception:   # a bug of ours: say so, go on
                logger.exception("executor pool: handling task %s failed",
                                 record.id)

    def _finished(self, record: TaskInfo) -> None:
        with self._lock:
            future = self._running.pop(record)
        try:
            outcome = self._backend.outcome(record, future)
        except Exception as exc:    # an answer that cannot be read
            outcome = (False, exc)
        if not outcome[0] and record.status == TASK_STATUS_STARTED:
            # (not for a call that outlived its task's timeout)
            log_failure(record, outcome[1])
        self._returned(record, outcome)

    def _returned(self, record: TaskInfo, outcome: tuple[bool, Any]) -> None:
        """*record* came back from the executor (or never got there)."""
        with self._lock:
            due, _ = self.end_locked(record, outcome, take=False)
            sends = self._kick_locked()
            last = self._closing and not self._running
        if sends:
            self.launch(sends)
        if due:
            self._owner.after(record)
        if last:
            self._done.put(None)


def _queue(done: "queue.SimpleQueue[Optional[tuple]]", function: Any,
           record: TaskInfo, _: Future) -> None:
    """A future's done callback, on the executor's thread: hand over."""
    done.put((function, record))
