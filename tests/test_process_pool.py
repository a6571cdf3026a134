"""Process tasks: TT_MP, co_mp_apply, crashes, timeouts, stop, recycling."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import CancelledError

import psutil
import pytest

import atasker
from atasker import (TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL,
                     TASK_STATUS_CANCELED, TASK_STATUS_COMPLETED,
                     TASK_STATUS_QUEUED, TT_MP,
                     RemoteTraceback, TaskSupervisor, TaskTimeoutError,
                     WorkerLostError, background_task, co_apply,
                     co_mp_apply)
from atasker._mp import resolve_context

from . import mp_funcs
from .conftest import SAFETY, Collect


def mp(sup, f, *args, **kwargs):
    return sup.put_task(f, args=args, kwargs=kwargs, tt=TT_MP)


# -- results, ids, callbacks -------------------------------------------------
def test_result_through_every_channel(mp_sup):
    callback = Collect()
    submit = background_task(mp_funcs.add, tt=TT_MP, priority=TASK_HIGH,
                             callback=callback, supervisor=mp_sup)
    task_id = submit(1, b=2)
    assert mp_sup.wait_completed(task_id, timeout=SAFETY) == 3
    assert callback.called.wait(SAFETY) and callback.got == [3]
    info = mp_sup.get_task_info(task_id)
    assert info.tt == TT_MP and info.status == TASK_STATUS_COMPLETED
    assert info.result == 3 and info.priority == TASK_HIGH
    assert mp_funcs.pid() != mp_sup.wait_completed(mp(mp_sup, mp_funcs.pid))


def test_task_id_is_passed_when_accepted(mp_sup):
    a = mp(mp_sup, mp_funcs.with_task_id, 1)
    b = mp(mp_sup, mp_funcs.with_kwargs, 2)
    c = mp(mp_sup, mp_funcs.add, 3)
    assert mp_sup.wait_completed([a, b, c], timeout=SAFETY) == \
        [(1, a), (2, b), 3]


def test_exception_keeps_type_message_and_remote_traceback(mp_sup):
    errors = []
    failed = threading.Event()
    task_id = mp_sup.put_task(mp_funcs.fail, args=("bad input",), tt=TT_MP,
                              error_callback=lambda e: (errors.append(e),
                                                        failed.set()))
    with pytest.raises(ValueError, match="bad input") as err:
        mp_sup.wait_completed(task_id, timeout=SAFETY)
    cause = err.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "in fail" in cause.text and "ValueError: bad input" in cause.text
    assert failed.wait(SAFETY) and isinstance(errors[0], ValueError)


def test_unpicklable_exception_and_result(mp_sup):
    bad_exc = mp(mp_sup, mp_funcs.fail_unpicklable)
    bad_result = mp(mp_sup, mp_funcs.return_unpicklable)
    with pytest.raises(RuntimeError, match="Unpicklable: cannot travel"):
        mp_sup.wait_completed(bad_exc, timeout=SAFETY)
    with pytest.raises(TypeError, match="could not be pickled"):
        mp_sup.wait_completed(bad_result, timeout=SAFETY)
    # the pool is fine
    assert mp_sup.wait_completed(mp(mp_sup, mp_funcs.add, 2, 2)) == 4


def test_unpicklable_submission_fails_in_caller(mp_sup):
    with pytest.raises(TypeError, match="function .*lambda.*module-level"):
        mp_sup.put_task(lambda: 1, tt=TT_MP)
    with pytest.raises(TypeError, match="argument 1 <unlocked _thread.lock"):
        mp(mp_sup, mp_funcs.add, 1, threading.Lock())
    with pytest.raises(TypeError, match="keyword argument 'b'"):
        mp(mp_sup, mp_funcs.add, 1, b=threading.Lock())

    def local():
        pass

    with pytest.raises(TypeError, match="cannot be pickled"):
        background_task(local, tt=TT_MP, supervisor=mp_sup)()
    info = mp_sup.get_info()
    assert info.mp_queue == 0 and info.task_info == {}


# -- crashes and timeouts ----------------------------------------------------
def test_dead_worker_fails_exactly_its_task(mp_sup):
    pids_before = set(mp_sup.wait_completed(
        [mp(mp_sup, mp_funcs.pid, i) for i in range(4)]))
    crash = mp(mp_sup, mp_funcs.exit_hard, 3)
    others = [mp(mp_sup, mp_funcs.add, i, 1) for i in range(20)]
    with pytest.raises(WorkerLostError) as err:
        mp_sup.wait_completed(crash, timeout=SAFETY)
    assert err.value.exitcode == 3 and "exit code 3" in str(err.value)
    assert err.value.task_id == crash and err.value.pid in pids_before
    assert mp_sup.wait_completed(others, timeout=SAFETY) == \
        [i + 1 for i in range(20)]
    killed = mp(mp_sup, mp_funcs.kill_self)
    with pytest.raises(WorkerLostError, match="SIGKILL"):
        mp_sup.wait_completed(killed, timeout=SAFETY)
    crashed = mp(mp_sup, mp_funcs.segfault)
    with pytest.raises(WorkerLostError, match="SIGSEGV"):
        mp_sup.wait_completed(crashed, timeout=SAFETY)
    # replacements run new tasks
    assert mp_sup.wait_completed(mp(mp_sup, mp_funcs.add, 1, 1),
                                 timeout=SAFETY) == 2
    assert mp_sup.get_info().mp_processes == 2


def test_timeout_kills_worker_and_its_children(mp_sup, tmp_path):
    fifo = str(tmp_path / "child_pid")
    os.mkfifo(fifo)
    errors = []
    # long enough for the worker to start its child and reach the FIFO on
    # a loaded machine (else the reader below would wait for ever)
    task_id = mp_sup.put_task(mp_funcs.spawn_child_and_wait, args=(fifo,),
                              tt=TT_MP, timeout=2,
                              error_callback=errors.append)
    with open(fifo) as reader:
        child_pid = int(reader.read())
    with pytest.raises(TaskTimeoutError):
        mp_sup.wait_completed(task_id, timeout=SAFETY)
    _, alive = psutil.wait_procs([psutil.Process(child_pid)],
                                 timeout=SAFETY)
    assert not alive
    assert mp_sup.wait_completed(mp(mp_sup, mp_funcs.add, 5),
                                 timeout=SAFETY) == 5
    assert isinstance(errors[0], TaskTimeoutError)


# -- priorities and reserves -------------------------------------------------
def test_strict_priority_with_one_process(fifo_gates):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    try:
        gate = fifo_gates()
        blocker = sup.put_task(mp_funcs.wait_fifo, args=(gate.path,),
                               tt=TT_MP)
        gate.wait_started()
        order = []
        plan = [(TASK_LOW, "l1"), (TASK_NORMAL, "n1"), (TASK_HIGH, "h1"),
                (TASK_LOW, "l2"), (TASK_CRITICAL, "c1"), (TASK_HIGH, "h2")]
        ids = [sup.put_task(mp_funcs.tag, args=(name,), tt=TT_MP,
                            priority=p, callback=order.append)
               for p, name in plan]
        assert all(sup.get_task_info(i).status == TASK_STATUS_QUEUED
                   for i in ids)          # critical waits for a process too
        gate.open()
        sup.wait_completed([blocker, *ids], timeout=SAFETY)
        sup.stop()          # callbacks have all run
        assert order == ["c1", "h1", "h2", "n1", "l1", "l2"]
    finally:
        sup.stop(wait=SAFETY, cancel_tasks=True)


def test_reserve_bands(fifo_gates):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=1, reserve_high=1)
    try:
        gates = [fifo_gates() for _ in range(3)]
        low = sup.put_task(mp_funcs.wait_fifo, args=(gates[0].path,),
                           tt=TT_MP, priority=TASK_LOW)
        gates[0].wait_started()
        low2 = sup.put_task(mp_funcs.tag, args=("low2",), tt=TT_MP,
                            priority=TASK_LOW)
        normal = sup.put_task(mp_funcs.wait_fifo, args=(gates[1].path,),
                              tt=TT_MP, priority=TASK_NORMAL)
        gates[1].wait_started()             # the normal reserve
        high = sup.put_task(mp_funcs.wait_fifo, args=(gates[2].path,),
                            tt=TT_MP, priority=TASK_HIGH)
        gates[2].wait_started()             # the high reserve
        info = sup.get_info()
        assert (info.mp_tasks_count, info.mp_queue, info.mp_processes) == \
            (3, 1, 3)
        assert sup.get_task_info(low2).status == TASK_STATUS_QUEUED
        assert (info.mp_pool_size, info.mp_reserve_normal,
                info.mp_reserve_high) == (1, 1, 1)
        for gate in gates:
            gate.open()
        sup.wait_completed([low, low2, normal, high], timeout=SAFETY)
    finally:
        sup.stop(wait=SAFETY, cancel_tasks=True)


# -- co_mp_apply and co_apply ------------------------------------------------
def test_co_mp_apply_from_asyncio_run(mp_sup):
    async def main():
        results = await asyncio.gather(*[
            co_mp_apply(mp_funcs.add, args=(i,), kwargs={"b": 1},
                        priority=TASK_HIGH, supervisor=mp_sup)
            for i in range(50)])
        with pytest.raises(ValueError, match="oops"):
            await co_mp_apply(mp_funcs.fail, args=("oops",),
                              supervisor=mp_sup)
        with pytest.raises(TypeError, match="cannot be pickled"):
            await co_mp_apply(lambda: 0, supervisor=mp_sup)
        return results

    assert asyncio.run(main()) == [i + 1 for i in range(50)]


def test_co_mp_apply_cancel_cancels_queued_task(fifo_gates):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = fifo_gates()

    async def main():
        blocker = asyncio.ensure_future(co_mp_apply(
            mp_funcs.wait_fifo, args=(gate.path, "done"), supervisor=sup))
        await asyncio.get_running_loop().run_in_executor(
            None, gate.wait_started)
        waiting = asyncio.ensure_future(co_mp_apply(mp_funcs.add, args=(1,),
                                                    supervisor=sup))
        await asyncio.sleep(0)       # let it submit
        (task_id,) = [i for i, info in sup.get_info().task_info.items()
                      if info.status == TASK_STATUS_QUEUED]
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        gate.open()
        assert await blocker == "done"
        return task_id

    try:
        task_id = asyncio.run(main())
        assert sup.get_task_info(task_id).status == TASK_STATUS_CANCELED
    finally:
        sup.stop(wait=SAFETY, cancel_tasks=True)


def test_co_apply_runs_on_threads(sup):
    async def main():
        name = await co_apply(lambda: threading.current_thread().name,
                              supervisor=sup)
        with pytest.raises(KeyError):
            await co_apply({}.__getitem__, args=("missing",), supervisor=sup)
        return name

    assert asyncio.run(main()).startswith(f"atasker_{sup.id}_")


def test_co_apply_bad_arguments(sup):
    async def main():
        with pytest.raises(TypeError, match="kwargs"):
            await co_apply(mp_funcs.add, kwargs=[1], supervisor=sup)
        with pytest.raises(ValueError, match="delay"):
            await co_apply(mp_funcs.add, delay=-1, supervisor=sup)

    asyncio.run(main())


# -- configuration -------------------------------------------------------------
def test_default_context_and_lazy_pool():
    assert resolve_context(None).get_start_method() == "forkserver"
    sup = TaskSupervisor()
    assert sup.get_info().mp_processes == 0
    assert sup.get_info().mp_pool_size == (os.cpu_count() or 1)
    sup.start()
    assert sup.get_info().mp_processes == 0      # made on first use only
    sup.stop()


def test_set_mp_pool_validation(mp_sup):
    with pytest.raises(ValueError, match="pool_size"):
        mp_sup.set_mp_pool(pool_size=0)
    with pytest.raises(ValueError, match="reserve_high"):
        mp_sup.set_mp_pool(reserve_high=-1)
    with pytest.raises(ValueError, match="context"):
        mp_sup.set_mp_pool(context="no-such-method")
    with pytest.raises(TypeError, match="context"):
        mp_sup.set_mp_pool(context=42)
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        mp_sup.set_mp_pool(max_tasks_per_child=0)
    mp_sup.wait_completed(mp(mp_sup, mp_funcs.noop))
    with pytest.raises(ValueError, match="before the process pool starts"):
        mp_sup.set_mp_pool(context="spawn")


def test_growing_the_pool_at_runtime(mp_sup, fifo_gates):
    gates = [fifo_gates() for _ in range(3)]
    ids = [mp(mp_sup, mp_funcs.wait_fifo, gate.path) for gate in gates]
    gates[0].wait_started(), gates[1].wait_started()
    assert mp_sup.get_task_info(ids[2]).status == TASK_STATUS_QUEUED
    mp_sup.set_mp_pool(pool_size=3)
    gates[2].wait_started()                 # a third process came up
    for gate in gates:
        gate.open()
    mp_sup.wait_completed(ids, timeout=SAFETY)
    assert mp_sup.get_info().mp_processes == 3


def test_max_tasks_per_child_recycles():
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, max_tasks_per_child=2)
    try:
        pids = [sup.wait_completed(mp(sup, mp_funcs.pid), timeout=SAFETY)
                for _ in range(6)]
        assert [pids.count(p) for p in dict.fromkeys(pids)] == [2, 2, 2]
    finally:
        sup.stop()


def test_create_mp_pool_compat():
    sup = TaskSupervisor()
    sup.create_mp_pool(processes=2)
    try:
        info = sup.get_info()
        assert (info.mp_pool_size, info.mp_reserve_normal,
                info.mp_reserve_high) == (2, 0, 0)
        assert sup.wait_completed(mp(sup, mp_funcs.add, 2),
                                  timeout=SAFETY) == 2
    finally:
        sup.stop()


# -- stopping ----------------------------------------------------------------
def test_stop_drains_process_tasks_and_ends_workers(mp_sup):
    ids = [mp(mp_sup, mp_funcs.add, i) for i in range(30)]
    delayed = mp_sup.put_task(mp_funcs.add, args=(100,), tt=TT_MP,
                              delay=0.05)
    mp_sup.stop()
    assert [mp_sup.get_task_info(i).result for i in ids] == list(range(30))
    assert mp_sup.get_task_info(delayed).result == 100
    assert mp_sup.get_info().mp_processes == 0
    with pytest.raises(RuntimeError, match="stopped"):
        mp(mp_sup, mp_funcs.noop)


def test_stop_cancel_tasks_and_restart(fifo_gates):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = fifo_gates()
    running = mp(sup, mp_funcs.wait_fifo, gate.path, "ran")
    gate.wait_started()
    canceled = []

    def on_cancel(exc):
        canceled.append(exc)
        if len(canceled) == 3:
            gate.open()

    queued = [sup.put_task(mp_funcs.noop, tt=TT_MP, error_callback=on_cancel)
              for _ in range(3)]
    sup.stop(cancel_tasks=True)
    assert sup.get_task_info(running).result == "ran"
    assert all(sup.get_task_info(i).status == TASK_STATUS_CANCELED
               for i in queued)
    assert all(isinstance(e, CancelledError) for e in canceled)
    sup.start()             # a new pool is made on demand
    assert sup.wait_completed(mp(sup, mp_funcs.add, 7),
                              timeout=SAFETY) == 7
    sup.stop()


def test_bounded_stop_kills_running_process_tasks(fifo_gates):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = fifo_gates()
    running = mp(sup, mp_funcs.wait_fifo, gate.path)
    gate.wait_started()
    sup.stop(wait=0.2)
    sup.stop()              # joins what is left
    info = sup.get_task_info(running)
    assert info.status == atasker.TASK_STATUS_FAILED
    assert isinstance(info.exception, WorkerLostError)
    assert sup.get_info().mp_processes == 0


def run_python(code, **kwargs):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=60,
                          **kwargs)


def test_interpreter_exit_ends_worker_processes():
    result = run_python("""
        import atasker, os
        from tests import mp_funcs
        f = atasker.background_task(mp_funcs.pid, tt=atasker.TT_MP)
        ids = [f() for _ in range(8)]
        print(sorted(set(atasker.wait_completed(ids))))
    """, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert result.returncode == 0, result.stderr
    pids = eval(result.stdout)
    assert pids
    assert not [p for p in pids if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_exit_when_the_parent_is_killed(method, fifo_gates):
    gate = fifo_gates()       # keeps one worker busy: it must exit too
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import atasker, sys, threading
        from tests import mp_funcs
        sup = atasker.TaskSupervisor()
        sup.set_mp_pool(pool_size=2, context={method!r})
        pids = sup.wait_completed([sup.put_task(mp_funcs.pid, tt=atasker.TT_MP)
                                   for _ in range(10)])
        sup.put_task(mp_funcs.wait_fifo, args=({gate.path!r},),
                     tt=atasker.TT_MP)
        print(" ".join(map(str, set(pids))), flush=True)
        threading.Event().wait()
    """)], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        workers = [psutil.Process(p) for p in pids]
        gate.wait_started()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        parent.stdout.close()
    _, alive = psutil.wait_procs(workers, timeout=SAFETY)
    assert not alive


