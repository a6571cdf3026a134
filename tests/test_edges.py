"""Edges where a program used to hang: stop() from anywhere, exit, signals.

Hangs run in a subprocess with a hard timeout and an in-process watchdog
(``faulthandler.dump_traceback_later``) that dumps every thread's stack,
so a hang fails fast and says where it hung.  Only the public API is used.
"""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
import textwrap
import threading
import weakref

import psutil
import pytest

import atasker
from atasker import (TT_MP, TaskSupervisor, TaskTimeoutError,
                     WorkerLostError)

from . import mp_funcs
from .conftest import SAFETY
from .test_lifecycle import HOME, run_script

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals and setitimer")


def test_stop_from_a_one_shot_signal_handler_never_deadlocks():
    """A handler that uninstalls itself before calling stop() (a common
    one-shot pattern) is no longer among the installed handlers: stop()
    must still see that it interrupted put_task (it hung in 5 of 12
    runs)."""
    run_script("""
        import faulthandler, signal
        from atasker import TaskSupervisor
        faulthandler.dump_traceback_later(15, exit=True)

        def noop():
            pass

        for run in range(30):
            sup = TaskSupervisor(pool_size=2)
            stopped = []

            def handler(signum, frame, sup=sup, stopped=stopped):
                signal.signal(signal.SIGALRM, signal.SIG_DFL)
                sup.stop()
                stopped.append(True)

            signal.signal(signal.SIGALRM, handler)
            signal.setitimer(signal.ITIMER_REAL, 0.002 + run * 0.0002)
            while not stopped:
                try:
                    sup.put_task(noop)
                except RuntimeError:
                    pass
            sup.stop()
    """)


def test_stop_from_a_signal_handler_never_deadlocks():
    """A handler calling ``stop()`` may interrupt the main thread inside
    ``put_task``, holding the supervisor's lock: stop() must not wait for
    itself there (it hung in 2 of 10 runs).  Fifty supervisors, each
    stopped by a timer signal at a different point of a submission loop;
    every task accepted ends in a final state."""
    done = run_script("""
        import faulthandler, signal, sys
        from atasker import (TaskSupervisor, TASK_STATUS_COMPLETED,
                             TASK_STATUS_FAILED, TASK_STATUS_CANCELED)
        faulthandler.dump_traceback_later(15, exit=True)
        FINAL = (TASK_STATUS_COMPLETED, TASK_STATUS_FAILED,
                 TASK_STATUS_CANCELED)

        def noop():
            pass

        accepted = 0
        for run in range(50):
            sup = TaskSupervisor(pool_size=2)
            stopped = []

            def handler(signum, frame, sup=sup, stopped=stopped):
                sup.stop()
                stopped.append(True)

            signal.signal(signal.SIGALRM, handler)
            signal.setitimer(signal.ITIMER_REAL, 0.002 + run * 0.00013)
            ids = []
            while not stopped:
                try:
                    ids.append(sup.put_task(noop))
                except RuntimeError:
                    pass        # stopping: the handler is about to return
            signal.setitimer(signal.ITIMER_REAL, 0)
            sup.stop()          # waits for a stop the handler only began
            assert all(sup.get_task_info(i).status in FINAL for i in ids)
            accepted += len(ids)
        print("accepted", accepted)
    """)
    assert int(done.stdout.split()[-1]) > 50


# -- the process pool never blocks on one worker ------------------------------
def test_a_task_that_closes_its_pipe_stalls_no_other_task(fifo_gates):
    """The manager used to wait for such a worker to exit, reading no
    other result meanwhile.  It is killed now, its task fails, and the
    other worker's tasks go on."""
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=2, reserve_normal=0, reserve_high=0)
    try:
        gate = fifo_gates()
        bad = sup.put_task(mp_funcs.close_own_pipe_and_wait,
                           args=(gate.path,), tt=TT_MP)
        with open(gate.path) as fifo:
            assert fifo.read() == "started"
        ids = [sup.put_task(mp_funcs.add, args=(i,), tt=TT_MP)
               for i in range(20)]
        assert sup.wait_completed(ids, timeout=SAFETY) == list(range(20))
        with pytest.raises(WorkerLostError):
            sup.wait_completed(bad, timeout=SAFETY)
    finally:
        sup.stop(wait=SAFETY)


