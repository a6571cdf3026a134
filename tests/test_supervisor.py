"""Supervisor lifecycle, stop semantics, info, alarms, history, exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from concurrent.futures import CancelledError

import pytest

import atasker
from atasker import (TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TaskSupervisor)

from .conftest import SAFETY, assert_blocks_until


def double(x):
    return x * 2


def test_starts_on_first_use_and_explicitly():
    sup = TaskSupervisor()
    assert not sup.get_info().started
    assert sup.wait_completed(sup.put_task(double, args=(1,))) == 2
    assert sup.get_info().started and sup.is_active
    sup.start()                         # idempotent
    sup.stop()
    explicit = TaskSupervisor(pool_size=2)
    explicit.start()
    assert explicit.wait_completed(explicit.put_task(double, args=(2,))) == 4
    explicit.stop()


def test_default_pool_size_follows_the_stdlib():
    import os
    sup = TaskSupervisor()
    assert sup.thread_pool_size == min(32, (os.cpu_count() or 1) + 4)
    assert (sup.thread_reserve_normal, sup.thread_reserve_high) == (5, 5)


@pytest.mark.parametrize("kwargs,exc", [
    ({"pool_size": -1}, ValueError), ({"reserve_normal": -1}, ValueError),
    ({"reserve_high": 1.0}, TypeError), ({"pool_size": "4"}, TypeError)])
def test_bad_pool_numbers(sup, kwargs, exc):
    with pytest.raises(exc, match=next(iter(kwargs))):
        TaskSupervisor(**kwargs)
    with pytest.raises(exc, match=next(iter(kwargs))):
        sup.set_thread_pool(**kwargs)


def test_submit_after_stop_raises_until_restarted():
    sup = TaskSupervisor(pool_size=2)
    sup.wait_completed(sup.put_task(double, args=(1,)))
    sup.stop()
    assert not sup.is_active
    with pytest.raises(RuntimeError, match="stopped"):
        sup.put_task(double, args=(1,))
    with pytest.raises(RuntimeError, match="stopped"):
        atasker.background_task(double, supervisor=sup)(1)
    sup.start()
    assert sup.wait_completed(sup.put_task(double, args=(3,))) == 6
    sup.stop()


def test_stop_waits_for_every_accepted_task(gates):
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    first = sup.put_task(gate, args=("first",))
    gate.wait_started()
    rest = [sup.put_task(double, args=(i,)) for i in range(20)]
    delayed = sup.put_task(double, args=(100,), delay=0.05)
    assert_blocks_until(sup.stop, gate.open)    # waits for the gated task
    for task_id in [first, delayed, *rest]:
        assert sup.get_task_info(task_id).status == TASK_STATUS_COMPLETED
    assert sup.wait_completed(delayed) == 200


def test_stop_cancel_tasks(gates):
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    running = sup.put_task(gate, args=("ran",))
    gate.wait_started()
    canceled = []

    def on_cancel(exc):
        canceled.append(exc)
        if len(canceled) == 6:      # all waiting ones are canceled:
            gate.open()             # now let the running one finish

    queued = [sup.put_task(double, args=(i,), error_callback=on_cancel)
              for i in range(5)]
    delayed = sup.put_task(double, args=(1,), delay=SAFETY,
                           error_callback=on_cancel)
    sup.stop(cancel_tasks=True)
    assert sup.get_task_info(running).status == TASK_STATUS_COMPLETED
    for task_id in [*queued, delayed]:
        assert sup.get_task_info(task_id).status == TASK_STATUS_CANCELED
    assert len(canceled) == 6
    assert all(isinstance(e, CancelledError) for e in canceled)


def test_stop_with_bounded_wait_cancels_what_waits(gates, caplog):
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    queued = sup.put_task(double, args=(1,))
    sup.stop(wait=0.05)
    assert sup.get_task_info(queued).status == TASK_STATUS_CANCELED
    assert any("timed out" in r.getMessage() for r in caplog.records)
    gate.open()
    sup.stop()                    # joins the last thread


def test_stop_without_wait_drains_in_background(gates):
    sup = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    ids = [sup.put_task(double, args=(i,)) for i in range(10)]
    sup.stop(wait=False)
    gate.open()
    assert sup.wait_completed(ids, timeout=SAFETY) == \
        [i * 2 for i in range(10)]
    sup.stop()                    # nothing left to do but join


def test_stop_from_inside_a_task():
    sup = TaskSupervisor(pool_size=2)
    errors = []

    def stopper():
        try:
            sup.stop()
        except RuntimeError as exc:
            errors.append(exc)
        sup.stop(wait=False)

    sup.wait_completed(sup.put_task(stopper))
    assert errors and "wait=False" in str(errors[0])
    sup.stop()
    assert not sup.is_active


def test_stop_bad_wait():
    with pytest.raises(ValueError, match="wait"):
        TaskSupervisor().stop(wait=-1)


def test_stop_stops_registered_schedulers():
    sup = TaskSupervisor()
    calls = []

    class Worker:
        def stop(self, wait=True):
            calls.append(wait)

    worker, other = Worker(), Worker()
    sup.register_scheduler(worker)
    sup.register_scheduler(other)
    sup.register_scheduler(worker)
    sup.unregister_scheduler(other)
    assert sup.get_info().schedulers == [worker]
    sup.stop()
    # every scheduler is asked at once, without waiting: the runs of
    # workers are supervisor tasks, waited for against stop's one deadline
    assert calls == [False]


def test_block_returns_when_stopped():
    sup = TaskSupervisor()
    sup.start()
    threading.Timer(0.05, sup.stop).start()
    sup.block()
    assert not sup.is_active


def test_get_info_fields(sup, gates):
    gate = gates()
    task_id = sup.put_task(gate)
    gate.wait_started()
    info = sup.get_info()
    assert info.id == sup.id and info.active and info.started
    assert (info.thread_pool_size, info.thread_reserve_normal,
            info.thread_reserve_high) == (4, 1, 1)
    assert info.thread_tasks_count == 1 and info.thread_queue == 0
    assert list(info.task_info) == [task_id]
    assert sup.get_info(tt=atasker.TT_MP).task_info == {}
    assert info.aloops == {} and info.mp_tasks_count == 0
    gate.open()


def test_history_is_bounded(sup):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    sup.keep_finished = 5     # one thread: tasks finish in order
    ids = [sup.put_task(double, args=(i,)) for i in range(50)]
    sup.wait_completed(ids[-1])
    sup.stop()
    # found by the plain string only while in the history
    known = [i for i in ids if sup.get_task_info(str(i)) is not None]
    assert known == ids[-5:]
    # a held id finds its task for as long as it is held
    assert sup.get_task_info(ids[0]).result == 0
    assert len(sup._engine.registry.tasks) == 5
    # the history survives stop
    assert sup.get_task_info(ids[-1]).result == 98


def test_queue_wait_alarms(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    warned, critical = threading.Event(), threading.Event()
    seen = []
    sup.timeout_warning = 0.01
    sup.timeout_warning_func = lambda info: (seen.append(info),
                                             warned.set())
    sup.timeout_critical = 0.02
    sup.timeout_critical_func = lambda info: critical.set()
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    waiting = sup.put_task(double, args=(1,))
    assert warned.wait(SAFETY) and critical.wait(SAFETY)
    assert [i.id for i in seen] == [waiting]
    gate.open()
    assert sup.wait_completed(waiting) == 2


def test_alarm_function_errors_are_logged(sup, gates, caplog):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    called = threading.Event()

    def broken(info):
        called.set()
        raise RuntimeError("alarm broke")

    sup.timeout_warning = 0
    sup.timeout_warning_func = broken
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    waiting = sup.put_task(double, args=(1,))
    assert called.wait(SAFETY)
    gate.open()
    assert sup.wait_completed(waiting) == 2
    sup.stop()
    assert any(r.exc_info and "alarm broke" in str(r.exc_info[1])
               for r in caplog.records)


def test_mark_task_completed_compat(sup, gates):
    gate = gates()
    task_id = sup.put_task(gate, args=("ignored",))
    gate.wait_started()
    assert sup.mark_task_completed(task_id=task_id) is True
    assert sup.wait_completed(task_id) is None
    assert sup.mark_task_completed(sup.get_task_info(task_id)) is False
    with pytest.raises(KeyError):
        sup.mark_task_completed(task_id="unknown")
    gate.open()


def test_private_supervisors_are_independent(gates):
    a = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    b = TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    a.put_task(gate)
    gate.wait_started()
    assert b.wait_completed(b.put_task(double, args=(2,))) == 4
    gate.open()
    a.stop()
    b.stop()


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60)


def test_interpreter_exit_drains_and_leaves_no_thread():
    result = run_python("""
        import threading, time, atasker
        done = []
        @atasker.background_task(priority=atasker.TASK_LOW)
        def work(i):
            time.sleep(0.001)
            done.append(i)
        for i in range(200):
            work(i)
        atasker.background_task(done.append, delay=0.05)("delayed")
        import atexit
        atexit.register(lambda: print(len(done), sorted(
            t.name for t in threading.enumerate()
            if t is not threading.main_thread())))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "201 []"


def test_interpreter_exit_after_private_supervisor_use():
    result = run_python("""
        import atasker
        sup = atasker.TaskSupervisor(pool_size=2)
        ids = [sup.put_task(pow, args=(2, i)) for i in range(10)]
        print(sup.wait_completed(ids)[-1])
        del sup
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "512"
