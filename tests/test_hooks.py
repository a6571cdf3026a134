"""Event hooks (``on``/``off``) and ``task_context``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import CancelledError

import pytest

import atasker
from atasker import TaskError, TaskSupervisor

from .mp_funcs import add


def recorder(sup, events=("task_started", "task_completed", "task_failed",
                          "task_canceled")):
    seen = []
    lock = threading.Lock()
    for event in events:
        def hook(info, event=event):
            with lock:
                seen.append((event, info.id, info.status))
        sup.on(event, hook)
    return seen


def fail():
    raise TaskError("disk full")


def test_hooks_see_every_final_event(sup, gates):
    seen = recorder(sup)
    ok = sup.put_task(lambda: 1)
    bad = sup.put_task(fail)
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    blocker = sup.put_task(gate)
    gate.wait_started()
    queued = sup.put_task(lambda: 2)
    assert sup.cancel_task(queued)
    gate.open()
    sup.wait_completed([ok, blocker])
    with pytest.raises(TaskError):
        sup.wait_completed(bad)
    sup.stop()          # the hooks of the last task have run
    events = {(event, task_id) for event, task_id, _ in seen}
    assert {("task_started", ok), ("task_completed", ok),
            ("task_started", bad), ("task_failed", bad),
            ("task_canceled", queued)} <= events
    assert ("task_started", queued) not in events
    # a hook sees the final status already set
    for event, _, status in seen:
        if event == "task_completed":
            assert status == atasker.TASK_STATUS_COMPLETED


def test_hook_of_a_process_task(mp_sup):
    seen = recorder(mp_sup, ("task_started", "task_completed"))
    task_id = mp_sup.put_task(add, args=(3, 4), tt=atasker.TT_MP)
    assert mp_sup.wait_completed(task_id) == 7
    mp_sup.stop()
    assert [e for e, i, _ in seen if i == task_id] == \
        ["task_started", "task_completed"]


def test_hook_of_a_coroutine_task(sup):
    seen = recorder(sup, ("task_started", "task_completed"))

    async def work():
        await asyncio.sleep(0)
        return 5

    task_id = sup.put_task(work)
    assert sup.wait_completed(task_id) == 5
    sup.stop()
    assert [e for e, i, _ in seen if i == task_id] == \
        ["task_started", "task_completed"]


def test_failing_hook_is_logged_and_ignored(sup, caplog):
    def broken(info):
        raise RuntimeError("hook bug")

    sup.on("task_completed", broken)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        assert sup.wait_completed(sup.put_task(lambda: 7)) == 7
        sup.stop()
    assert any("hook bug" in (r.exc_text or "") or
               (r.exc_info and "hook bug" in str(r.exc_info[1]))
               for r in caplog.records)


def test_off_and_bad_arguments(sup):
    calls = []
    hook = calls.append
    sup.on("task_completed", hook)
    assert sup.off("task_completed", hook)
    assert not sup.off("task_completed", hook)
    sup.wait_completed(sup.put_task(lambda: 1))
    sup.stop()
    assert calls == []
    with pytest.raises(ValueError, match="unknown event"):
        sup.on("task_done", hook)
    with pytest.raises(TypeError):
        sup.on("task_completed", 42)


def test_task_error_is_a_warning_other_errors_have_a_traceback(sup, caplog):
    def broken():
        raise ValueError("bad input")

    with caplog.at_level(logging.WARNING, logger="atasker"):
        for target in (fail, broken):
            with pytest.raises((TaskError, ValueError)):
                sup.wait_completed(sup.put_task(target))
    expected = [r for r in caplog.records if "disk full" in r.getMessage()]
    assert expected and expected[0].levelno == logging.WARNING
    assert expected[0].exc_info is None
    unexpected = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert unexpected and unexpected[0].exc_info is not None


def test_task_context_wraps_thread_and_coroutine_tasks():
    entered = []

    @contextlib.contextmanager
    def context():
        entered.append(threading.current_thread().name)
        yield
        entered.append("exit")

    sup = TaskSupervisor(pool_size=2, task_context=context)
    try:
        assert sup.wait_completed(sup.put_task(lambda: "t")) == "t"

        async def coro():
            return "c"

        assert sup.wait_completed(sup.put_task(coro)) == "c"
    finally:
        sup.stop()
    assert entered.count("exit") == 2
    assert any(name.startswith("supervisor_aloop") for name in entered)


def test_task_context_failure_fails_the_task():
    @contextlib.contextmanager
    def no_database():
        raise ConnectionError("no database")
        yield

    sup = TaskSupervisor(pool_size=1, task_context=no_database)
    ran = []
    try:
        with pytest.raises(ConnectionError):
            sup.wait_completed(sup.put_task(lambda: ran.append(1)))
    finally:
        sup.stop()
    assert ran == []
    with pytest.raises(TypeError, match="task_context"):
        TaskSupervisor(task_context="not callable")


def test_canceled_by_stop_reaches_the_hook(sup, gates):
    seen = recorder(sup, ("task_canceled",))
    sup.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    sup.put_task(gate)
    gate.wait_started()
    queued = sup.put_task(lambda: 1)
    sup.stop(wait=False, cancel_tasks=True)
    gate.open()
    sup.stop()
    assert [i for _, i, _ in seen] == [queued]
    assert isinstance(sup.get_task_info(queued).exception, CancelledError)