def test_a_thread_left_in_a_worker_does_not_hold_up_stop():
    """A worker process used to wait for a non-daemon thread a task left
    behind before it exited: stop() and interpreter exit hung."""
    done = run_script("""
        import faulthandler
        from atasker import TaskSupervisor, TT_MP
        from tests import mp_funcs
        faulthandler.dump_traceback_later(15, exit=True)
        sup = TaskSupervisor()
        sup.set_mp_pool(pool_size=1)
        print(sup.wait_completed(sup.put_task(mp_funcs.leave_thread_behind,
                                              tt=TT_MP), timeout=10))
        sup.stop()
        print("stopped")
    """)
    assert done.stdout.split() == ["left", "stopped"]


# -- nothing a task starts outlives it ---------------------------------------
def _assert_die(*pids: int) -> None:
    """Each of *pids* ends soon; any left is killed, then reported."""
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=SAFETY)
    for process in alive:
        process.kill()
    assert not alive, f"processes outlived what started them: {alive}"


def test_a_double_forked_daemon_dies_with_its_timed_out_task(mp_sup,
                                                             tmp_path):
    fifo = str(tmp_path / "daemon_pid")
    os.mkfifo(fifo)
    task_id = mp_sup.put_task(mp_funcs.start_daemon_and_wait, args=(fifo,),
                              tt=TT_MP, timeout=2)
    with open(fifo) as reader:
        daemon = int(reader.read())
    with pytest.raises(TaskTimeoutError):
        mp_sup.wait_completed(task_id, timeout=SAFETY)
    _assert_die(daemon)


def test_the_children_of_a_crashed_worker_die(mp_sup, tmp_path):
    fifo = str(tmp_path / "child_pid")
    os.mkfifo(fifo)
    task_id = mp_sup.put_task(mp_funcs.spawn_child_and_crash, args=(fifo,),
                              tt=TT_MP)
    with open(fifo) as reader:
        child = int(reader.read())
    with pytest.raises(WorkerLostError):
        mp_sup.wait_completed(task_id, timeout=SAFETY)
    _assert_die(child)


def test_what_a_task_started_dies_with_the_supervisors_process(tmp_path):
    """SIGKILL the supervisor's process: its workers exit, and so do the
    processes their tasks started (a child and a double-forked daemon)."""
    child_fifo, daemon_fifo = (str(tmp_path / "child"),
                               str(tmp_path / "daemon"))
    os.mkfifo(child_fifo)
    os.mkfifo(daemon_fifo)
    script = textwrap.dedent("""
        import sys, threading
        from atasker import TaskSupervisor, TT_MP
        from tests import mp_funcs
        sup = TaskSupervisor()
        sup.set_mp_pool(pool_size=2)
        sup.put_task(mp_funcs.spawn_child_and_wait, args=(sys.argv[1],),
                     tt=TT_MP)
        sup.put_task(mp_funcs.start_daemon_and_wait, args=(sys.argv[2],),
                     tt=TT_MP)
        threading.Event().wait()
    """)
    env = dict(os.environ, PYTHONPATH=HOME)
    host = subprocess.Popen([sys.executable, "-c", script, child_fifo,
                             daemon_fifo], cwd=HOME, env=env)
    try:
        with open(child_fifo) as reader:
            child = int(reader.read())
        with open(daemon_fifo) as reader:
            daemon = int(reader.read())
    finally:
        host.kill()
        host.wait()
    _assert_die(child, daemon)


