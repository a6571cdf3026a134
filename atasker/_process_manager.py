"""The worker processes of a process pool and the manager thread that
watches them.

One manager thread waits with ``multiprocessing.connection.wait`` on every
worker's pipe, every worker's process sentinel and a wake-up pipe --
nothing polls.  It reads results, hands the freed process its next task,
notices deaths (fail the task, start a replacement) and starts processes.
Submitting threads send a task themselves when a process is free, so a
task does not wait for the manager to wake up.

State
-----
Guarded by the engine's lock: ``_procs`` (every live worker), ``_free``
(workers with no task, LIFO), ``_starting`` (processes being started),
``_closing``, ``_manager``, ``_wake``, ``size``, and each ``Proc``'s
``task``/``done``/``leaving``.  Invariants: a ``Proc`` is in ``_free`` iff
it is live, not leaving and has no task; ``dispatcher.running`` equals the
number of workers holding a task (a timed-out task keeps its slot until
its process is dead); ``_manager`` is the one manager thread or ``None``.

The manager thread alone receives from the pipes and joins processes; a
task is sent to a worker only by the thread that assigned it under the
lock, so no pipe has two writers at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from multiprocessing.connection import wait
from typing import Any, Optional

from ._dispatcher import Dispatcher
from ._errors import WorkerLostError, describe_exit
from ._mp import STATUS_LOST, Proc, decode, kill_tree, running, \
    still_running
from ._mp_worker import worker_main
from ._pool import Outcome, Owner, SlotPool
from ._spin import acquire_contended
from ._taskinfo import log_failure
from ._wakeup import WakePipe

logger = logging.getLogger("atasker.process_pool")

_STOP = b""     # the message that tells a worker to exit


class ProcessManager(SlotPool):
    """Worker processes, their manager thread, and handing them tasks.
    The engine's side of the pool is :class:`ProcessPool`."""

    def __init__(self, owner: Owner, dispatcher: Dispatcher,
                 name: str) -> None:
        super().__init__(owner, dispatcher)
        self._name = name
        self._context: Any = None
        self._max_tasks: Optional[int] = None
        self.size = int(self.dispatcher.capacity)
        self._procs: list[Proc] = []
        self._free: list[Proc] = []
        self._starting = 0
        self._closing = False
        self._manager: Optional[threading.Thread] = None
        self._wake: Optional[WakePipe] = None

    def _kick_locked(self) -> Optional[list]:
        """Assign startable tasks to free workers; return ``(worker,
        record, payload)`` triples to :meth:`launch` after the lock is
        released (the payload is read here: once the task has ended --
        timed out, say -- the record no longer holds it)."""
        free = self._free
        sends = None
        while free:
            record = self.take_locked()
            if record is None:
                break
            proc = free.pop()
            proc.task = record
            if sends is None:
                sends = [(proc, record, record._args)]
            else:
                sends.append((proc, record, record._args))
        return sends

    def launch(self, sends: list) -> None:
        """Send assigned tasks to their workers (``[None]``: no manager
        runs; :meth:`restart` one)."""
        if sends[0] is None:
            self.restart()
            return
        owner = self._owner
        for proc, record, payload in sends:
            record.worker = proc.process.pid
            # before the send: the task may end (on the manager thread) as
            # soon as it is sent, and its start must be reported first
            owner.emit_started(record)
            try:
                proc.conn.send_bytes(payload)
            except (OSError, ValueError):
                # the worker is dying (or its pipe is closed): the manager
                # fails the task when it sees the death
                logger.debug("worker %s gone before task %s was sent",
                             proc.process.pid, record.id)

    def restart(self) -> None:
        """Start a manager (see :class:`ProcessPool`)."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Kill every worker now (a bounded stop ran out)."""
        with self._lock:
            self._closing = True
            pids = [proc.process.pid for proc in self._procs]
            for proc in self._procs:
                proc.leaving = True
            self._poke_locked()
        for pid in pids:
            kill_tree(pid)

    def _poke_locked(self) -> None:
        """Make the manager look again (lock held, so the pipe is open)."""
        if self._wake is not None:
            self._wake.poke()

    def _manage(self, wake: WakePipe) -> None:
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
                            # under the lock: start() makes a new manager
                            # from here on, instead of reopening this one
                            self._manager = None
                            return
                        watch: dict = {wake.fileno(): None}
                        for proc in self._procs:
                            watch[proc.conn] = proc
                            if proc.orphan is None:
                                watch[proc.process.sentinel] = proc
                    watched = list(watch)
                    changed = False
                for ready in wait(watched):
                    proc = watch[ready]
                    if proc is None:
                        wake.drain()
                        changed = True
                        continue
                    if proc.buried:     # earlier in this round
                        continue
                    if ready is proc.conn:
                        self._receive(proc)
                    elif self._outlived_its_forkserver(proc):
                        changed = True      # stop watching its sentinel
                    else:
                        self._bury(proc)
                    if proc.buried:
                        changed = True
        except BaseException as exc:  # a bug must not hang anybody
            logger.exception("process pool manager failed; killing workers")
            self.abandon()
            self._fail_all(exc)
            with self._lock:
                self._manager = None
                self._procs, self._free, self._starting = [], [], 0
        finally:
            with self._lock:
                if self._wake is wake:
                    self._wake = None
            wake.close()

    def _fail_all(self, cause: BaseException) -> None:
        """Fail every queued and running task of a broken pool."""
        error = RuntimeError(f"the process pool failed: {cause!r}")
        due = self._fail_queued(error)
        with self._lock:
            for proc in self._procs:
                record, proc.task = proc.task, None
                if record is not None and \
                        self.end_locked(record, (False, error), take=False)[0]:
                    due.append(record)
        for record in due:
            self._owner.after(record)

    def _fail_queued(self, error: BaseException) -> list:
        """Fail every queued task with *error*; return those whose
        callbacks are due (to call without the lock)."""
        owner = self._owner
        with self._lock:
            records = self.drain_locked()
            for record in records:
                owner.start_locked(record)      # a failure needs a start
            return [record for record in records
                    if owner.finish_locked(record, (False, error))]

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
        for started in range(missing):
            error = self._start_process()
            if error is None:
                continue
            # e.g. out of file descriptors: try again at the next wake-up
            with self._lock:
                self._starting -= missing - started - 1
                stranded = not self._procs and not self._starting
            if stranded:    # no process at all: queued tasks cannot run
                for record in self._fail_queued(RuntimeError(
                        f"could not start a worker process: {error!r}")):
                    self._owner.after(record)
            return

    def _start_process(self) -> Optional[BaseException]:
        """Start one worker process; the error if that failed."""
        ctx = self._context
        try:
            parent_conn, child_conn = ctx.Pipe(duplex=True)
        except OSError as exc:
            with self._lock:
                self._starting -= 1
            logger.exception("could not start a worker process")
            return exc
        process = ctx.Process(target=worker_main, args=(child_conn,),
                              name=f"{self._name}_worker")
        try:
            process.start()
        except Exception as exc:
            with self._lock:
                self._starting -= 1
            parent_conn.close()
            logger.exception("could not start a worker process")
            return exc
        finally:
            child_conn.close()
        proc = Proc(process, parent_conn)
        with self._lock:
            self._starting -= 1
            self._procs.append(proc)
            self._free.append(proc)
            sends = self._kick_locked()
        if sends:
            self.launch(sends)
        return None

    def _send_stop(self, proc: Proc) -> None:
        try:
            proc.conn.send_bytes(_STOP)
        except OSError:
            pass

    def _receive(self, proc: Proc) -> None:
        try:
            data = proc.conn.recv_bytes()
        except (EOFError, OSError):
            # exiting -- or its task closed the pipe and runs on: it can
            # report nothing more, and it must not keep us waiting
            with self._lock:
                record, leaving = proc.task, proc.leaving
            # one told to leave is exiting (and ends its own tree): no
            # kill, which could reach a process that took its pid since
            if record is not None and not leaving and (
                    proc.process.exitcode is None if proc.orphan is None
                    else still_running(proc.orphan)):
                logger.error("worker process %s closed its pipe while "
                             "running task %s; killing it",
                             proc.process.pid, record.id)
                kill_tree(proc.process.pid)
            self._bury(proc)
            return
        outcome: Outcome = decode(data)
        if not outcome[0]:
            with self._lock:
                record = proc.task
            if record is not None:
                log_failure(record, outcome[1])
        lock = self._lock
        if not lock.acquire(False):
            acquire_contended(lock)
        try:        # lock held
            record, proc.task = proc.task, None
            if record is None:      # not ours to judge: ignore
                return
            proc.done += 1
            # recycle it after max_tasks_per_child, or shrink the pool
            stays = not proc.leaving and not (
                self._max_tasks and proc.done >= self._max_tasks) and \
                len(self._procs) + self._starting <= self.size
            due, following = self.end_locked(record, outcome, take=stays)
            dismiss = False
            if following is not None:
                proc.task = following
                payload = following._args
            elif not proc.leaving:
                if stays and not self._closing:
                    self._free.append(proc)
                else:
                    proc.leaving = dismiss = True
        finally:
            lock.release()
        del outcome
        if following is not None:
            self.launch([(proc, following, payload)])
        elif dismiss:
            self._send_stop(proc)
        if due:
            self._owner.after(record)

    def _outlived_its_forkserver(self, proc: Proc) -> bool:
        """Its sentinel says it ended, yet it runs: the forkserver that
        started it, and would report its exit, is gone -- as when a
        signal to the app's process group reached the forkserver, but
        not the workers (they left the group).  From now on its pipe
        tells when it ends; the forkserver is started again for the next
        new process."""
        if proc.process.exitcode != STATUS_LOST:
            return False
        proc.orphan = running(proc.process.pid)
        if proc.orphan is None:
            return False
        logger.warning("the forkserver of worker process %s is gone; the "
                       "worker runs on (its exit status will be unknown)",
                       proc.process.pid)
        return True

    def _bury(self, proc: Proc) -> None:
        """A worker has exited: fail its task, if any, and forget it."""
        with self._lock:
            crashed = proc.task is not None or not proc.leaving
        if crashed:     # it could not end what its tasks started
            _end_group(proc.process.pid)
        proc.process.join()
        exitcode = proc.process.exitcode if proc.orphan is None else None
        pid = proc.process.pid
        last_words = None
        try:
            if proc.conn.poll():    # it answered before it died
                last_words = decode(proc.conn.recv_bytes())
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
        with self._lock:
            proc.buried = True
            self._procs.remove(proc)
            if proc in self._free:
                self._free.remove(proc)
            record, proc.task = proc.task, None
            due = False
            if record is not None:
                due, _ = self.end_locked(record, last_words or (
                    False, WorkerLostError(record.id, pid, exitcode)),
                    take=False)
            # a replacement, if one is needed, starts in _adjust(); the
            # freed slot may let another task start on a free worker
            sends = self._kick_locked()
        proc.conn.close()
        proc.process.close()
        if sends:
            self.launch(sends)
        if due:
            self._owner.after(record)


def _end_group(pid: int) -> None:
    """Kill what is left of a dead worker's process group: the processes
    its tasks started (unless they left the group).  A process id is not
    handed out again while a group of that id has members, so this
    reaches the worker's own group -- or nothing, once it is empty."""
    if not hasattr(os, "killpg"):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
