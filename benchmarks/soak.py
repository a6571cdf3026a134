"""Soak: a million mixed tasks under fire; every id must end exactly once.

Thread, process and coroutine tasks, at random priorities, go to a private
supervisor with a two-process pool while things go wrong on purpose: tasks
raise, process tasks SIGKILL their own worker, a killer thread SIGKILLs a
random worker process now and then, short timeouts fire (and long ones do
not), delayed and queued tasks are canceled.  At most ``--inflight`` tasks
are unfinished at once: the submitter waits on a condition that the
tasks' callbacks notify once a twentieth of them have ended.

Then every task is reconciled: its callback or error_callback ran exactly
once, ``get_task_info`` (through the held ``TaskId``) shows the same final
status, and the outcome is the planned one -- a task told to raise failed
with that exception, a task that killed its worker with
``WorkerLostError``, a timed-out one with ``TaskTimeoutError``, one that
``cancel_task`` canceled with ``CancelledError``.  A process task may also
fail with ``WorkerLostError`` when the killer shot its worker: excused, at
most once per shot, only with the pid that was shot.

    python -m benchmarks.soak [--tasks N] [--seconds S] [--seed X] [--json]

Prints tasks by kind and outcome, lost (no final state), duplicated (more
than one callback) and mismatched tasks, the parent's RSS growth from after
warm-up to the end, threads and child processes left after ``stop()`` and
the rate.  Exits with status 1 if anything was lost, duplicated,
mismatched or left behind, or if the run stalled.  Only the public API is
used.  ``kill -USR1`` dumps every thread's stack of a run that seems stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import faulthandler
import functools
import gc
import itertools
import json
import logging
import os
import platform
import random
import signal
import sys
import threading
import time
from concurrent.futures import CancelledError
from typing import Any, Optional

import psutil

import atasker
from atasker import (TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL,
                     TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TASK_STATUS_FAILED, TT_MP, TaskTimeoutError,
                     WorkerLostError)

HANG = 60.0         # seconds a "hanging" task waits: its timeout ends it
STALL = 120.0       # seconds without any task ending: the run is stuck
STOP_LIMIT = 60.0   # seconds stop() may take once every task has ended
GRACE = 5.0         # seconds for threads and processes to go after stop()
MIB = 1024 * 1024

KINDS = ("thread", "process", "coroutine")
THREAD, PROCESS, COROUTINE = range(3)
#: share of each kind among the tasks
KIND_WEIGHTS = (50, 25, 25)
PRIORITIES = ((TASK_LOW, 30), (TASK_NORMAL, 50), (TASK_HIGH, 19),
              (TASK_CRITICAL, 1))

# outcomes, as one byte per task
(NONE, COMPLETED, WRONG_RESULT, RAISED, TIMED_OUT, WORKER_LOST, CANCELED,
 OTHER_ERROR, NOT_FINAL) = range(9)
OUTCOMES = ("no outcome", "completed", "wrong result", "SoakError",
            "TaskTimeoutError", "WorkerLostError", "canceled", "other error",
            "not final")


class SoakError(atasker.TaskError):
    """The failure a task raises on purpose (a TaskError: logged briefly)."""


#: the outcome an exception stands for
ERROR_CODES = {SoakError: RAISED, TaskTimeoutError: TIMED_OUT,
               WorkerLostError: WORKER_LOST, CancelledError: CANCELED}

#: action: (weight for thread, process, coroutine tasks; planned outcome).
#: "delay_cancel" is canceled right after submission; besides, a few tasks
#: of the last RECENT submitted are canceled while they wait (CANCEL_RATE).
ACTIONS = {
    "ok": ((800, 800, 800), COMPLETED),
    "raise": ((80, 80, 80), RAISED),
    "delay": ((40, 40, 40), COMPLETED),
    "slack_timeout": ((40, 40, 40), COMPLETED),
    "delay_cancel": ((20, 20, 20), COMPLETED),
    "timeout": ((2, 1, 2), TIMED_OUT),
    "kill_self": ((0, 1, 0), WORKER_LOST),
}
ACTION_NAMES = tuple(ACTIONS)
CANCEL_RATE = 0.02
RECENT = 64


# -- task bodies: module-level, so that process tasks can pickle them -------
def echo(key: int) -> int:
    return key


def fail(key: int) -> None:
    raise SoakError(key)


def hang(key: int) -> None:
    """A process task that outlives its timeout: its worker is killed."""
    time.sleep(HANG)


def kill_self(key: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def wait_for(release: threading.Event, key: int) -> int:
    """A thread task that outlives its timeout: it returns once the
    timeout's error_callback has set *release* (a thread cannot be
    killed), so it cannot complete first however slow the timer is."""
    release.wait(HANG)
    return key


async def co_echo(key: int) -> int:
    await asyncio.sleep(0)
    return key


async def co_fail(key: int) -> None:
    await asyncio.sleep(0)
    raise SoakError(key)


async def co_hang(key: int) -> None:
    await asyncio.sleep(HANG)


# -- the plan -----------------------------------------------------------------
class Choice:
    """Weighted random choice by one ``random()`` and a bisection."""

    def __init__(self, rng: random.Random, weights: list) -> None:
        self._random = rng.random
        total = float(sum(weights))
        self._cumulative = list(itertools.accumulate(
            w / total for w in weights))

    def __call__(self) -> int:
        return min(bisect.bisect(self._cumulative, self._random()),
                   len(self._cumulative) - 1)


# -- worker processes, as psutil sees them ------------------------------------
def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _is_helper(process: psutil.Process) -> bool:
    """multiprocessing's forkserver or resource tracker (they live as long
    as the interpreter; the forkserver's children are workers)."""
    line = _cmdline(process)
    return "multiprocessing.forkserver" in line or \
        "multiprocessing.resource_tracker" in line


