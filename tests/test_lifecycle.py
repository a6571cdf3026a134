"""Lifecycle races and hangs: starting, stopping, dropping and forking.

Each test pins one guarantee that concurrent use, a bounded stop, garbage
collection or ``os.fork()`` must not break.  Races are hammered (many
iterations, threads released together by a barrier); hangs run in a
subprocess with a hard timeout and an in-process watchdog
(``faulthandler.dump_traceback_later``) that dumps every thread's stack
and exits, so a hang fails fast and says where it hung.

Only the public API is used: these tests must run unchanged against any
internal layout of the package.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import weakref

import psutil
import pytest

import atasker
from atasker import (TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TASK_STATUS_FAILED, TT_MP, TaskSupervisor)

from . import mp_funcs
from .conftest import SAFETY, _our_children

FINAL = (TASK_STATUS_COMPLETED, TASK_STATUS_FAILED, TASK_STATUS_CANCELED)
STATUS_NAMES = {getattr(atasker, name): name[len("TASK_STATUS_"):].lower()
                for name in atasker.__all__
                if name.startswith("TASK_STATUS_")}
#: the directory holding the atasker package this process imported: the
#: subprocesses import that same one
HOME = os.path.dirname(os.path.dirname(os.path.abspath(atasker.__file__)))
HARD_TIMEOUT = 20.0     # seconds: kills a hung subprocess (a safety net)


def run_script(script: str, *args: str,
               timeout: float = HARD_TIMEOUT) -> subprocess.CompletedProcess:
    """Run *script* in a fresh interpreter; fail if it hangs or fails."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (HOME, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            cwd=HOME, env=env, capture_output=True, text=True,
            timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"subprocess still running after {timeout} s (hung); "
                    f"stdout: {exc.stdout!r} stderr: {exc.stderr!r}")
    assert done.returncode == 0, (
        f"subprocess exited with {done.returncode}\nstdout:\n{done.stdout}"
        f"\nstderr (last 3000 chars):\n{done.stderr[-3000:]}")
    return done


def threads_named(name: str) -> list:
    """Live threads called *name* or ``<name>_...``."""
    return [t for t in threading.enumerate() if t.is_alive() and (
        t.name == name or t.name.startswith(name + "_"))]


def release_together(count: int, action) -> list:
    """Run *action()* in *count* threads released by one barrier; return
    what they raised."""
    barrier = threading.Barrier(count)
    errors: list = []

    def body():
        barrier.wait()
        try:
            action()
        except BaseException as exc:   # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=body) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SAFETY)
        assert not thread.is_alive(), "a released thread is stuck"
    return errors


def double(x):
    return x * 2


