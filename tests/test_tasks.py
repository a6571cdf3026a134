"""background_task, task info, callbacks, delay, timeout, cancel, waiting."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import pytest

import atasker
from atasker import (TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL,
                     TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TASK_STATUS_DELAYED, TASK_STATUS_FAILED,
                     TASK_STATUS_QUEUED, TASK_STATUS_STARTED, TT_THREAD,
                     TaskTimeoutError, background_task, wait_completed)

from .conftest import SAFETY, Collect


def double(x):
    return x * 2


def boom(message="boom"):
    raise ValueError(message)


# -- the three ways to decorate -------------------------------------------
def test_bare_decorator_returns_task_id(global_sup):
    @background_task
    def work(a, b=0):
        return a + b

    task_id = work(1, b=2)
    assert isinstance(task_id, str)
    assert wait_completed(task_id) == 3
    assert work.__name__ == "work"


def test_decorator_with_options(sup):
    @background_task(priority=TASK_HIGH, name="named", supervisor=sup)
    def work():
        return threading.current_thread().name

    task_id = work()
    assert sup.wait_completed(task_id).startswith(f"atasker_{sup.id}_")
    info = sup.get_task_info(task_id)
    assert info.priority == TASK_HIGH and info.name == "named"
    assert info.tt == TT_THREAD


def test_plain_call_form(sup):
    task_id = background_task(double, priority=TASK_LOW, supervisor=sup)(21)
    assert sup.wait_completed(task_id) == 42
    assert sup.get_task_info(task_id).priority == TASK_LOW


def test_ids_are_unique(sup):
    f = background_task(double, supervisor=sup)
    ids = [f(i) for i in range(200)]
    assert len(set(ids)) == 200
    assert sup.wait_completed(ids) == [i * 2 for i in range(200)]


# -- task info through its life ------------------------------------------
def test_info_moves_queued_started_completed(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    blocker, gate = gates(), gates()
    first = sup.put_task(blocker, args=("a",))
    blocker.wait_started()
    second = sup.put_task(gate, args=("b",))
    info = sup.get_task_info(second)
    assert info.status == TASK_STATUS_QUEUED
    assert info.time_queued is not None and info.time_started is None
    assert sup.get_task_info(first).status == TASK_STATUS_STARTED
    blocker.open()
    gate.wait_started()
    assert info.status == TASK_STATUS_STARTED
    assert info.time_started >= info.time_queued
    gate.open()
    assert sup.wait_completed(second) == "b"
    assert info.status == TASK_STATUS_COMPLETED and info.done
    assert info.result == "b" and info.exception is None
    assert info.time_completed >= info.time_started
    assert info.task is gate and info.id == second
    assert "completed" in repr(info)


def test_failure_is_recorded_and_raised(sup, caplog):
    task_id = sup.put_task(boom, args=("bad value",))
    with pytest.raises(ValueError, match="bad value"):
        sup.wait_completed(task_id)
    info = sup.get_task_info(task_id)
    assert info.status == TASK_STATUS_FAILED
    assert isinstance(info.exception, ValueError)
    assert info.result is None
    sup.stop()      # joins the worker: its log record is written
    record = next(r for r in caplog.records if task_id in r.getMessage())
    assert record.levelname == "ERROR" and record.exc_info


def test_expected_task_error_logged_without_traceback(sup, caplog):
    def fail():
        raise atasker.TaskError("disk full")

    task_id = sup.put_task(fail)
    with pytest.raises(atasker.TaskError):
        sup.wait_completed(task_id)
    sup.stop()
    record = next(r for r in caplog.records if task_id in r.getMessage())
    assert record.levelname == "WARNING" and not record.exc_info
    assert "disk full" in record.getMessage()


def test_base_exception_does_not_kill_the_pool(sup):
    def leave():
        raise SystemExit(3)

    with pytest.raises(SystemExit):
        sup.wait_completed(sup.put_task(leave))
    assert sup.wait_completed(sup.put_task(double, args=(2,))) == 4


# -- callbacks --------------------------------------------------------------
def test_callback_gets_result(sup):
    callback = Collect()
    background_task(double, callback=callback, supervisor=sup)(5)
    assert callback.called.wait(SAFETY)
    assert callback.got == [10]


def test_error_callback_gets_exception(sup):
    on_error = Collect()
    got = on_error.got
    background_task(boom, error_callback=on_error, callback=got.append,
                    supervisor=sup)()
    assert on_error.called.wait(SAFETY)
    assert len(got) == 1 and isinstance(got[0], ValueError)


def test_failing_callback_is_logged_and_changes_nothing(sup, caplog):
    done = threading.Event()

    def bad_callback(result):
        done.set()
        raise RuntimeError("callback broke")

    task_id = sup.put_task(double, args=(1,), callback=bad_callback)
    assert done.wait(SAFETY)
    assert sup.wait_completed(task_id) == 2
    # the pool still works, on the same threads
    assert sup.wait_completed(sup.put_task(double, args=(3,))) == 6
    sup.stop()
    assert any("callback broke" in str(r.exc_info[1])
               for r in caplog.records if r.exc_info)


# -- delay ----------------------------------------------------------------
def test_delay_waits_without_holding_a_slot(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    delayed = sup.put_task(double, args=(4,), delay=0.2)
    assert sup.get_task_info(delayed).status == TASK_STATUS_DELAYED
    # while it is delayed the only slot is free for other work
    assert sup.wait_completed(sup.put_task(double, args=(1,))) == 2
    assert sup.get_info().thread_tasks_count == 0
    started = time.monotonic()
    assert sup.wait_completed(delayed, timeout=SAFETY) == 8
    info = sup.get_task_info(delayed)
    assert info.time_started - info.time_queued >= 0.19
    assert time.monotonic() - started < SAFETY


def test_delayed_task_queues_by_priority(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    blocker = gates()
    order = []
    sup.put_task(blocker)
    blocker.wait_started()
    low = sup.put_task(order.append, args=("low",), priority=TASK_LOW)
    # a zero queue-wait alarm tells us when the delayed task is queued
    queued = threading.Event()
    sup.timeout_warning = 0
    sup.timeout_warning_func = \
        lambda info: info.priority == TASK_HIGH and queued.set()
    high = sup.put_task(order.append, args=("high",), priority=TASK_HIGH,
                        delay=0.05)
    assert queued.wait(SAFETY)
    blocker.open()
    sup.wait_completed([low, high])
    assert order == ["high", "low"]


# -- timeout --------------------------------------------------------------
def test_thread_timeout_fails_task_and_keeps_slot(sup, gates, caplog):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    got = []
    failed = threading.Event()
    task_id = sup.put_task(gate, args=("late",), timeout=0.05,
                           error_callback=lambda e: (got.append(e),
                                                     failed.set()))
    with pytest.raises(TaskTimeoutError) as err:
        sup.wait_completed(task_id, timeout=SAFETY)
    assert err.value.task_id == task_id and err.value.timeout == 0.05
    assert failed.wait(SAFETY) and isinstance(got[0], TaskTimeoutError)
    info = sup.get_task_info(task_id)
    assert info.status == TASK_STATUS_FAILED
    # the thread still runs and holds the only slot
    assert sup.get_info().thread_tasks_count == 1
    waiting = sup.put_task(double, args=(1,))
    assert sup.get_task_info(waiting).status == TASK_STATUS_QUEUED
    gate.open()
    assert sup.wait_completed(waiting, timeout=SAFETY) == 2
    # its late result is discarded
    assert info.status == TASK_STATUS_FAILED and info.result is None
    assert any("cannot be killed" in r.getMessage() for r in caplog.records)


def test_timeout_not_reached(sup):
    task_id = sup.put_task(double, args=(3,), timeout=SAFETY)
    assert sup.wait_completed(task_id) == 6


# -- cancel ---------------------------------------------------------------
def test_cancel_queued_task(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    blocker = gates()
    sup.put_task(blocker)
    blocker.wait_started()
    got = []
    queued = sup.put_task(double, args=(1,), error_callback=got.append)
    assert sup.cancel_task(queued) is True
    assert sup.cancel_task(queued) is False
    info = sup.get_task_info(queued)
    assert info.status == TASK_STATUS_CANCELED
    assert isinstance(got[0], CancelledError)
    with pytest.raises(CancelledError):
        sup.wait_completed(queued)
    blocker.open()
    # the canceled task never runs; the queue still works
    assert sup.wait_completed(sup.put_task(double, args=(5,))) == 10
    assert info.result is None


def test_cancel_delayed_task(sup):
    ran = threading.Event()
    task_id = sup.put_task(ran.set, delay=0.1)
    assert sup.cancel_task(task_id)
    with pytest.raises(CancelledError):
        sup.wait_completed(task_id, timeout=SAFETY)
    # well past its due time, it still has not run
    sup.wait_completed(sup.put_task(double, args=(1,), delay=0.2))
    assert not ran.is_set()


def test_cancel_running_or_unknown_returns_false(sup, gates):
    gate = gates()
    task_id = sup.put_task(gate)
    gate.wait_started()
    assert sup.cancel_task(task_id) is False
    assert sup.cancel_task("no-such-task") is False
    gate.open()
    sup.wait_completed(task_id)
    assert sup.cancel_task(task_id) is False


# -- waiting ----------------------------------------------------------------
def test_wait_list_keeps_order(sup):
    ids = [sup.put_task(double, args=(i,), priority=p)
           for i, p in enumerate([TASK_LOW, TASK_HIGH, TASK_NORMAL])]
    assert sup.wait_completed(tuple(ids)) == [0, 2, 4]
    assert sup.wait_completed([]) == []


def test_wait_timeout_raises_builtin_timeout(sup, gates):
    gate = gates()
    task_id = sup.put_task(gate)
    with pytest.raises(TimeoutError):
        sup.wait_completed(task_id, timeout=0.01)
    gate.open()
    assert sup.wait_completed(task_id, timeout=SAFETY) is None


def test_wait_from_many_threads(sup, gates):
    gate = gates()
    task_id = sup.put_task(gate, args=(7,))
    results = []
    waiters = [threading.Thread(
        target=lambda: results.append(sup.wait_completed(task_id)))
        for _ in range(5)]
    for thread in waiters:
        thread.start()
    gate.open()
    for thread in waiters:
        thread.join(SAFETY)
    assert results == [7] * 5


def test_wait_unknown_id(sup):
    with pytest.raises(KeyError, match="nope"):
        sup.wait_completed("nope")
    with pytest.raises(TypeError):
        sup.wait_completed(123)


def test_failed_task_in_list_raises(sup):
    ids = [sup.put_task(double, args=(1,)), sup.put_task(boom)]
    with pytest.raises(ValueError):
        sup.wait_completed(ids)


# -- priorities and reserves, end to end -------------------------------------
def test_strict_priority_order_with_one_slot(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    blocker = gates()
    sup.put_task(blocker)
    blocker.wait_started()
    order = []
    plan = [(TASK_LOW, "l1"), (TASK_NORMAL, "n1"), (TASK_HIGH, "h1"),
            (75, "n75"), (TASK_LOW, "l2"), (TASK_HIGH, "h2"),
            (TASK_NORMAL, "n2")]
    ids = [sup.put_task(order.append, args=(tag,), priority=p)
           for p, tag in plan]
    blocker.open()
    sup.wait_completed(ids)
    assert order == ["h1", "h2", "n75", "n1", "n2", "l1", "l2"]


def test_reserve_bands_and_critical(sup, gates):
    sup.set_thread_pool(pool_size=2, reserve_normal=1, reserve_high=1)
    g = {name: gates() for name in
         ("l1", "l2", "l3", "n1", "h1", "h2", "c1", "c2")}

    def put(name, priority):
        return sup.put_task(g[name], priority=priority)

    ids = {"l1": put("l1", TASK_LOW), "l2": put("l2", TASK_LOW)}
    g["l1"].wait_started(), g["l2"].wait_started()
    ids["l3"] = put("l3", TASK_LOW)
    ids["n1"] = put("n1", TASK_NORMAL)
    g["n1"].wait_started()                       # 3rd slot: normal reserve
    ids["h1"] = put("h1", TASK_HIGH)
    g["h1"].wait_started()                       # 4th slot: high reserve
    ids["h2"] = put("h2", TASK_HIGH)
    ids["c1"] = put("c1", TASK_CRITICAL)
    ids["c2"] = put("c2", -10)
    g["c1"].wait_started(), g["c2"].wait_started()   # beyond every limit
    status = {k: sup.get_task_info(v).status for k, v in ids.items()}
    assert status["l3"] == status["h2"] == TASK_STATUS_QUEUED
    info = sup.get_info()
    assert info.thread_tasks_count == 6 and info.thread_queue == 2
    assert info.thread_queue_by_band == {"critical": 0, "high": 1,
                                         "normal": 0, "low": 1}
    # a freed slot goes to the waiting high task, never to the low one
    g["c1"].open(), g["c2"].open()
    sup.wait_completed([ids["c1"], ids["c2"]])
    assert sup.get_task_info(ids["l3"]).status == TASK_STATUS_QUEUED
    g["l1"].open()
    g["h2"].wait_started()
    assert sup.get_task_info(ids["l3"]).status == TASK_STATUS_QUEUED
    for gate in g.values():
        gate.open()
    sup.wait_completed(list(ids.values()))


def test_growing_the_pool_starts_waiting_tasks_at_once(sup, gates):
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    first, second = gates(), gates()
    sup.put_task(first)
    first.wait_started()
    sup.put_task(second)
    assert not second.started.is_set()
    sup.set_thread_pool(pool_size=2)
    second.wait_started()
    assert sup.thread_pool_size == 2 and sup.thread_reserve_normal == 0


def test_unlimited_pool(sup, gates):
    sup.set_thread_pool(pool_size=0)
    many = [gates() for _ in range(12)]
    ids = [sup.put_task(gate, priority=TASK_LOW) for gate in many]
    for gate in many:
        gate.wait_started()
    for gate in many:
        gate.open()
    sup.wait_completed(ids)


def test_threads_are_reused(sup):
    names = set()
    lock = threading.Lock()

    def note():
        with lock:
            names.add(threading.current_thread().name)

    for _ in range(20):
        sup.wait_completed([sup.put_task(note) for _ in range(10)])
    # at most the pool's size of threads served 200 tasks
    assert len(names) <= 4 + 1
    assert sup.get_info().thread_threads <= 4 + 1


def test_idle_threads_exit(sup):
    sup.idle_thread_timeout = 0.05
    sup.wait_completed([sup.put_task(double, args=(i,)) for i in range(8)])
    threads = [t for t in threading.enumerate()
               if t.name.startswith(f"atasker_{sup.id}_")
               and not t.name.endswith("_timers")]
    assert threads
    for thread in threads:
        thread.join(SAFETY)
        assert not thread.is_alive()
    assert sup.get_info().thread_threads == 0
    assert sup.wait_completed(sup.put_task(double, args=(1,))) == 2


# -- bad input -------------------------------------------------------------
@pytest.mark.parametrize("kwargs,exc,word", [
    ({"priority": "high"}, TypeError, "priority"),
    ({"priority": 1.5}, TypeError, "priority"),
    ({"delay": -1}, ValueError, "delay"),
    ({"delay": "1"}, TypeError, "delay"),
    ({"timeout": -0.5}, ValueError, "timeout"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"tt": 7}, ValueError, "tt"),
    ({"callback": 3}, TypeError, "callback"),
    ({"error_callback": "x"}, TypeError, "error_callback"),
    ({"supervisor": "default"}, TypeError, "supervisor"),
])
def test_bad_options_at_decoration(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        background_task(double, **kwargs)


def test_bad_target_and_arguments(sup):
    with pytest.raises(TypeError, match="target"):
        sup.put_task(42)
    with pytest.raises(TypeError, match="f must be callable"):
        background_task("not callable")
    with pytest.raises(TypeError, match="kwargs"):
        sup.put_task(double, kwargs=[1])
    with pytest.raises(ValueError, match="delay"):
        sup.put_task(double, args=(1,), delay=float("nan"))
    with pytest.raises(TypeError, match="task_id"):
        sup.put_task(double, args=(1,), task_id=5)
    task_id = sup.put_task(double, args=(1,), task_id="mine")
    assert task_id == "mine"
    with pytest.raises(ValueError, match="already in use"):
        sup.put_task(double, args=(1,), task_id="mine")
    assert sup.get_info().thread_queue == 0