# -- interpreter exit ---------------------------------------------------------
def test_exit_names_the_tasks_it_waits_for():
    """Exit without stop() drains, as ThreadPoolExecutor does, but used to
    say nothing while it waited.  It names the unfinished tasks now."""
    script = textwrap.dedent("""
        import logging, sys
        import atasker._shutdown
        from atasker import TaskSupervisor
        logging.basicConfig(level=logging.WARNING)
        atasker._shutdown.EXIT_REPORT_EVERY = 0.1   # not 5 s, for the test

        def read_a_line():
            return sys.stdin.readline()

        sup = TaskSupervisor()
        sup.put_task(read_a_line, name="reads_stdin")
        print("submitted", flush=True)
    """)
    env = dict(os.environ, PYTHONPATH=HOME)
    with subprocess.Popen([sys.executable, "-c", script], cwd=HOME,
                          env=env, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as child:
        try:
            assert child.stdout.readline() == "submitted\n"
            seen = []
            for line in child.stderr:   # it blocks until we answer
                seen.append(line)
                if "exit waits for 1 unfinished task(s)" in line:
                    break
            assert "reads_stdin, started" in seen[-1], seen
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.wait(timeout=SAFETY) == 0
        finally:
            child.kill()


# -- bad input: a clear error at the call --------------------------------------
def _nested(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("call, error, words", [
    (lambda s: s.put_task(mp_funcs.noop, args=5), TypeError, "args"),
    (lambda s: s.put_task(mp_funcs.noop, args="abc"), TypeError, "args"),
    (lambda s: s.put_task(mp_funcs.noop, args={"a": 1}), TypeError, "args"),
    (lambda s: s.put_task(mp_funcs.noop, kwargs={1: 2}), TypeError,
     "kwargs"),
    (lambda s: s.put_task(mp_funcs.noop, tt=True), TypeError, "tt"),
    (lambda s: s.put_task(mp_funcs.noop, tt=2.0), TypeError, "tt"),
    (lambda s: s.put_task(mp_funcs.noop, name=object()), TypeError, "name"),
    (lambda s: s.put_task(mp_funcs.noop, task_id=s.put_task(mp_funcs.noop)
                          [:-1] + "999999"), ValueError, "task_id"),
    (lambda s: s.put_task(mp_funcs.add, args=(_nested(100_000),), tt=TT_MP),
     TypeError, "argument 0"),
])
def test_bad_task_input_is_refused_at_the_call(sup, call, error, words):
    with pytest.raises(error, match=words):
        call(sup)


@pytest.mark.parametrize("call, error, words", [
    (lambda: atasker.co_apply(mp_funcs.noop, args=5), TypeError, "args"),
    (lambda: atasker.co_mp_apply(mp_funcs.noop, args="abc"), TypeError,
     "args"),
    (lambda: atasker.co_mp_apply(mp_funcs.noop, kwargs={1: 2}), TypeError,
     "kwargs"),
])
def test_bad_input_to_co_apply_is_refused(call, error, words):
    with pytest.raises(error, match=words):
        asyncio.run(call())


@pytest.mark.parametrize("timeout, error", [
    (float("nan"), ValueError), (-1, ValueError), ("5", TypeError),
    (True, TypeError)])
def test_locker_refuses_bad_timeouts(timeout, error):
    with pytest.raises(error, match="timeout"):
        atasker.Locker(timeout=timeout)


def test_locker_timeout_inf_means_no_limit():
    lock = atasker.Locker(timeout=float("inf"))
    with lock:
        pass


@pytest.mark.parametrize("mode", ["no", 0.5, None])
def test_set_debug_takes_a_bool(mode):
    with pytest.raises(TypeError, match="mode"):
        atasker.set_debug(mode)


# -- task ids are handles; nothing nobody can reach is kept ------------------
class Big:
    """A result that can be watched for being freed."""

    def __init__(self) -> None:
        self.payload = bytearray(1000)


def make_big():
    return Big()


def test_waiting_on_a_burst_larger_than_the_history_works(sup):
    """wait_completed(ids) of a burst larger than the history used to
    raise KeyError for the tasks already forgotten."""
    ids = [sup.put_task(mp_funcs.add, args=(i,))
           for i in range(sup.keep_finished * 3 + 10)]
    assert sup.wait_completed(ids, timeout=SAFETY) == list(range(len(ids)))


def test_a_held_id_keeps_its_outcome_a_plain_string_does_not(sup):
    held = sup.put_task(mp_funcs.add, args=(42,))
    plain = str(held)
    assert sup.wait_completed(held, timeout=SAFETY) == 42
    sup.wait_completed([sup.put_task(mp_funcs.noop)
                        for _ in range(sup.keep_finished + 1)],
                       timeout=SAFETY)
    assert sup.get_task_info(held).result == 42
    assert sup.wait_completed(held, timeout=SAFETY) == 42
    assert sup.get_task_info(plain) is None     # forgotten by the history
    with pytest.raises(KeyError):
        sup.wait_completed(plain, timeout=SAFETY)


def test_an_id_is_a_plain_str_to_json_and_pickle(sup):
    import json
    import pickle
    task_id = sup.put_task(mp_funcs.noop)
    assert isinstance(task_id, str)
    assert json.loads(json.dumps([task_id])) == [task_id]
    copy = pickle.loads(pickle.dumps(task_id))
    assert copy == task_id and type(copy) is str
    assert hash(task_id) == hash(str(task_id))
    assert {task_id: 1}[str(task_id)] == 1


def test_an_id_of_another_supervisor_finds_nothing_here(sup):
    other = TaskSupervisor()
    try:
        foreign = other.put_task(mp_funcs.add, args=(1,), task_id="same")
        other.wait_completed(foreign, timeout=SAFETY)
        assert sup.get_task_info(foreign) is None
        mine = sup.put_task(mp_funcs.add, args=(2,), task_id="same")
        assert sup.wait_completed(foreign, timeout=SAFETY) == 2
        assert sup.wait_completed(mine, timeout=SAFETY) == 2
    finally:
        other.stop()


def test_results_nobody_can_reach_are_freed(sup):
    """1,000 results taken by a callback, ids dropped: the history used to
    keep all of them (1 MB each: +1 GB)."""
    refs = []
    done = threading.Event()

    def keep_a_ref(result):
        refs.append(weakref.ref(result))
        if len(refs) == 1000:
            done.set()

    for _ in range(1000):
        sup.put_task(make_big, callback=keep_a_ref)
    assert done.wait(SAFETY)
    sup.wait_completed(sup.put_task(mp_funcs.noop), timeout=SAFETY)
    gc.collect()
    alive = sum(ref() is not None for ref in refs)
    assert alive <= sup.keep_finished < 1000


def test_a_queue_wait_alarm_keeps_no_record_alive(sup):
    """timeout_warning used to hold every record for its whole period."""
    sup.timeout_warning = 3600
    sup.keep_finished = 0
    refs = []
    done = threading.Event()

    def keep_a_ref(result):
        refs.append(weakref.ref(result))
        done.set()

    sup.put_task(make_big, callback=keep_a_ref)
    assert done.wait(SAFETY)
    sup.wait_completed(sup.put_task(mp_funcs.noop), timeout=SAFETY)
    gc.collect()
    assert refs[0]() is None


def test_a_held_id_finds_its_own_task_after_its_string_is_reused(sup):
    """A chosen id may be used again once its task left the history; a
    handle of the first task used to find the second one (and cancel it)."""
    sup.keep_finished = 0
    first = sup.put_task(mp_funcs.tag, args=("first",), task_id="job")
    assert sup.wait_completed(first, timeout=SAFETY) == "first"
    second = sup.put_task(mp_funcs.tag, args=("second",), task_id="job",
                          delay=3600)
    assert sup.get_task_info(first).result == "first"
    assert sup.wait_completed(first, timeout=SAFETY) == "first"
    assert not sup.cancel_task(first)       # it has ended; "job" waits
    assert sup.cancel_task(second)


def test_a_task_id_made_by_hand_finds_only_by_its_string(sup):
    made = atasker.TaskId("nope")
    assert sup.get_task_info(made) is None
    assert not sup.cancel_task(made)
    with pytest.raises(KeyError):
        sup.wait_completed(made, timeout=SAFETY)


def test_a_worker_reaps_the_orphans_it_adopts(fifo_gates):
    """A worker is a subreaper: orphans of its tasks become its children,
    and it used to leave them as zombies (one per task here).  Each
    orphan has ended before its task returns."""
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    try:
        pids = sup.wait_completed(
            [sup.put_task(mp_funcs.orphan_a_child, tt=TT_MP)
             for _ in range(20)], timeout=SAFETY)
        # one more task: the worker reaps between tasks
        gate = fifo_gates()
        sup.put_task(mp_funcs.wait_fifo, args=(gate.path,), tt=TT_MP)
        gate.wait_started()
        worker = psutil.Process(pids[0])
        zombies = [c for c in worker.children()
                   if c.status() == psutil.STATUS_ZOMBIE]
        gate.open()
        assert not zombies
    finally:
        sup.stop(wait=SAFETY)
