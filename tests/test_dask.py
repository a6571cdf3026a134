"""Process tasks on a real dask cluster (set_mp_pool(executor=client)).

One ``distributed.LocalCluster`` of two single-thread worker processes on
127.0.0.1 serves the whole module (it takes seconds to start).  Its
nannies replace worker processes that exit, so the per-test process
census is replaced here by one check at the end of the module; the thread
census checks atasker's own threads only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import atasker
from atasker import (TASK_HIGH, TASK_LOW, TT_MP, TaskTimeoutError,
                     WorkerLostError)

from . import mp_funcs
from .conftest import SAFETY, _our_children
from .test_edges import _assert_die
from .test_executor_pool import (check_co_mp_apply,
                                 check_stop_cancels_queued_and_drains_running)
from .test_lifecycle import HOME

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")


@pytest.fixture(scope="module")
def client():
    before = set(_our_children())
    # a lost worker fails its task at once (no re-run elsewhere)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True,
            host="127.0.0.1", dashboard_address=None)
        with distributed.Client(cluster) as dask_client:
            yield dask_client
        cluster.close()
    left = [p for pid, p in _our_children().items() if pid not in before]
    assert not left, f"cluster processes left behind: {left}"


@pytest.fixture(autouse=True)
def process_census():
    """Replaced: the cluster's nannies start worker processes at will."""
    yield


@pytest.fixture(autouse=True)
def thread_census():
    """atasker's threads only: dask's client starts its own when it likes."""
    before = {t for t in threading.enumerate() if t.name.startswith("atasker")}
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("atasker") and thread not in before:
            thread.join(SAFETY)
            assert not thread.is_alive(), f"thread left behind: {thread}"


@pytest.fixture
def on_dask(client):
    made = []

    def make(**numbers):
        sup = atasker.TaskSupervisor(pool_size=4)
        sup.set_mp_pool(executor=client, **numbers)
        made.append(sup)
        return sup

    yield make
    for sup in made:
        sup.stop(wait=SAFETY, cancel_tasks=True)


def test_results_callbacks_and_worker_addresses(on_dask, client):
    sup = on_dask()
    assert sup.status()["pools"]["process"]["size"] == 2   # cluster threads
    got = []
    ids = [sup.put_task(mp_funcs.add, args=(i, 1), tt=TT_MP,
                        callback=got.append) for i in range(40)]
    assert sup.wait_completed(ids, timeout=SAFETY) == list(range(1, 41))
    assert sorted(got) == list(range(1, 41))
    workers = set(client.scheduler_info()["workers"])
    assert {sup.get_task_info(i).worker for i in ids} <= workers


def test_an_exception_keeps_its_type_and_is_not_retried(on_dask):
    sup = on_dask()
    task_id = sup.put_task(mp_funcs.fail, args=("boom",), tt=TT_MP)
    with pytest.raises(ValueError, match="boom") as raised:
        sup.wait_completed(task_id, timeout=SAFETY)
    assert isinstance(raised.value.__cause__, atasker.RemoteTraceback)


def test_a_high_task_starts_within_the_first_three(on_dask, fifo_gates):
    sup = on_dask(pool_size=2, reserve_normal=0, reserve_high=0)
    gates = [fifo_gates(), fifo_gates()]
    order = []
    done = threading.Event()

    def ran(value):
        order.append(value)
        if len(order) == 23:
            done.set()

    for gate in gates:      # both slots held
        sup.put_task(mp_funcs.wait_fifo, args=(gate.path, "gate"), tt=TT_MP,
                     callback=ran)
    for gate in gates:
        gate.wait_started()
    for i in range(20):
        sup.put_task(mp_funcs.tag, args=(f"low{i}",), tt=TT_MP,
                     priority=TASK_LOW, callback=ran)
    sup.put_task(mp_funcs.tag, args=("high",), tt=TT_MP,
                 priority=TASK_HIGH, callback=ran)
    for gate in gates:
        gate.open()
    assert done.wait(SAFETY)
    assert "high" in order[2:5], order


def test_a_timeout_ends_the_call_and_the_next_task_runs(on_dask, tmp_path):
    sup = on_dask(pool_size=1, reserve_normal=0, reserve_high=0)
    fifo = str(tmp_path / "pid")
    os.mkfifo(fifo)
    slow = sup.put_task(mp_funcs.report_pid_and_wait, args=(fifo,),
                        tt=TT_MP, timeout=1)
    with open(fifo) as reader:
        pid = int(reader.read())
    with pytest.raises(TaskTimeoutError):
        sup.wait_completed(slow, timeout=SAFETY)
    assert sup.wait_completed(sup.put_task(mp_funcs.add, args=(2, 2),
                                           tt=TT_MP), timeout=SAFETY) == 4
    _assert_die(pid)        # the worker that ran the timed-out task
    assert isinstance(sup.get_task_info(slow).exception, TaskTimeoutError)


def test_a_killed_worker_fails_its_task(on_dask, tmp_path):
    sup = on_dask()
    fifo = str(tmp_path / "pid")
    os.mkfifo(fifo)
    task_id = sup.put_task(mp_funcs.report_pid_and_wait, args=(fifo,),
                           tt=TT_MP)
    with open(fifo) as reader:
        os.kill(int(reader.read()), signal.SIGKILL)
    with pytest.raises(WorkerLostError):
        sup.wait_completed(task_id, timeout=SAFETY * 2)
    assert sup.wait_completed(sup.put_task(mp_funcs.add, args=(1, 1),
                                           tt=TT_MP), timeout=SAFETY) == 2


def test_co_mp_apply_runs_on_the_cluster(on_dask):
    check_co_mp_apply(on_dask())


def test_stop_drains_and_cancels_on_the_cluster(on_dask, fifo_gates):
    check_stop_cancels_queued_and_drains_running(
        on_dask(pool_size=1, reserve_normal=0, reserve_high=0), fifo_gates())


def test_atasker_run_with_dask_sends_process_tasks_there(client, tmp_path):
    module = tmp_path / "cluster_app.py"
    module.write_text(textwrap.dedent("""
        import atasker
        from tests import mp_funcs
        sup = atasker.TaskSupervisor(pool_size=1)

        @sup.task
        def work():
            task_id = sup.put_task(mp_funcs.add, args=(20, 22),
                                   tt=atasker.TT_MP)
            result = sup.wait_completed(task_id)
            print("on", sup.get_task_info(task_id).worker, result,
                  flush=True)
        """))
    env = dict(os.environ, PYTHONPATH=HOME)
    result = subprocess.run(
        [sys.executable, "-m", "atasker", "run", f"{module}:sup",
         "--until-complete", "--log-level", "WARNING",
         "--dask", client.scheduler.address],
        capture_output=True, text=True, timeout=60, cwd=HOME, env=env)
    assert result.returncode == 0, result.stderr
    _, worker, answer = result.stdout.split()
    assert worker in client.scheduler_info()["workers"] and answer == "42"


def test_the_scaling_out_example_runs(tmp_path):
    """The first Python example of doc/scaling.rst, as a script."""
    with open(os.path.join(HOME, "doc", "scaling.rst")) as page:
        text = page.read()
    block = text.split(".. code:: python\n", 1)[1].split("\nAn app", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(block))
    env = dict(os.environ, PYTHONPATH=HOME)
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path,
                            env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[0] == str([i * i for i in range(10)])
