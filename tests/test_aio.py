"""aloops and coroutine tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from atasker import (TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TASK_STATUS_DELAYED, TASK_STATUS_FAILED,
                     TASK_STATUS_STARTED, TT_COROUTINE,
                     TT_MP, ALoop, TaskSupervisor, TaskTimeoutError,
                     background_task)

from .conftest import SAFETY, Collect, assert_blocks_until


async def double(x):
    await asyncio.sleep(0)
    return x * 2


async def where():
    return threading.current_thread().name


# -- aloops ----------------------------------------------------------------
def test_create_run_and_background_task(sup):
    aloop = sup.create_aloop("io")
    assert isinstance(aloop, ALoop) and aloop.is_active()
    assert aloop.run(where()) == "supervisor_aloop_io"
    future = aloop.background_task(double(4))
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(SAFETY) == 8
    assert isinstance(aloop.get_loop(), asyncio.AbstractEventLoop)
    assert sup.get_aloop("io") is aloop
    assert sup.get_info().aloops == {"io": aloop}
    with pytest.raises(ValueError, match="already exists"):
        sup.create_aloop("io")
    with pytest.raises(TypeError, match="coroutine"):
        aloop.background_task(double)


def test_default_aloop_and_lookup(sup):
    assert sup.get_aloop() is None
    a = sup.create_aloop("a", start=False)
    assert not a.is_active()
    with pytest.raises(RuntimeError, match="not started"):
        a.get_loop()
    sup.start_aloop("a")
    assert a.is_active()
    b = sup.create_aloop("b", default=True)
    assert sup.get_aloop() is b and sup.get_aloop(default=False) is None
    sup.set_default_aloop("a")
    assert sup.get_aloop() is a
    with pytest.raises(KeyError):
        sup.set_default_aloop("missing")
    with pytest.raises(KeyError):
        sup.stop_aloop("missing")
    assert sup.get_aloop("missing") is None
    sup.stop_aloop("b")
    assert not b.is_active()
    with pytest.raises(RuntimeError, match="not running"):
        b.run(double(1))


def test_stop_waits_for_or_cancels_tasks(sup):
    aloop = sup.create_aloop("work")
    gate = threading.Event()

    async def slow():
        await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        return "finished"

    future = aloop.background_task(slow())
    assert_blocks_until(aloop.stop, gate.set)   # waits for the task
    assert future.result(SAFETY) == "finished"
    assert not aloop.is_active()

    aloop.start()                            # a stopped aloop restarts
    never = asyncio.Event()

    async def forever():
        await never.wait()

    future = aloop.background_task(forever())
    aloop.stop(cancel_tasks=True)
    assert future.cancelled()


def test_run_from_own_thread_is_refused(sup):
    aloop = sup.create_aloop("self")

    async def nested():
        inner = double(1)
        with pytest.raises(RuntimeError, match="own thread"):
            aloop.run(inner)
        return True

    assert aloop.run(nested())


def test_bad_aloop_name():
    with pytest.raises(TypeError):
        ALoop("")


# -- coroutine tasks ---------------------------------------------------------
def test_coroutine_task_is_tracked(sup):
    task_id = background_task(double, supervisor=sup)(21)
    assert sup.wait_completed(task_id, timeout=SAFETY) == 42
    info = sup.get_task_info(task_id)
    assert info.tt == TT_COROUTINE and info.status == TASK_STATUS_COMPLETED
    assert info.time_started is not None
    # the default aloop was made on demand
    assert sup.get_aloop().name == "default"
    assert sup.wait_completed(background_task(where, supervisor=sup)()) \
        == "supervisor_aloop_default"


def test_coroutine_on_named_aloop_and_raw_loop(sup):
    sup.create_aloop("mine")
    assert sup.wait_completed(background_task(
        where, loop="mine", supervisor=sup)()) == "supervisor_aloop_mine"
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="raw_loop")
    thread.start()
    try:
        assert sup.wait_completed(background_task(
            where, loop=loop, supervisor=sup)(), timeout=SAFETY) == "raw_loop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    with pytest.raises(KeyError):
        background_task(where, loop="nope", supervisor=sup)()
    with pytest.raises(TypeError, match="loop"):
        background_task(where, loop=5, supervisor=sup)()


def test_coroutine_failure_callbacks_and_put_task(sup):
    async def fail():
        raise ValueError("async boom")

    errors, results = Collect(), Collect()
    failing = background_task(fail, supervisor=sup, error_callback=errors)()
    with pytest.raises(ValueError, match="async boom"):
        sup.wait_completed(failing, timeout=SAFETY)
    assert errors.called.wait(SAFETY) and isinstance(errors.got[0],
                                                     ValueError)
    task_id = sup.put_task(double, args=(5,), callback=results)
    assert sup.get_task_info(task_id).tt == TT_COROUTINE
    assert results.called.wait(SAFETY) and results.got == [10]


def test_coroutine_delay_cancel_and_timeout(sup):
    delayed = background_task(double, delay=SAFETY, supervisor=sup)(1)
    assert sup.get_task_info(delayed).status == TASK_STATUS_DELAYED
    assert sup.cancel_task(delayed)
    assert sup.get_task_info(delayed).status == TASK_STATUS_CANCELED
    soon = background_task(double, delay=0.01, supervisor=sup)(2)
    assert sup.wait_completed(soon, timeout=SAFETY) == 4

    started, never = threading.Event(), asyncio.Event()
    cancelled = threading.Event()

    async def hang():
        started.set()
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task_id = background_task(hang, timeout=0.05, supervisor=sup)()
    assert started.wait(SAFETY)
    assert sup.get_task_info(task_id).status in (TASK_STATUS_STARTED,
                                                  TASK_STATUS_FAILED)
    with pytest.raises(TaskTimeoutError):
        sup.wait_completed(task_id, timeout=SAFETY)
    assert cancelled.wait(SAFETY)     # the coroutine itself was canceled


def test_impossible_task_types():
    def plain():
        pass

    with pytest.raises(ValueError, match="aloop"):
        background_task(double, tt=TT_MP)
    with pytest.raises(ValueError, match="coroutine function"):
        background_task(plain, tt=TT_COROUTINE)


def test_supervisor_stop_stops_aloops_after_their_tasks():
    sup = TaskSupervisor()
    aloop = sup.create_aloop("x", default=True)
    gate = threading.Event()

    async def slow():
        await asyncio.get_running_loop().run_in_executor(None, gate.wait)
        return "done"

    task_id = background_task(slow, supervisor=sup)()
    threading.Timer(0.05, gate.set).start()
    sup.stop()
    assert sup.get_task_info(task_id).result == "done"
    assert not aloop.is_active()
    sup.start()
    # the default aloop comes back for new coroutine tasks
    assert sup.wait_completed(background_task(double, supervisor=sup)(3),
                              timeout=SAFETY) == 6
    sup.stop()
