"""The app runner: init tasks, tasks, timers, workers and ``run()``."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading

import pytest

import atasker
from atasker import TASK_HIGH, TASK_LOW, TaskSupervisor

from .conftest import SAFETY


@pytest.fixture
def app():
    supervisor = TaskSupervisor(pool_size=2, reserve_normal=0,
                                reserve_high=0)
    yield supervisor
    supervisor.stop(wait=SAFETY, cancel_tasks=True)


def test_init_tasks_run_first_in_priority_order(app):
    order = []
    lock = threading.Lock()

    def note(what):
        with lock:
            order.append(what)

    @app.task
    def main_job():
        note("task")

    @app.init_task(priority=TASK_LOW)
    def last():
        note("init low")

    @app.init_task
    def middle():
        note("init normal 1")

    @app.init_task(priority=TASK_HIGH)
    async def first():
        await asyncio.sleep(0)
        note("init high")

    @app.init_task
    def middle_2():
        note("init normal 2")

    assert main_job.__name__ == "main_job"       # returned unchanged
    assert app.run(until_complete=True) == 0
    assert order == ["init high", "init normal 1", "init normal 2",
                     "init low", "task"]
    assert not app.is_active


def test_failed_init_task_stops_the_app(app, caplog):
    ran = []

    @app.init_task
    def connect():
        raise ConnectionError("database unreachable")

    app.task(lambda: ran.append("task"))
    ticks = app.timer(lambda: ran.append("tick"), interval=0.01,
                      on_start=True)
    with caplog.at_level(logging.ERROR, logger="atasker"):
        assert app.run() == 1
    assert ran == [] and not ticks.is_active() and not app.is_active
    assert any("connect failed, not starting" in r.getMessage()
               and "database unreachable" in r.getMessage()
               for r in caplog.records)


def test_timer_runs_at_once_with_on_start_and_stops_on_false(app):
    runs = []

    @app.timer(interval=0.01, on_start=True)
    def tick():
        runs.append(1)
        return len(runs) < 3

    assert isinstance(tick, atasker.BackgroundIntervalWorker)
    # until_complete: returns once the timer has stopped itself
    assert app.run(until_complete=True) == 0
    assert len(runs) == 3


def test_async_timer_and_worker_declaration(app):
    seen = []
    done = threading.Event()

    @app.timer(interval=0.01, on_start=True)
    async def tick():
        seen.append("tick")
        return False

    @app.worker(q=True)
    def consume(item, **kwargs):
        seen.append(item)
        done.set()
        return False

    @app.task
    def produce():
        consume.put("item")

    assert app.run(until_complete=True) == 0
    assert done.is_set() and sorted(seen) == ["item", "tick"]
    with pytest.raises(TypeError, match="supervisor"):
        app.worker(lambda: None, supervisor=app)


def test_run_for_time_stops_a_timer_app(app):
    runs = []
    app.timer(lambda: runs.append(1), interval=0.01, on_start=True)
    assert app.run(for_time=0.1) == 0
    assert runs and not app.is_active


def test_stop_from_a_task_ends_run(app):
    @app.task
    def shut_down():
        app.stop(wait=False)

    app.timer(lambda: None, interval=60)
    assert app.run() == 0
    assert not app.is_active


def test_run_restores_signal_handlers(app):
    before = signal.getsignal(signal.SIGTERM)
    app.task(lambda: None)
    assert app.run(until_complete=True) == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_signal_during_run_drains_queued_work(app, gates):
    app.set_thread_pool(pool_size=1, reserve_normal=0, reserve_high=0)
    gate = gates()
    finished = []

    @app.task
    def blocker():
        # the only slot is held: these wait in the queue
        for n in range(5):
            app.put_task(finished.append, args=(n,), priority=TASK_LOW)
        gate()

    def send_signal():
        gate.wait_started()
        signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
        gate.open()

    helper = threading.Thread(target=send_signal)
    helper.start()
    assert app.run() == 0
    helper.join(SAFETY)
    assert sorted(finished) == [0, 1, 2, 3, 4]


def test_run_is_not_reentrant_and_checks_arguments(app):
    inner = []

    @app.task
    def nested():
        try:
            app.run(handle_signals=False)
        except RuntimeError as exc:
            inner.append(str(exc))

    assert app.run(until_complete=True) == 0
    assert inner and "already running" in inner[0]
    with pytest.raises(ValueError):
        app.run(for_time=-1)
    with pytest.raises(ValueError):
        app.timer(lambda: None, interval=0)
    with pytest.raises(TypeError):
        app.init_task(42)
    with pytest.raises(ValueError):
        app.task(lambda: None, tt=99)


def test_failure_to_start_declared_work_stops_the_app(app):
    app.task(lambda: None, tt=atasker.TT_MP)    # a lambda cannot pickle
    with pytest.raises(TypeError):
        app.run()
    assert not app.is_active