class _FailFirstStart:
    """A multiprocessing context whose first process fails to start (as
    when the parent is out of file descriptors)."""

    def __init__(self):
        import multiprocessing
        self._real = multiprocessing.get_context("forkserver")
        self.Pipe = self._real.Pipe
        self.failures = 1
        # the first start waits until the test has queued its task (else
        # it may fail before the task is there, and the retry runs it)
        self.task_queued = threading.Event()

    def Process(self, *args, **kwargs):
        assert self.task_queued.wait(SAFETY)
        process = self._real.Process(*args, **kwargs)
        if self.failures:
            self.failures -= 1

            def start():
                raise OSError(24, "Too many open files")
            process.start = start
        return process


def test_a_worker_process_that_fails_to_start_does_not_break_the_pool():
    """The first process start fails: the queued task fails with that
    error (it could not run anywhere), the next task starts a process and
    runs, and stop() ends the pool within its deadline."""
    sup = atasker.TaskSupervisor(pool_size=2)
    context = _FailFirstStart()
    sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0,
                    context=context)
    first = sup.put_task(mp_funcs.add, args=(1, 2), tt=atasker.TT_MP)
    context.task_queued.set()
    with pytest.raises(RuntimeError, match="could not start a worker"):
        sup.wait_completed(first, SAFETY)
    second = sup.put_task(mp_funcs.add, args=(2, 2), tt=atasker.TT_MP)
    assert sup.wait_completed(second, SAFETY) == 4
    started = time.monotonic()
    sup.stop(wait=SAFETY)
    assert time.monotonic() - started < SAFETY / 2
    assert sup.get_info().mp_processes == 0
