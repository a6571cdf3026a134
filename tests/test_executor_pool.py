"""Process tasks on a concurrent.futures executor (set_mp_pool(executor=)).

Every test runs with a ThreadPoolExecutor and a ProcessPoolExecutor: the
payload travels pickled either way.  Gates are FIFOs (tests.mp_funcs
.wait_fifo), which work across processes; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import (CancelledError, ProcessPoolExecutor,
                                ThreadPoolExecutor)

import pytest

import atasker
from atasker import TASK_HIGH, TASK_LOW, TT_MP, TaskTimeoutError

from . import mp_funcs
from .conftest import SAFETY

EXECUTORS = {"threads": lambda n: ThreadPoolExecutor(n),
             "processes": lambda n: ProcessPoolExecutor(n)}


@pytest.fixture(params=sorted(EXECUTORS))
def on_executor(request):
    """make(slots) -> a supervisor whose TT_MP tasks run on a new executor
    of that kind with *slots* workers; all are stopped and shut down."""
    made = []

    def make(slots=2, **numbers):
        executor = EXECUTORS[request.param](slots)
        sup = atasker.TaskSupervisor(pool_size=4)
        sup.set_mp_pool(executor=executor, **numbers)
        made.append((sup, executor))
        return sup

    yield make
    for sup, executor in made:
        sup.stop(wait=SAFETY, cancel_tasks=True)
        executor.shutdown(wait=True)


def test_results_callbacks_and_task_ids(on_executor):
    sup = on_executor()
    got = []
    ids = [sup.put_task(mp_funcs.add, args=(i, 1), tt=TT_MP,
                        callback=got.append) for i in range(50)]
    assert sup.wait_completed(ids, timeout=SAFETY) == list(range(1, 51))
    assert sorted(got) == list(range(1, 51))
    task_id = sup.put_task(mp_funcs.with_task_id, args=(7,), tt=TT_MP)
    assert sup.wait_completed(task_id, timeout=SAFETY) == (7, task_id)
    assert sup.status()["pools"]["process"]["size"] == 2


def test_an_exception_keeps_its_type_and_message(on_executor):
    sup = on_executor()
    errors = []
    task_id = sup.put_task(mp_funcs.fail, args=("boom",), tt=TT_MP,
                           error_callback=errors.append)
    with pytest.raises(ValueError, match="boom") as raised:
        sup.wait_completed(task_id, timeout=SAFETY)
    assert isinstance(raised.value.__cause__, atasker.RemoteTraceback)
    assert "in fail" in str(raised.value.__cause__)
    assert errors == [raised.value]


def test_priorities_stay_strict_on_one_slot(on_executor, fifo_gates):
    sup = on_executor(slots=1, pool_size=1, reserve_normal=0,
                      reserve_high=0)
    gate = fifo_gates()
    order = []
    done = threading.Event()

    def ran(value):
        order.append(value)
        if len(order) == 22:
            done.set()

    sup.put_task(mp_funcs.wait_fifo, args=(gate.path, "gate"), tt=TT_MP,
                 callback=ran)
    gate.wait_started()
    for i in range(20):
        sup.put_task(mp_funcs.tag, args=(f"low{i}",), tt=TT_MP,
                     priority=TASK_LOW, callback=ran)
    sup.put_task(mp_funcs.tag, args=("high",), tt=TT_MP,
                 priority=TASK_HIGH, callback=ran)
    gate.open()
    assert done.wait(SAFETY)
    assert order[:2] == ["gate", "high"]
    assert order[2:] == [f"low{i}" for i in range(20)]


def test_a_timeout_fails_the_task_which_keeps_its_slot(on_executor,
                                                       fifo_gates):
    sup = on_executor(slots=1, pool_size=1, reserve_normal=0,
                      reserve_high=0)
    gate = fifo_gates()
    slow = sup.put_task(mp_funcs.wait_fifo, args=(gate.path, "late"),
                        tt=TT_MP, timeout=0.2)
    gate.wait_started()
    with pytest.raises(TaskTimeoutError):
        sup.wait_completed(slow, timeout=SAFETY)
    after = sup.put_task(mp_funcs.tag, args=("after",), tt=TT_MP)
    with pytest.raises(TimeoutError):     # the slot is still taken
        sup.wait_completed(after, timeout=0.2)
    gate.open()
    assert sup.wait_completed(after, timeout=SAFETY) == "after"
    # the late result does not change the timed-out task's outcome
    assert isinstance(sup.get_task_info(slow).exception, TaskTimeoutError)


def check_stop_cancels_queued_and_drains_running(sup, gate) -> None:
    """With its one slot held by a gated task: stop(cancel_tasks=True)
    cancels the queued tasks, then waits for the running one."""
    running = sup.put_task(mp_funcs.wait_fifo, args=(gate.path, "ran"),
                           tt=TT_MP)
    gate.wait_started()
    queued = [sup.put_task(mp_funcs.tag, args=(i,), tt=TT_MP)
              for i in range(5)]
    stopper = threading.Thread(target=sup.stop,
                               kwargs={"cancel_tasks": True})
    stopper.start()
    for task_id in queued:
        with pytest.raises(CancelledError):
            sup.wait_completed(task_id, timeout=SAFETY)
    gate.open()
    stopper.join(SAFETY)
    assert not stopper.is_alive()
    assert sup.wait_completed(running, timeout=SAFETY) == "ran"


def test_stop_drains_or_cancels_what_waits(on_executor, fifo_gates):
    check_stop_cancels_queued_and_drains_running(
        on_executor(slots=1, pool_size=1, reserve_normal=0, reserve_high=0),
        fifo_gates())


def check_co_mp_apply(sup) -> None:
    """Ten concurrent co_mp_apply calls on *sup* return their results."""

    async def main():
        return await asyncio.gather(*[
            atasker.co_mp_apply(mp_funcs.add, args=(i, 2), supervisor=sup)
            for i in range(10)])

    assert asyncio.run(main()) == [i + 2 for i in range(10)]


def test_co_mp_apply_runs_on_the_executor(on_executor):
    check_co_mp_apply(on_executor())


def test_an_executor_shut_down_fails_its_tasks_without_losing_them(
        on_executor):
    sup = on_executor()
    executor = sup._engine.mp_pool.executor
    executor.shutdown(wait=True)
    task_id = sup.put_task(mp_funcs.noop, tt=TT_MP)
    with pytest.raises(RuntimeError, match="shutdown"):
        sup.wait_completed(task_id, timeout=SAFETY)


def test_bad_executor_arguments_are_refused(sup, fifo_gates):
    with pytest.raises(TypeError, match="submit"):
        sup.set_mp_pool(executor=object())
    with ThreadPoolExecutor(1) as executor:
        with pytest.raises(ValueError, match="context"):
            sup.set_mp_pool(executor=executor, context="spawn")
        gate = fifo_gates()
        sup.put_task(mp_funcs.wait_fifo, args=(gate.path,), tt=TT_MP)
        gate.wait_started()
        with pytest.raises(ValueError, match="queued or running"):
            sup.set_mp_pool(executor=executor)
        gate.open()


def test_a_process_pool_worker_runs_on_the_executor(on_executor):
    sup = on_executor()
    worker = mp_funcs.DoublingWorker(3, supervisor=sup)
    worker.start()
    for item in (1, 2, 3):
        worker.put(item)
    assert worker.done.wait(SAFETY)
    assert sorted(r[0] for r in worker.results) == [2, 4, 6]
    worker.stop()
