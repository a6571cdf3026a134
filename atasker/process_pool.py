"""The process pool: worker processes over pipes, fed by the dispatcher.

The parent always knows which task each process runs: a process gets its
next task only when it is free, from the supervisor's queue, so priorities
and reserve bands hold exactly as for threads, and a process that dies
fails exactly the task it held.

One manager thread per pool waits with ``multiprocessing.connection.wait``
on every worker's pipe, every worker's process sentinel and a wake-up pipe
-- nothing polls.  It reads results, hands the freed process its next task,
notices deaths (fail the task, start a replacement) and starts processes.
Submitting threads send a task themselves when a process is free, so a
task does not wait for the manager to wake up.

Per-task timeouts kill the worker and its child processes (psutil); the
manager then sees the death and starts a replacement.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from multiprocessing.connection import wait
from typing import Any, Optional, Protocol

import psutil

from .dispatcher import Dispatcher
from .errors import RemoteTraceback, WorkerLostError, describe_exit
from .mp_worker import worker_main
from .spin import acquire_contended
from .taskinfo import log_failure

__all__ = ["ProcessPool"]

logger = logging.getLogger("atasker.process_pool")

_STOP = b""     # the message that tells a worker to exit


class PoolHost(Protocol):
    def _finish_locked(self, record: Any, outcome: tuple[bool, Any]) -> bool:
        ...

    def _start_locked(self, record: Any) -> None:
        ...

    def _after(self, record: Any) -> None:
        ...

    _hooks: dict

    def _emit(self, event: str, record: Any) -> None:
        ...


class _Proc:
    """One worker process as the parent sees it."""

    __slots__ = ("process", "conn", "task", "done", "leaving", "buried")

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.task: Any = None       # the record it runs, or None
        self.done = 0               # tasks it has finished
        self.leaving = False        # told to exit, or being killed
        self.buried = False         # gone (read and set by the manager only)


def _decode(data: bytes) -> tuple[bool, Any]:
    """Turn a worker's answer into an outcome ``(ok, value)``."""
    try:
        answer = pickle.loads(data)
    except Exception as exc:
        return False, TypeError(
            f"the task's outcome could not be unpickled in the parent: "
            f"{exc!r}")
    if answer[0]:
        return True, answer[1]
    remote, text = answer[1], answer[2]
    remote.__cause__ = RemoteTraceback(text)
    return False, remote


def kill_tree(pid: int) -> None:
    """Kill process *pid* and all of its descendants, children first."""
    try:
        parent = psutil.Process(pid)
        victims = parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for victim in reversed(victims):
        try:
            victim.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        parent.kill()
    except psutil.NoSuchProcess:
        pass