class AsyncGate:
    """``run`` is a coroutine function that reports it started and then
    waits, on its loop, until :meth:`open` is called (or it is canceled)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self._loop = None
        self._event = None

    async def run(self, *args, **kwargs):
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self.started.set()
        await self._event.wait()

    def wait_started(self) -> None:
        assert self.started.wait(SAFETY), "coroutine never started"

    def open(self) -> None:
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:        # its loop is closed: it has ended
            pass


class TimedStop:
    """``supervisor.stop(wait=wait)`` called in a thread and timed.

    The test waits at most *give_up* seconds for it (so a stop that blocks
    on a gate fails fast), then opens its gates and calls :meth:`check`.
    """

    def __init__(self, supervisor, wait, give_up: float) -> None:
        self.took: list = []
        self.errors: list = []
        self.thread = threading.Thread(target=self._stop,
                                       args=(supervisor, wait))
        self.thread.start()
        self.thread.join(give_up)
        self.returned_in_time = not self.thread.is_alive()
        self.give_up = give_up

    def _stop(self, supervisor, wait) -> None:
        start = time.monotonic()
        try:
            supervisor.stop(wait=wait)
        except BaseException as exc:   # reported by check()
            self.errors.append(exc)
        self.took.append(time.monotonic() - start)

    def check(self, limit: float) -> None:
        self.thread.join(SAFETY)
        assert not self.thread.is_alive(), "stop() never returned"
        assert not self.errors, self.errors
        assert self.returned_in_time, (
            f"stop() was still blocked after {self.give_up} s (it returned "
            f"only once the stuck work was released)")
        assert self.took[0] <= limit, f"stop() took {self.took[0]:.2f} s"


# ---------------------------------------------------------------------------
# 1. the timer thread is started once, however many first submissions race
# ---------------------------------------------------------------------------
TIMER_START_SCRIPT = """
    import faulthandler, sys, threading
    import atasker

    option, value = sys.argv[1], float(sys.argv[2])
    submitters = 6

    def noop():
        return None

    for i in range(150):
        faulthandler.dump_traceback_later(3, exit=True)    # per iteration
        sup = atasker.TaskSupervisor(pool_size=4)
        barrier = threading.Barrier(submitters)
        ids = []

        def submit():
            barrier.wait()
            ids.append(sup.put_task(noop, **{option: value}))

        threads = [threading.Thread(target=submit) for _ in range(submitters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sup.wait_completed(ids, timeout=5)
        print(i, end=" ", flush=True)   # the iteration that hangs, if any
        sup.stop()      # hangs if a second timer thread was made
        left = [t for t in threading.enumerate()
                if t.name.startswith(f"atasker_{sup.id}_")]
        assert not left, f"iteration {i}: stop() left {left}"
    faulthandler.cancel_dump_traceback_later()
    print("ok")
"""


@pytest.mark.parametrize("option,value", [("delay", "0.001"),
                                          ("timeout", "60")])
def test_concurrent_first_timed_submissions_then_stop_returns(option, value):
    """Concurrent first submissions with ``delay=``/``timeout=`` on a fresh
    supervisor start one timer thread, so ``stop()`` always returns (and
    leaves no supervisor thread behind)."""
    assert run_script(TIMER_START_SCRIPT, option, value).stdout.endswith(
        "ok\n")


# ---------------------------------------------------------------------------
# 2. an aloop started concurrently has one thread
# ---------------------------------------------------------------------------
def _running_loops() -> set:
    return {id(obj) for obj in gc.get_objects()
            if isinstance(obj, asyncio.AbstractEventLoop)
            and obj.is_running()}


def _stop_orphan_loops(known: set) -> None:
    """Safety net for the bug under test: stop event loops that run in
    threads nobody can stop any more (public asyncio API only)."""
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and \
                obj.is_running() and id(obj) not in known:
            obj.call_soon_threadsafe(obj.stop)


def test_concurrent_aloop_starts_make_one_thread(sup):
    """Concurrent ``ALoop.start()`` calls start exactly one loop thread;
    ``stop()`` then ends it (none is leaked)."""
    known = _running_loops()
    for i in range(150):
        name = f"race{i}"
        aloop = sup.create_aloop(name, start=False)
        errors = release_together(4, aloop.start)
        alive = threads_named(f"supervisor_aloop_{name}")
        aloop.stop()
        left = [t for t in alive if t.is_alive()]
        if left:
            _stop_orphan_loops(known)
            for thread in left:
                thread.join(SAFETY)
        assert not errors, errors
        assert len(alive) == 1, (
            f"iteration {i}: {len(alive)} threads for one aloop: {alive}")
        assert not left, f"iteration {i}: stop() left {left} running"


ALOOP_START_SCRIPT = """
    import faulthandler, threading
    import atasker

    sup = atasker.TaskSupervisor(pool_size=2)
    for i in range(100):
        aloop = sup.create_aloop(f"x{i}", start=False)      # not daemon
        barrier = threading.Barrier(4)

        def start():
            barrier.wait()
            aloop.start()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    sup.stop()
    print("stopped", flush=True)
    # a leaked non-daemon loop thread keeps the interpreter from exiting
    faulthandler.dump_traceback_later(3, exit=True)
"""


def test_concurrent_aloop_starts_let_the_interpreter_exit():
    """After concurrent ``ALoop.start()`` calls and ``stop()``, no loop
    thread is left to keep the interpreter from exiting."""
    assert run_script(ALOOP_START_SCRIPT).stdout.strip() == "stopped"


# ---------------------------------------------------------------------------
# 3. stop(wait=seconds) is one deadline for everything it waits for
# ---------------------------------------------------------------------------
def test_stop_wait_bounds_workers_aloops_and_threads_together(sup, gates):
    """``stop(wait=0.5)`` with a stuck worker run, a stuck coroutine task,
    a stuck coroutine on an aloop and a stuck thread task returns within
    0.7 s: the seconds are one deadline, not a flag handed to workers."""
    worker_gate, thread_gate = gates(), gates()
    co_task, co_raw = AsyncGate(), AsyncGate()

    def executor(**_):
        worker_gate()

    worker = atasker.background_worker(executor, supervisor=sup)
    worker.start()
    worker_gate.wait_started()
    sup.put_task(thread_gate)
    thread_gate.wait_started()
    sup.put_task(co_task.run)                   # on the default aloop
    co_task.wait_started()
    sup.create_aloop("raw").background_task(co_raw.run())
    co_raw.wait_started()
    try:
        stop = TimedStop(sup, 0.5, give_up=1.5)
    finally:
        for gate in (worker_gate, thread_gate, co_task, co_raw):
            gate.open()
    stop.check(0.7)


def test_stop_wait_bounds_all_aloops_together(sup):
    """With two aloops each running a stuck coroutine, ``stop(wait=0.5)``
    returns within 0.7 s: the aloops share the deadline instead of each
    getting the full wait in turn."""
    stuck = [AsyncGate(), AsyncGate()]
    for name, gate in zip("ab", stuck):
        sup.create_aloop(name).background_task(gate.run())
        gate.wait_started()
    try:
        stop = TimedStop(sup, 0.5, give_up=1.5)
    finally:
        for gate in stuck:
            gate.open()
    stop.check(0.7)


# ---------------------------------------------------------------------------
# 4. a coroutine task due while its aloop winds down still ends
# ---------------------------------------------------------------------------
async def hop(value):
    for _ in range(3):
        await asyncio.sleep(0)
    return value


def _hammer_delayed_coroutines(how: str, iterations: int,
                               per_iteration: int) -> tuple:
    """Submit delayed coroutine tasks due around the stop of their aloop;
    return ({key: status}, {key: number of callbacks})."""
    lock = threading.Lock()
    calls: dict = {}
    ended_count = [0]
    all_ended = threading.Event()
    total = iterations * per_iteration
    ids = {}            # key -> (supervisor, task id)

    def ended(key, _value):
        with lock:
            calls[key] = calls.get(key, 0) + 1
            ended_count[0] += 1
            if ended_count[0] >= total:
                all_ended.set()

    # private supervisors: a task stuck for ever must not make the
    # fixture's teardown wait its full SAFETY
    supervisors: list = []
    try:
        for i in range(iterations):
            if how == "aloop.stop()":
                if not supervisors:
                    supervisors.append(TaskSupervisor(pool_size=2))
                supervisor = supervisors[0]
                aloop = supervisor.create_aloop(f"wind{i}")
                stop = aloop.stop
            else:
                supervisor = TaskSupervisor(pool_size=2)
                supervisors.append(supervisor)
                aloop = supervisor.create_aloop("default", default=True)
                stop = functools.partial(supervisor.stop, wait=False)
            for k in range(per_iteration):
                key = (i, k)
                submit = atasker.background_task(
                    hop, loop=aloop, delay=0.0002 * (k + 1),
                    supervisor=supervisor,
                    callback=functools.partial(ended, key),
                    error_callback=functools.partial(ended, key))
                ids[key] = supervisor, submit(key)
            stop()
        all_ended.wait(2.0)     # a safety net: it must not run out
        statuses = {key: supervisor.get_task_info(task_id).status
                    for key, (supervisor, task_id) in ids.items()}
    finally:
        # end what the bug left hanging, else stopping the supervisors at
        # interpreter exit would wait for it for ever
        for supervisor, task_id in ids.values():
            if not supervisor.cancel_task(task_id):
                supervisor.mark_task_completed(task_id=task_id)
        for supervisor in supervisors:
            supervisor.stop(wait=0.5)
    with lock:
        return statuses, dict(calls)


@pytest.mark.parametrize("how", ["aloop.stop()", "supervisor.stop(False)"])
def test_delayed_coroutine_due_during_aloop_stop_ends_once(how):
    """A delayed coroutine task that becomes due while its aloop is
    stopping -- stopped by itself, or by ``stop(wait=False)`` of its
    supervisor -- ends in a final status, and exactly one of its callbacks
    runs (it is never left queued or started on a closed loop)."""
    try:
        statuses, calls = _hammer_delayed_coroutines(how, 100, 20)
    finally:
        # collect here what the bug leaves on closed loops (coroutines
        # never awaited), not in whichever test runs the next collection
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gc.collect()
    not_final = [(key, STATUS_NAMES[status])
                 for key, status in statuses.items() if status not in FINAL]
    assert not not_final, (f"{len(not_final)} of {len(statuses)} tasks "
                           f"never ended: (key, status) {not_final[:5]}")
    missing = [(key, calls.get(key)) for key in statuses
               if calls.get(key) != 1]
    assert not missing, (f"{len(missing)} tasks did not get exactly one "
                         f"callback: (key, calls) {missing[:5]}")


# ---------------------------------------------------------------------------
# 5. a loop worker racing stop() logs no error
# ---------------------------------------------------------------------------
def test_fast_loop_worker_during_stop_logs_no_error(caplog):
    """A loop worker that resubmits as fast as it can while its supervisor
    stops ends quietly: no "callback ... raised" (or any other error)
    record from atasker's loggers.  (Records of other loggers are left
    out: asyncio may log, at any time, about garbage of earlier tests.)"""
    caplog.set_level(logging.ERROR, logger="atasker")
    for i in range(100):
        supervisor = TaskSupervisor(pool_size=2)
        ran = threading.Event()
        runs = [0]

        def executor(**_):
            runs[0] += 1
            if runs[0] >= 3:
                ran.set()

        worker = atasker.background_worker(executor, supervisor=supervisor)
        worker.start()
        assert ran.wait(SAFETY)
        supervisor.stop()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR
                  and r.name.split(".")[0] == "atasker"]
        assert not errors, (f"iteration {i}: "
                            f"{[r.getMessage() for r in errors[:3]]}")


# ---------------------------------------------------------------------------
# 6. "inside a task of this supervisor" is decided by object, not name
# ---------------------------------------------------------------------------
def test_stop_other_supervisor_from_same_named_aloop(sup):
    """From a coroutine task on supervisor B's aloop "default", stopping
    supervisor A (whose aloop is also named "default") with ``wait=True``
    works; stopping B itself from there still raises ``RuntimeError``."""

    async def name():
        return threading.current_thread().name

    other = TaskSupervisor(pool_size=2)
    try:
        assert other.wait_completed(other.put_task(name), SAFETY) == \
            sup.wait_completed(sup.put_task(name), SAFETY) == \
            "supervisor_aloop_default"

        async def stop_own():
            sup.stop()

        with pytest.raises(RuntimeError, match="inside a task"):
            sup.wait_completed(sup.put_task(stop_own), SAFETY)

        async def stop_other():
            other.stop()
            return other.is_active

        try:
            active = sup.wait_completed(sup.put_task(stop_other), SAFETY)
        except RuntimeError as exc:
            pytest.fail(f"stopping another supervisor raised: {exc}")
        assert active is False
    finally:
        other.stop()


def test_stop_from_thread_merely_named_like_an_aloop():
    """A plain thread whose name happens to be ``supervisor_aloop_default``
    is no task of the supervisor: ``stop(wait=True)`` from it works."""

    async def ping():
        return "pong"

    supervisor = TaskSupervisor(pool_size=2)
    errors: list = []
    try:
        assert supervisor.wait_completed(supervisor.put_task(ping),
                                         SAFETY) == "pong"

        def stop():
            try:
                supervisor.stop()
            except BaseException as exc:   # reported below
                errors.append(exc)

        thread = threading.Thread(target=stop,
                                  name="supervisor_aloop_default")
        thread.start()
        thread.join(SAFETY)
        assert not thread.is_alive()
        assert not errors, errors
    finally:
        supervisor.stop()


# ---------------------------------------------------------------------------
# 7. a dropped supervisor is collected and its threads and processes end
# ---------------------------------------------------------------------------
def _drop(ref) -> None:
    """Collect; if the supervisor survives, stop it so nothing leaks, and
    fail."""
    gc.collect()
    survivor = ref()
    if survivor is not None:
        survivor.stop()
        del survivor
        pytest.fail("a dropped supervisor is still referenced (its pools "
                    "hold it)")


def _collect_and_join(ref, threads, prefix) -> None:
    """The supervisor behind *ref* has been dropped: collect it, and wait
    for its *threads* (named *prefix*...) to end."""
    _drop(ref)
    for thread in threads:
        thread.join(SAFETY)
    assert not threads_named(prefix)


def test_dropped_supervisor_is_collected_and_its_threads_end():
    """Like a dropped ``ThreadPoolExecutor``: a supervisor nobody refers to
    is garbage-collected and its pool threads end."""
    s = TaskSupervisor(pool_size=2)
    try:
        assert s.wait_completed(s.put_task(double, args=(21,)), SAFETY) \
            == 42
        prefix = f"atasker_{s.id}"
        threads = threads_named(prefix)
        assert threads                  # an idle pool thread
    except BaseException:
        s.stop()
        raise
    ref = weakref.ref(s)
    del s
    _collect_and_join(ref, threads, prefix)


def test_dropped_supervisor_with_process_pool_ends_its_processes():
    """A dropped supervisor that ran a ``TT_MP`` task is collected, and its
    threads and worker processes end."""
    before = set(_our_children())
    s = TaskSupervisor(pool_size=2)
    # spawn: its workers are visible children (forkserver's are grand-
    # children that look like the forkserver, which the census exempts)
    s.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0,
                  context="spawn")
    try:
        assert s.wait_completed(
            s.put_task(mp_funcs.add, args=(1, 2), tt=TT_MP), SAFETY) == 3
        assert s.wait_completed(s.put_task(double, args=(1,)), SAFETY) == 2
        prefix = f"atasker_{s.id}"
        threads = threads_named(prefix)
        processes = [p for pid, p in _our_children().items()
                     if pid not in before]
        assert threads and processes
    except BaseException:
        s.stop()
        raise
    ref = weakref.ref(s)
    del s
    _collect_and_join(ref, threads, prefix)
    _, alive = psutil.wait_procs(processes, timeout=SAFETY)
    assert not alive, f"worker processes outlived their supervisor: {alive}"


# ---------------------------------------------------------------------------
# 8. the thread pool works in a forked child
# ---------------------------------------------------------------------------
FORK_SCRIPT = """
    import os, sys, time
    import atasker

    def value(x):
        return x

    private = atasker.TaskSupervisor(pool_size=2)
    # one task each to completion: an idle pool thread now exists
    assert atasker.wait_completed(atasker.background_task(value)(1), 5) == 1
    assert private.wait_completed(private.put_task(value, args=(1,)), 5) == 1

    pid = os.fork()
    if pid == 0:
        failed = 0
        deadline = time.monotonic() + 2
        in_global = atasker.background_task(value)(2)
        in_private = private.put_task(value, args=(3,))
        for bit, sup, tid, want in ((1, atasker.task_supervisor, in_global,
                                     2), (2, private, in_private, 3)):
            try:
                left = max(0.01, deadline - time.monotonic())
                if sup.wait_completed(tid, timeout=left) != want:
                    failed |= bit
            except BaseException as exc:
                print(sup.id, repr(exc), flush=True)
                failed |= bit
        os._exit(failed)
    _, status = os.waitpid(pid, 0)
    private.stop()
    sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_thread_tasks_run_in_a_forked_child():
    """After ``os.fork()`` the child's thread pools (the global supervisor's
    and a private one) run new tasks: idle threads of the parent do not
    exist there."""
    run_script(FORK_SCRIPT)


# ---------------------------------------------------------------------------
# 9. a TaskInfo is complete before its status says it is final
# ---------------------------------------------------------------------------
def work(i):
    return i + 1


def test_task_info_fields_are_set_before_final_status(sup):
    """A reader that sees ``status == TASK_STATUS_COMPLETED`` (read without
    any lock, as ``get_task_info`` allows) also sees ``result``,
    ``exception``, ``time_started`` and ``time_completed`` already set.

    To widen the window between two field writes, the pool threads (made
    after ``threading.setprofile``) yield the GIL at every C call, and the
    switch interval is tiny so the spinning reader gets it at once.  (A
    window with no C call in it, such as between the stores of ``status``
    and ``result``, stays invisible on a GIL build.)
    """

    def yield_at_c_calls(frame, event, arg):
        if event == "c_call":
            time.sleep(0)       # releases the GIL

    old_interval, old_profile = sys.getswitchinterval(), threading.getprofile()
    sys.setswitchinterval(1e-6)
    threading.setprofile(yield_at_c_calls)
    count, bad = 500, []
    try:
        for i in range(count):
            info = sup.get_task_info(sup.put_task(work, args=(i,)))
            deadline = time.monotonic() + SAFETY
            while info.status != TASK_STATUS_COMPLETED:
                assert info.status != TASK_STATUS_FAILED, info.exception
                assert time.monotonic() < deadline, "task never completed"
            seen = (info.result, info.exception, info.time_started,
                    info.time_completed)
            if seen[0] != i + 1 or seen[1] is not None or None in seen[2:]:
                bad.append((i, *seen))
    finally:
        threading.setprofile(old_profile)
        sys.setswitchinterval(old_interval)
    assert not bad, (
        f"{len(bad)} of {count} readers saw COMPLETED before the fields "
        f"were set: (i, result, exception, time_started, time_completed) "
        f"{bad[:3]}")