def worker_processes() -> list:
    """Our descendants that are not multiprocessing's own helpers: the
    pool's workers (children of the forkserver, or our children under
    spawn) and whatever they started."""
    found = []
    for child in psutil.Process().children():
        if _is_helper(child):
            try:
                found.extend(child.children(recursive=True))
            except psutil.Error:
                pass
        else:
            found.append(child)
            try:
                found.extend(child.children(recursive=True))
            except psutil.Error:
                pass
    return found


class Killer(threading.Thread):
    """SIGKILLs a random worker process every *every* seconds on average
    (exponential gaps), and remembers which pids it shot."""

    def __init__(self, seed: int, every: float) -> None:
        super().__init__(name="soak_killer")
        self._rng = random.Random(seed)
        self._every = every
        self._halt = threading.Event()
        self.lock = threading.Lock()
        self.shots: collections.Counter = collections.Counter()

    def run(self) -> None:
        while not self._halt.wait(self._rng.expovariate(1 / self._every)):
            victims = worker_processes()
            if not victims:
                continue
            victim = self._rng.choice(victims)
            with self.lock:     # before the kill: its task fails after it
                self.shots[victim.pid] += 1
            try:
                os.kill(victim.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        self._halt.set()
        self.join()


# -- the ledger ---------------------------------------------------------------
class Ledger:
    """One byte per task key for each fact, plus the handles of tasks not
    yet reconciled.

    ``lock`` guards ``calls``, ``outcome``, ``pending``, ``early``,
    ``ended``, ``target``, ``extra``, ``lost_pids``, ``info_mismatch`` and
    the admission count (``_in_flight <= _limit``).  ``plan_kind``,
    ``plan_action``, ``canceled`` and new ``releases`` are written by the
    submitting thread only (a callback pops its own release).

    A task is reconciled once both its first callback has run and
    ``put_task`` has returned its handle, whichever comes second: then
    ``get_task_info`` must show the same outcome, and the handle is
    dropped (so memory stays bounded by the tasks in flight).
    """

    def __init__(self, supervisor: atasker.TaskSupervisor, size: int,
                 inflight: int) -> None:
        self._supervisor = supervisor
        self.lock = threading.Lock()
        self._all_ended = threading.Condition(self.lock)
        self._room = threading.Condition(self.lock)
        self._limit = inflight
        self._resume = inflight - max(1, inflight // 20)
        self._in_flight = 0
        self._blocked = False
        self.plan_kind = bytearray(size)
        self.plan_action = bytearray(size)
        self.canceled = bytearray(size)     # cancel_task returned True
        self.calls = bytearray(size)
        self.outcome = bytearray(size)
        self.pending: dict = {}             # key -> TaskId, not yet ended
        self.early: set = set()             # ended before put_task returned
        self.ended = 0
        self.target: Optional[int] = None
        self.extra: dict = {}               # key -> outcomes of later calls
        self.lost_pids: dict = {}           # key -> pid of WorkerLostError
        self.info_mismatch: list = []       # (key, callback's, info's)
        self.releases: dict = {}            # key -> Event of a wait_for

    # callbacks: run by pool threads, the manager thread, aloops, timers
    def completed(self, key: int, result: Any) -> None:
        self._end(key, COMPLETED if result == key else WRONG_RESULT)

    def failed(self, key: int, exc: BaseException) -> None:
        release = self.releases.pop(key, None)
        if release is not None:
            release.set()
        code = ERROR_CODES.get(type(exc), OTHER_ERROR)
        self._end(key, code, exc.pid if code == WORKER_LOST else None)

    def _end(self, key: int, code: int, pid: Optional[int] = None) -> None:
        with self.lock:
            calls = self.calls[key]
            self.calls[key] = min(calls + 1, 255)
            if calls:
                self.extra.setdefault(key, []).append(code)
                return
            self.outcome[key] = code
            if pid is not None:
                self.lost_pids[key] = pid
            handle = self.pending.pop(key, None)
            if handle is None:
                self.early.add(key)
            self.ended += 1
            self._in_flight -= 1
            if self._blocked and self._in_flight <= self._resume:
                self._blocked = False
                self._room.notify()
            if self.ended == self.target:
                self._all_ended.notify_all()
        if handle is not None:
            self._check_info(key, handle, code)

    # the submitting thread
    def admit(self) -> bool:
        """Count one more task in flight, first waiting while the limit
        is reached; ``False`` if no task ended for STALL seconds.

        A full ledger lets the submitter go only once 5 % of the limit
        has ended, so that it wakes once per batch, not once per task.
        """
        with self._room:
            while self._in_flight >= self._limit:
                before = self.ended
                self._blocked = True
                self._room.wait(STALL)
                if self.ended == before:
                    return False
            self._in_flight += 1
        return True

    def unadmit(self) -> None:
        """A task counted by :meth:`admit` was not submitted after all."""
        with self.lock:
            self._in_flight -= 1

    def submitted(self, key: int, handle: atasker.TaskId) -> None:
        with self.lock:
            if key not in self.early:
                self.pending[key] = handle
                return
            self.early.discard(key)
            code = self.outcome[key]
        self._check_info(key, handle, code)

    def _check_info(self, key: int, handle: atasker.TaskId,
                    code: int) -> None:
        """The task has ended with *code*: its TaskInfo must say so."""
        seen = self.info_outcome(key, handle)
        if seen != code:
            with self.lock:
                self.info_mismatch.append((key, code, seen))

    def info_outcome(self, key: int, handle: atasker.TaskId) -> int:
        """The outcome ``get_task_info`` shows, in the ledger's codes."""
        info = self._supervisor.get_task_info(handle)
        if info is None:
            return NONE
        if info.status == TASK_STATUS_COMPLETED:
            return COMPLETED if info.result == key else WRONG_RESULT
        if info.status == TASK_STATUS_CANCELED:
            return CANCELED
        if info.status == TASK_STATUS_FAILED:
            code = ERROR_CODES.get(type(info.exception), OTHER_ERROR)
            return OTHER_ERROR if code == CANCELED else code
        return NOT_FINAL

    def wait_all_ended(self, submitted: int) -> bool:
        """Wait until *submitted* tasks have ended; ``False`` if none ended
        for STALL seconds (the run is stuck)."""
        with self._all_ended:
            self.target = submitted
            while self.ended < submitted:
                before = self.ended
                self._all_ended.wait(STALL)
                if self.ended == before:
                    return False
        return True


# -- submitting ---------------------------------------------------------------
class Submitter:
    """Draws each task's kind, action and priority from a seeded RNG and
    submits it to the supervisor, with the ledger's callbacks."""

    def __init__(self, supervisor: atasker.TaskSupervisor, ledger: Ledger,
                 rng: random.Random) -> None:
        self._sup = supervisor
        self._ledger = ledger
        self._rng = rng
        self._kind = Choice(rng, list(KIND_WEIGHTS))
        self._action = [Choice(rng, [w[k] for w, _ in ACTIONS.values()])
                        for k in range(len(KINDS))]
        self._priority = Choice(rng, [w for _, w in PRIORITIES])
        self._recent: collections.deque = collections.deque(maxlen=RECENT)

    def submit(self, key: int) -> None:
        ledger, rng = self._ledger, self._rng
        kind = self._kind()
        index = self._action[kind]()
        action = ACTION_NAMES[index]
        ledger.plan_kind[key] = kind
        ledger.plan_action[key] = index
        options: dict = {
            "priority": PRIORITIES[self._priority()][0],
            "callback": functools.partial(ledger.completed, key),
            "error_callback": functools.partial(ledger.failed, key)}
        target, args = self._target(kind, action, key, options)
        handle = self._sup.put_task(target, args=args, **options)
        ledger.submitted(key, handle)
        if action == "delay_cancel" and self._sup.cancel_task(handle):
            ledger.canceled[key] = 1
        if rng.random() < CANCEL_RATE and self._recent:
            other, other_handle = self._recent[rng.randrange(
                len(self._recent))]
            if self._sup.cancel_task(other_handle):
                ledger.canceled[other] = 1
        self._recent.append((key, handle))

    def _target(self, kind: int, action: str, key: int,
                options: dict) -> tuple:
        """The function and arguments of a task; sets its options."""
        rng = self._rng
        if kind == PROCESS:
            options["tt"] = TT_MP
        if action == "delay":
            options["delay"] = rng.uniform(0.001, 0.02)
        elif action == "delay_cancel":
            options["delay"] = 2.0
        elif action == "slack_timeout":
            options["timeout"] = HANG
        elif action == "timeout":
            options["timeout"] = 0.01 if kind != PROCESS else 0.05
            if kind == THREAD:
                release = self._ledger.releases[key] = threading.Event()
                return wait_for, (release, key)
            return (hang if kind == PROCESS else co_hang), (key,)
        if action == "raise":
            return (co_fail if kind == COROUTINE else fail), (key,)
        if action == "kill_self":
            return kill_self, (key,)
        return (co_echo if kind == COROUTINE else echo), (key,)


# -- the run ------------------------------------------------------------------
class LogCounter(logging.Handler):
    """Counts atasker's log records by level, and those of WARNING and
    above by message template (the soak provokes thousands)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.levels: collections.Counter = collections.Counter()
        self.templates: collections.Counter = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.levels[record.levelname] += 1
        if record.levelno >= logging.WARNING:
            self.templates[f"{record.levelname}: {record.msg}"] += 1


def rss() -> int:
    return psutil.Process().memory_info().rss


class Progress:
    """The parent's RSS -- once warmed up, its peak, one sample per 100,000
    tasks -- and a progress line on stderr with each sample.

    Warm-up is the first quarter of ``--tasks`` (or of ``--seconds``), and
    at least ``--inflight`` tasks ended.  The unfinished tasks need that
    long to reach their working mix: the process pool is the bottleneck,
    and under strict priority its queue slowly fills with low-priority
    tasks (each held with its pickled call) until they are most of the
    ``--inflight`` allowed.
    """

    def __init__(self, args: argparse.Namespace, ledger: Ledger,
                 supervisor: atasker.TaskSupervisor) -> None:
        self._ledger = ledger
        self._supervisor = supervisor
        self._inflight = args.inflight
        self.started = time.monotonic()
        self._warm_tasks = max(1, args.tasks // 4)
        self._warm_time = self.started + (
            args.seconds / 4 if args.seconds else float("inf"))
        self.warm: Optional[int] = None
        self.peak = rss()
        self.trace: list = []       # (tasks submitted, MiB)
        self._last = (0, self.started)

    def tick(self, key: int, now: float) -> None:
        """Called before task *key* is submitted."""
        if self.warm is None and self._ledger.ended >= self._inflight and (
                key >= self._warm_tasks or now >= self._warm_time):
            gc.collect()
            self.warm = self.peak = rss()
        if key % 10_000 or not key:
            return
        now_rss = rss()
        self.peak = max(self.peak, now_rss)
        if key % 100_000:
            return
        self.trace.append((key, round(now_rss / MIB, 1)))
        last_key, last_time = self._last
        self._last = (key, now)
        info = self._supervisor.get_info(aloops=False, schedulers=False)
        print(f"soak: {key:,} submitted, {self._ledger.ended:,} ended, "
              f"{(key - last_key) / (now - last_time):,.0f} tasks/s lately; "
              f"queued: {info.thread_queue:,} thread, {info.mp_queue:,} "
              f"process tasks; RSS {now_rss / MIB:.1f} MiB, "
              f"{threading.active_count()} threads", file=sys.stderr,
              flush=True)

    def report(self) -> dict:
        """The RSS figures, at the end of the run."""
        gc.collect()
        end = rss()
        warm = end if self.warm is None else self.warm
        return {"rss_warm_mib": round(warm / MIB, 1),
                "rss_peak_mib": round(max(self.peak, end) / MIB, 1),
                "rss_end_mib": round(end / MIB, 1),
                "rss_growth_mib": round((end - warm) / MIB, 1),
                "rss_trace": self.trace}


def count_log() -> LogCounter:
    """Count atasker's records instead of printing them (the soak provokes
    a warning for each failed task)."""
    log = LogCounter()
    atasker_log = logging.getLogger("atasker")
    atasker_log.addHandler(log)
    atasker_log.propagate = False
    atasker_log.setLevel(logging.WARNING)
    return log


def drive(args: argparse.Namespace, ledger: Ledger, submitter: Submitter,
          progress: Progress, errors: list) -> int:
    """Submit tasks until ``--tasks`` or ``--seconds``, then wait for all
    to end; return how many were submitted.  A stall or a failing
    ``put_task`` is added to *errors*, with every thread's stack dumped
    on stderr."""
    deadline = progress.started + args.seconds if args.seconds else None
    submitted = 0
    for key in range(args.tasks):
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        progress.tick(key, now)
        if not ledger.admit():
            errors.append(f"stalled: no task ended for {STALL:g} s with "
                          f"{args.inflight} in flight")
            faulthandler.dump_traceback(all_threads=True)
            break
        try:
            submitter.submit(key)
        except Exception as exc:    # a bug: reported, not raised
            ledger.unadmit()
            errors.append(f"put_task of task {key} raised {exc!r}")
            break
        submitted = key + 1
    if not ledger.wait_all_ended(submitted):
        errors.append(f"stalled: {submitted - ledger.ended} tasks not ended "
                      f"{STALL:g} s after the last one did")
        faulthandler.dump_traceback(all_threads=True)
    return submitted


def run(args: argparse.Namespace) -> dict:
    """One soak; the report."""
    log = count_log()
    threads_before = set(threading.enumerate())
    children_before = {p.pid for p in worker_processes()}
    rng = random.Random(args.seed)
    sup = atasker.TaskSupervisor()
    sup.set_mp_pool(pool_size=args.processes, reserve_normal=0,
                    reserve_high=0)
    ledger = Ledger(sup, args.tasks, args.inflight)
    submitter = Submitter(sup, ledger, rng)
    killer = Killer(rng.randrange(2 ** 32), args.kill_every)
    progress = Progress(args, ledger, sup)
    errors: list = []
    killer.start()
    try:
        submitted = drive(args, ledger, submitter, progress, errors)
        ran = time.monotonic() - progress.started
    finally:
        killer.stop()
        stop_started = time.monotonic()
        # every task has ended, unless the run stalled
        sup.stop(wait=STOP_LIMIT, cancel_tasks=bool(errors))
        stopped_in = time.monotonic() - stop_started
    if stopped_in >= STOP_LIMIT:
        errors.append(f"stop() took {stopped_in:.1f} s")
    at_once, threads_left, processes_left = leftovers(threads_before,
                                                      children_before)
    report = reconcile(ledger, killer, submitted)
    report.update(progress.report())
    report.update({
        "seed": args.seed, "tasks": submitted, "inflight": args.inflight,
        "processes": args.processes, "kill_every": args.kill_every,
        "seconds": round(ran, 3),
        "tasks_per_s": round(submitted / max(ran, 1e-9), 1),
        "stop_seconds": round(stopped_in, 3),
        "alive_right_after_stop": at_once,
        "threads_left": threads_left, "processes_left": processes_left,
        "errors": errors, "log": dict(log.levels),
        "log_templates": dict(log.templates.most_common()),
        "platform": f"{platform.system()} {platform.machine()}, "
                    f"{os.cpu_count()} CPUs, Python "
                    f"{platform.python_version()}"})
    report["ok"] = not (report["lost"] or report["duplicated"]
                        or report["mismatched"] or threads_left
                        or processes_left or errors)
    return report


def leftovers(threads_before: set, children_before: set) -> tuple:
    """How many new threads and processes are alive right after ``stop()``
    returned; names of the threads and pids of the processes still alive
    GRACE seconds later (being unlisted may take an instant)."""
    deadline = time.monotonic() + GRACE
    threads = [t for t in threading.enumerate() if t not in threads_before]
    processes = [p for p in worker_processes()
                 if p.pid not in children_before]
    at_once = len(threads) + len(processes)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    _, alive = psutil.wait_procs(
        processes, timeout=max(0.1, deadline - time.monotonic()))
    return (at_once, [t.name for t in threads if t.is_alive()],
            sorted(p.pid for p in alive))


def reconcile(ledger: Ledger, killer: Killer, submitted: int) -> dict:
    """Compare every task's outcome with its plan; count the exceptions."""
    by_kind = {kind: collections.Counter() for kind in KINDS}
    lost, duplicated, mismatched, examples = [], [], [], []
    excused = 0
    spent: collections.Counter = collections.Counter()   # shots used, by pid
    planned_codes = [outcome for _, outcome in ACTIONS.values()]
    with ledger.lock:
        outcome, calls = ledger.outcome, ledger.calls
        lost_pids, extra = dict(ledger.lost_pids), dict(ledger.extra)
        info_mismatch = list(ledger.info_mismatch)
        unreconciled = dict(ledger.pending)
    with killer.lock:
        shots = collections.Counter(killer.shots)
    kill_self = ACTION_NAMES.index("kill_self")
    self_kills = 0
    for key in range(submitted):
        kind = ledger.plan_kind[key]
        got = outcome[key]
        by_kind[KINDS[kind]][OUTCOMES[got]] += 1
        if got == WORKER_LOST and ledger.plan_action[key] == kill_self:
            self_kills += 1
        if not calls[key]:
            lost.append(key)
            continue
        if calls[key] > 1:
            duplicated.append(key)
        want = CANCELED if ledger.canceled[key] else \
            planned_codes[ledger.plan_action[key]]
        if got == want:
            continue
        if got == WORKER_LOST and kind == PROCESS and \
                spent[lost_pids.get(key)] < shots[lost_pids.get(key)]:
            spent[lost_pids[key]] += 1      # the killer shot its worker
            excused += 1
            continue
        mismatched.append(key)
        if len(examples) < 10:
            examples.append(describe(ledger, key, want, got))
    mismatched_keys = set(mismatched)
    for key, seen_by_callback, seen_in_info in info_mismatch:
        if key not in mismatched_keys:
            mismatched.append(key)
            mismatched_keys.add(key)
        if len(examples) < 10:
            examples.append(f"task {key}: callback saw "
                            f"{OUTCOMES[seen_by_callback]}, get_task_info "
                            f"{OUTCOMES[seen_in_info]}")
    lost_examples = []
    for key in lost[:10]:
        handle = unreconciled.get(key)
        seen = NONE if handle is None else ledger.info_outcome(key, handle)
        lost_examples.append(
            f"task {key} ({KINDS[ledger.plan_kind[key]]}, "
            f"{ACTION_NAMES[ledger.plan_action[key]]}): no callback; "
            f"get_task_info says {OUTCOMES[seen]}")
    for key in duplicated[:10]:
        examples.append(f"task {key}: callbacks {calls[key]}, first "
                        f"{OUTCOMES[outcome[key]]}, then "
                        f"{[OUTCOMES[c] for c in extra.get(key, [])]}")
    return {
        "by_kind": {kind: dict(counts) for kind, counts in by_kind.items()},
        "lost": len(lost), "duplicated": len(duplicated),
        "mismatched": len(mismatched), "info_mismatched": len(info_mismatch),
        "examples": lost_examples + examples,
        "killer_shots": sum(shots.values()),
        "excused_worker_lost": excused,
        "self_kills": self_kills,
    }


def describe(ledger: Ledger, key: int, want: int, got: int) -> str:
    return (f"task {key} ({KINDS[ledger.plan_kind[key]]}, "
            f"{ACTION_NAMES[ledger.plan_action[key]]}"
            f"{', canceled' if ledger.canceled[key] else ''}): expected "
            f"{OUTCOMES[want]}, got {OUTCOMES[got]}")


def show(report: dict) -> None:
    print(f"soak: {report['tasks']:,} tasks, seed {report['seed']}, "
          f"{report['processes']} processes, at most {report['inflight']:,} "
          f"in flight; {report['platform']}")
    columns = [o for o in OUTCOMES if any(
        counts.get(o) for counts in report["by_kind"].values())]
    print(f"  {'':<10}" + "".join(f"{c:>17}" for c in columns))
    for kind, counts in report["by_kind"].items():
        print(f"  {kind:<10}" + "".join(f"{counts.get(c, 0):>17,}"
                                        for c in columns))
    print(f"  worker kills: {report['killer_shots']} by the killer thread "
          f"({report['excused_worker_lost']} tasks failed by them), "
          f"{report['self_kills']} tasks killed their own worker")
    print(f"  lost {report['lost']}, duplicated {report['duplicated']}, "
          f"mismatched {report['mismatched']} (get_task_info disagreeing "
          f"with the callback: {report['info_mismatched']})")
    for line in report["examples"]:
        print(f"    {line}")
    print(f"  RSS {report['rss_warm_mib']:.1f} MiB after warm-up, peak "
          f"{report['rss_peak_mib']:.1f}, end {report['rss_end_mib']:.1f}: "
          f"growth {report['rss_growth_mib']:+.1f} MiB")
    if report["rss_trace"]:
        print("  RSS every 100,000 tasks (MiB): " + " ".join(
            f"{mib:.1f}" for _, mib in report["rss_trace"]))
    print(f"  left after stop() ({report['stop_seconds']:.2f} s): "
          f"{report['alive_right_after_stop']} threads or processes as it "
          f"returned; {GRACE:g} s later threads "
          f"{report['threads_left'] or 'none'}, processes "
          f"{report['processes_left'] or 'none'}")
    print(f"  atasker log records: {report['log']}")
    for template, count in report["log_templates"].items():
        print(f"    {count:>9,}  {template}")
    for error in report["errors"]:
        print(f"  ERROR: {error}")
    print(f"  {report['seconds']:.1f} s, {report['tasks_per_s']:,.0f} "
          f"tasks/s: {'OK' if report['ok'] else 'FAILED'}")


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000,
                        help="tasks to submit (default 1,000,000)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="stop submitting after this long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inflight", type=int, default=20_000,
                        help="most tasks unfinished at once")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--kill-every", type=float, default=0.5,
                        help="mean seconds between the killer's shots")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    # Run the copy imported by its name: a process task's function is
    # pickled by module, and a worker cannot import "__main__" of -m.
    from benchmarks import soak
    sys.exit(soak.main())