class ProcessPool:
    """Worker processes for one supervisor.

    Guarded by the supervisor's lock ``lock`` (shared): ``_procs`` (every
    live worker), ``_free`` (workers with no task, LIFO), ``_starting``
    (processes being started), ``_closing``, ``size`` and each ``_Proc``'s
    ``task``/``done``/``leaving``.  Invariants: a ``_Proc`` is in ``_free``
    iff it is live, not leaving and has no task; ``dispatcher.running``
    equals the number of workers holding a task (a timed-out task keeps its
    slot until its process is dead).

    The manager thread alone receives from the pipes and joins processes;
    a task is sent to a worker only by the thread that assigned it under
    the lock, so no pipe has two writers at once.
    """

    def __init__(self, lock: threading.Lock, dispatcher: Dispatcher,
                 host: PoolHost, name: str, context: Any,
                 max_tasks_per_child: Optional[int]) -> None:
        self._lock = lock
        self.dispatcher = dispatcher
        self._host = host
        self._name = name
        self._context = context
        self._max_tasks = max_tasks_per_child
        self._procs: list[_Proc] = []
        self._free: list[_Proc] = []
        self._starting = 0
        self._closing = False
        self.size = int(dispatcher.capacity)
        self._wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        self._wake_w: Optional[int] = wake_w
        self._manager = threading.Thread(target=self._manage,
                                         name=f"{name}_manager", daemon=True)
        self._manager.start()

    # -- called with the lock held -----------------------------------------
    def kick_locked(self) -> Optional[list]:
        """Assign startable tasks to free workers.

        Returns ``(worker, record)`` pairs to :meth:`launch` after the lock
        is released, or ``None``.
        """
        free = self._free
        if not free:
            return None
        dispatcher = self.dispatcher
        sends = None
        while free:
            record = dispatcher.pop()
            if record is None:
                break
            proc = free.pop()
            proc.task = record
            self._host._start_locked(record)
            if sends is None:
                sends = [(proc, record)]
            else:
                sends.append((proc, record))
        return sends

    def resize_locked(self, size: int) -> None:
        """Aim at *size* processes; extra ones leave when free."""
        self.size = size
        self._wake()

    def close_locked(self) -> None:
        """Let every worker exit once it is free; then the manager ends."""
        self._closing = True
        self._wake()

    @property
    def closing(self) -> bool:
        return self._closing

    def find_locked(self, record: Any) -> Optional[_Proc]:
        for proc in self._procs:
            if proc.task is record:
                return proc
        return None

    @property
    def process_count(self) -> int:
        return len(self._procs)

    def pids_locked(self) -> list[int]:
        return [proc.process.pid for proc in self._procs]

    # -- called without the lock -------------------------------------------
    def launch(self, sends: list) -> None:
        """Send assigned tasks to their workers."""
        host = self._host
        for proc, record in sends:
            # before the send: the task may end (on the manager thread) as
            # soon as it is sent, and its start must be reported first
            if host._hooks:
                host._emit("task_started", record)
            try:
                proc.conn.send_bytes(record._args)
            except OSError:
                # the worker is dying: the manager fails the task when it
                # sees the death
                logger.debug("worker %s gone before task %s was sent",
                             proc.process.pid, record.id)

    def kill_task(self, record: Any) -> None:
        """Kill the worker running *record* (after a timeout)."""
        with self._lock:
            proc = self.find_locked(record)
            if proc is None or proc.leaving:
                return
            proc.leaving = True
            pid = proc.process.pid
        logger.warning("killing worker process %s (and its children) that "
                       "runs timed-out task %s", pid, record.id)
        kill_tree(pid)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the manager (and so every worker) to end."""
        self._manager.join(timeout)
        return not self._manager.is_alive()

    def terminate(self) -> None:
        """Kill every worker now (used when a bounded stop ran out)."""
        with self._lock:
            self._closing = True
            pids = [proc.process.pid for proc in self._procs]
            for proc in self._procs:
                proc.leaving = True
            self._wake()
        for pid in pids:
            kill_tree(pid)

    def _wake(self) -> None:
        """Make the manager look again (lock held, so the pipe is open)."""
        if self._wake_w is not None:
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:    # full: it is due to wake anyway
                pass

    # -- the manager thread ------------------------------------------------
    def _manage(self) -> None:
        try:
            changed = True
            while True:
                if changed:
                    # after a wake-up or a death: fix the number of
                    # processes and watch the current ones
                    self._adjust()
                    with self._lock:
                        if self._closing and not self._procs \
                                and not self._starting:
                            return
                        watch: dict = {self._wake_r: None}
                        for proc in self._procs:
                            watch[proc.conn] = proc
                            watch[proc.process.sentinel] = proc
                    watched = list(watch)
                    changed = False
                for ready in wait(watched):
                    proc = watch[ready]
                    if proc is None:
                        os.read(self._wake_r, 4096)
                        changed = True
                        continue
                    if proc.buried:     # earlier in this round
                        continue
                    if ready is proc.conn:
                        self._receive(proc)
                    else:
                        self._bury(proc)
                    if proc.buried:
                        changed = True
        except Exception as exc:   # a bug here must not hang anybody
            logger.exception("process pool manager failed; killing workers")
            self.terminate()
            self._fail_all(exc)
            raise
        finally:
            with self._lock:
                wake_w, self._wake_w = self._wake_w, None
            os.close(self._wake_r)
            if wake_w is not None:
                os.close(wake_w)

    def _fail_all(self, cause: BaseException) -> None:
        """Fail every queued and running task of a broken pool."""
        host = self._host
        with self._lock:
            records = self.dispatcher.drain()
            for record in records:
                record._key = 0
                host._start_locked(record)      # a failure needs a start
            for proc in self._procs:
                if proc.task is not None:
                    records.append(proc.task)
                    proc.task = None
            due = [record for record in records
                   if host._finish_locked(record, (False, RuntimeError(
                       f"the process pool failed: {cause!r}")))]
        for record in due:
            host._after(record)

    def _adjust(self) -> None:
        """Start missing processes; ask surplus free ones to leave."""
        with self._lock:
            if self._closing:
                missing = 0
                surplus = list(self._free)
            else:
                live = len(self._procs) + self._starting
                missing = max(0, self.size - live)
                surplus = self._free[:max(0, live - self.size)]
            for proc in surplus:
                self._free.remove(proc)
                proc.leaving = True
            self._starting += missing
        for proc in surplus:
            self._send_stop(proc)
        for _ in range(missing):
            self._start_process()

    def _start_process(self) -> None:
        ctx = self._context
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        process = ctx.Process(target=worker_main, args=(child_conn,),
                              name=f"{self._name}_worker")
        try:
            process.start()
        except Exception:
            with self._lock:
                self._starting -= 1
            parent_conn.close()
            logger.exception("could not start a worker process")
            raise
        finally:
            child_conn.close()
        proc = _Proc(process, parent_conn)
        with self._lock:
            self._starting -= 1
            self._procs.append(proc)
            self._free.append(proc)
            sends = self.kick_locked()
        if sends:
            self.launch(sends)

    def _send_stop(self, proc: _Proc) -> None:
        try:
            proc.conn.send_bytes(_STOP)
        except OSError:
            pass

    def _receive(self, proc: _Proc) -> None:
        try:
            data = proc.conn.recv_bytes()
        except (EOFError, OSError):
            proc.process.join()     # it is exiting: collect it now
            self._bury(proc)
            return
        outcome = _decode(data)
        if not outcome[0]:
            with self._lock:
                record = proc.task
            if record is not None:
                log_failure(record, outcome[1])
        host = self._host
        lock = self._lock
        if not lock.acquire(False):
            acquire_contended(lock)
        try:        # lock held
            record, proc.task = proc.task, None
            if record is None:      # not ours to judge: ignore
                return
            proc.done += 1
            self.dispatcher.release()
            due = host._finish_locked(record, outcome)
            sends = None
            if proc.leaving:
                pass                # being killed: nothing more for it
            elif (self._max_tasks and proc.done >= self._max_tasks) or \
                    len(self._procs) + self._starting > self.size:
                proc.leaving = True     # recycle it (or shrink)
                sends = [(proc, None)]
            else:
                following = self.dispatcher.pop()
                if following is not None:
                    proc.task = following
                    host._start_locked(following)
                    sends = [(proc, following)]
                elif self._closing:
                    proc.leaving = True
                    sends = [(proc, None)]
                else:
                    self._free.append(proc)
        finally:
            lock.release()
        del outcome
        if sends:
            if sends[0][1] is None:
                self._send_stop(proc)
            else:
                self.launch(sends)
        if due:
            host._after(record)

    def _bury(self, proc: _Proc) -> None:
        """A worker has exited: fail its task, if any, and forget it."""
        proc.process.join()
        exitcode = proc.process.exitcode
        pid = proc.process.pid
        last_words = None
        try:
            if proc.conn.poll():    # it answered before it died
                last_words = _decode(proc.conn.recv_bytes())
        except (EOFError, OSError):
            pass
        with self._lock:
            record, killed = proc.task, proc.leaving
        if record is not None and not killed:
            # said before the task's outcome is recorded and waiters wake
            if last_words is None:
                logger.error("worker process %s died while running task %s "
                             "(%s)", pid, record.id, describe_exit(exitcode))
            elif not last_words[0]:
                log_failure(record, last_words[1])
        host = self._host
        with self._lock:
            proc.buried = True
            self._procs.remove(proc)
            if proc in self._free:
                self._free.remove(proc)
            record, proc.task = proc.task, None
            due = False
            if record is not None:
                self.dispatcher.release()
                due = host._finish_locked(record, last_words or (
                    False, WorkerLostError(record.id, pid, exitcode)))
            # a replacement, if one is needed, starts in _adjust(); the
            # freed slot may let another task start on a free worker
            sends = self.kick_locked()
        proc.conn.close()
        proc.process.close()
        if sends:
            self.launch(sends)
        if due:
            host._after(record)
