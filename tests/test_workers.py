"""Workers: loop, async, interval, queue, event, timer, process pool."""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time

import pytest

from atasker import (TASK_HIGH, TASK_LOW, BackgroundAsyncWorker,
                     BackgroundEventWorker, BackgroundIntervalWorker,
                     BackgroundQueueWorker, BackgroundTimerWorker,
                     BackgroundWorker, TaskSupervisor, background_worker)
from atasker._timed_workers import next_beat

from . import mp_funcs
from .conftest import SAFETY, assert_blocks_until


class Counter:
    """Counts runs; sets an event when a number is reached."""

    def __init__(self, until=None):
        self.count = 0
        self.lock = threading.Lock()
        self.until = until
        self.reached = threading.Event()
        self.calls = []

    def hit(self, *args, **kwargs):
        with self.lock:
            self.count += 1
            self.calls.append((args, kwargs))
            if self.until is not None and self.count >= self.until:
                self.reached.set()
            return self.count

    def wait(self):
        assert self.reached.wait(SAFETY), f"only {self.count} runs"


# -- the decorator picks the class -------------------------------------------
def test_decorator_picks_the_kind(sup):
    def f(*args, **kwargs):
        pass

    async def af(**kwargs):
        pass

    kinds = {
        BackgroundTimerWorker: background_worker(f, timer=True, delay=1,
                                                 supervisor=sup),
        BackgroundQueueWorker: background_worker(f, q=True, supervisor=sup),
        BackgroundEventWorker: background_worker(f, e=True, supervisor=sup),
        BackgroundIntervalWorker: background_worker(f, interval=1,
                                                    supervisor=sup),
        BackgroundAsyncWorker: background_worker(af, supervisor=sup),
        BackgroundWorker: background_worker(f, supervisor=sup),
    }
    for cls, worker in kinds.items():
        assert type(worker) is cls and worker.name in ("f", "af")
    assert type(background_worker(f, queue=asyncio.PriorityQueue)) is \
        BackgroundQueueWorker
    assert type(background_worker(f, event=True)) is BackgroundEventWorker
    assert type(background_worker(f, delay_before=1)) is \
        BackgroundIntervalWorker
    assert type(background_worker(name="x")(f)) is BackgroundWorker


# -- the plain loop worker ---------------------------------------------------
def test_loop_worker_runs_until_false(sup):
    counter = Counter(until=5)

    @background_worker(supervisor=sup, o="payload")
    def work(a, b=None, **kwargs):
        n = counter.hit(a, b=b, **kwargs)
        return n < 5            # False on the fifth run stops it

    work.start(1, b=2)
    counter.wait()
    sup.stop()                  # joins everything: no run can follow
    assert counter.count == 5 and work.is_stopped()
    args, kwargs = counter.calls[0]
    assert args == (1,) and kwargs["b"] == 2 and kwargs["o"] == "payload"
    assert kwargs["_worker"] is work and kwargs["_worker_name"] == "work"


def test_runs_are_supervisor_tasks_with_the_worker_priority(sup, gates):
    gate = gates()

    class Worker(BackgroundWorker):
        def run(self, **kwargs):
            gate()
            return False

    worker = Worker(name="w", priority=TASK_LOW, supervisor=sup)
    worker.start(_priority=TASK_HIGH, _worker_name="renamed")
    gate.wait_started()
    (info,) = sup.get_info().task_info.values()
    assert info.name == "renamed" and info.priority == TASK_HIGH
    assert sup.get_info().schedulers == [worker]
    assert worker.is_active() and worker.is_started()
    gate.open()
    worker.stop()
    assert not worker.is_active() and sup.get_info().schedulers == []


def test_stop_waits_for_the_current_run_and_never_runs_again(sup, gates):
    gate = gates()
    counter = Counter()

    @background_worker(supervisor=sup)
    def work(**kwargs):
        counter.hit()
        gate()

    work.start()
    gate.wait_started()
    assert_blocks_until(work.stop, gate.open)   # waits for the run
    runs = counter.count
    sup.stop()
    assert counter.count == runs == 1


def test_stop_without_wait_and_restart(sup, gates):
    gate = gates()
    counter = Counter(until=2)

    @background_worker(supervisor=sup)
    def work(**kwargs):
        n = counter.hit()
        if n == 1:
            gate()
        return n < 2

    work.start()
    gate.wait_started()
    work.stop(wait=False)               # returns while the run goes on
    assert not work.is_active() and not work.is_stopped()
    gate.open()
    work.restart()
    counter.wait()


def test_on_error_keeps_the_worker_going(sup, caplog):
    errors = []
    counter = Counter(until=3)

    @background_worker(supervisor=sup,
                       on_error=lambda e, tag: errors.append((e, tag)),
                       on_error_kwargs={"tag": "t"})
    def work(**kwargs):
        n = counter.hit()
        if n < 3:
            raise ValueError(f"run {n}")
        return False

    work.start()
    counter.wait()
    sup.stop()
    assert counter.count == 3
    assert [(str(e), t) for e, t in errors] == [("run 1", "t"),
                                                ("run 2", "t")]


def test_stop_from_inside_the_executor(sup):
    counter = Counter(until=1)

    @background_worker(supervisor=sup)
    def work(_worker, **kwargs):
        counter.hit()
        _worker.stop()                  # must not wait for itself

    work.start()
    counter.wait()
    sup.stop()
    assert counter.count == 1


def test_bad_arguments():
    def f(**kwargs):
        pass

    with pytest.raises(ValueError, match="exclude"):
        background_worker(f, interval=1, delay=1)
    with pytest.raises(ValueError, match="interval"):
        background_worker(f, interval=0)
    with pytest.raises(ValueError, match="workers"):
        background_worker(f, q=True, workers=0)
    with pytest.raises(TypeError, match="queue class"):
        background_worker(f, q="fifo")
    with pytest.raises(TypeError, match="unexpected"):
        background_worker(f, colour="red")
    with pytest.raises(TypeError, match="priority"):
        background_worker(f, priority="high")
    with pytest.raises(NotImplementedError, match="executor"):
        BackgroundWorker(supervisor=TaskSupervisor()).run()


# -- interval ----------------------------------------------------------------
def test_next_beat_keeps_the_period_and_skips_missed_beats():
    assert next_beat(10.0, 1.0, 10.5) == 11.0      # on time
    assert next_beat(10.0, 1.0, 11.0) == 11.0
    assert next_beat(10.0, 1.0, 13.2) == 14.0      # 11, 12, 13 missed
    assert next_beat(10.0, 0.25, 10.6) == 10.75


def test_interval_worker_delay_before_and_delay(sup):
    marks = []
    counter = Counter(until=3)
    started = time.monotonic()

    @background_worker(delay_before=0.05, delay=0.02, supervisor=sup)
    def work(**kwargs):
        marks.append(time.monotonic())
        counter.hit()

    work.start()
    counter.wait()
    work.stop()
    assert marks[0] - started >= 0.05
    assert all(b - a >= 0.02 for a, b in zip(marks, marks[1:]))


def test_interval_worker_trigger_and_overrides(sup):
    counter = Counter(until=2)

    @background_worker(interval=3600, supervisor=sup)
    def work(**kwargs):
        counter.hit()

    work.start(_delay_before=3600)      # nothing would run for an hour
    work.trigger()
    work.trigger_threadsafe()           # coalesced if the first still runs
    counter.wait()
    work.stop()
    assert work.interval == 3600 and work.delay_before == 3600
    work.start(_interval=0.01, _delay_before=0)
    assert work.interval == 0.01
    counter.reached.clear()
    counter.until = counter.count + 5
    counter.wait()
    work.stop()


# -- queue -------------------------------------------------------------------
def test_queue_worker_gets_every_item(sup):
    counter = Counter(until=50)

    @background_worker(q=True, supervisor=sup)
    def consume(item, **kwargs):
        counter.hit(item)

    for i in range(10):
        consume.put(i)                  # before start: they wait
    consume.start()
    for i in range(10, 50):
        consume.put_threadsafe(i)
    counter.wait()
    assert [args[0] for args, _ in counter.calls] == list(range(50))


def test_queue_workers_run_concurrently(sup):
    barrier = threading.Barrier(3, timeout=SAFETY)
    counter = Counter(until=3)

    @background_worker(q=True, workers=3, supervisor=sup)
    def consume(item, **kwargs):
        barrier.wait()                  # only passes if 3 run at once
        counter.hit(item)

    consume.start()
    for i in range(3):
        consume.put(i)
    counter.wait()


def test_priority_queue_order(sup, gates):
    gate = gates()
    order = []
    counter = Counter(until=4)

    @background_worker(q=queue.PriorityQueue, supervisor=sup)
    def consume(item, **kwargs):
        if item == (0, "block"):
            gate()
        order.append(item[1])
        counter.hit()

    consume.start()
    consume.put((0, "block"))
    gate.wait_started()
    for item in [(3, "c"), (1, "a"), (2, "b")]:
        consume.put(item)
    gate.open()
    counter.wait()
    assert order == ["block", "a", "b", "c"]


def test_maxsize_backpressure(sup, gates):
    gate = gates()
    counter = Counter(until=3)

    @background_worker(q=True, maxsize=1, supervisor=sup)
    def consume(item, **kwargs):
        if item == 0:
            gate()
        counter.hit(item)

    consume.start()
    consume.put(0)
    gate.wait_started()                 # the consumer holds item 0
    consume.put(1)                      # fills the queue
    with pytest.raises(queue.Full):
        consume.put(2, timeout=0.01)
    assert consume.qsize() == 1

    async def producer():
        await consume.aput(2)           # waits for room

    assert_blocks_until(lambda: asyncio.run(producer()), gate.open)
    counter.wait()
    assert sorted(a[0] for a, _ in counter.calls) == [0, 1, 2]


# -- event and timer ---------------------------------------------------------
def test_event_worker_coalesces_triggers(sup, gates):
    gate = gates()
    counter = Counter(until=2)

    @background_worker(e=True, supervisor=sup)
    def on_event(**kwargs):
        if counter.hit() == 1:
            gate()

    on_event.start()
    on_event.trigger()
    gate.wait_started()
    for _ in range(5):
        on_event.trigger()              # all during run 1: one more run
    gate.open()
    counter.wait()
    on_event.stop()
    sup.stop()
    assert counter.count == 2


def test_timer_worker_runs_once_and_reset_pushes_it_back(sup):
    fired = Counter(until=1)
    marks = {}

    @background_worker(timer=True, delay=0.1, supervisor=sup)
    def watchdog(**kwargs):
        marks["fired"] = time.monotonic()
        fired.hit()

    watchdog.start()
    time_of_reset = time.monotonic()
    assert watchdog.reset()
    fired.wait()
    assert marks["fired"] - time_of_reset >= 0.1
    sup.stop()
    assert fired.count == 1
    assert not watchdog.is_active() and not watchdog.reset()


# -- async and process executors ---------------------------------------------
def test_async_worker_on_an_aloop(sup):
    sup.create_aloop("workers")
    names = []
    done = threading.Event()

    @background_worker(loop="workers", supervisor=sup)
    async def work(**kwargs):
        await asyncio.sleep(0)
        names.append(threading.current_thread().name)
        if len(names) == 3:
            done.set()
            return False

    work.start()
    assert done.wait(SAFETY)
    sup.stop()
    assert names == ["supervisor_aloop_workers"] * 3


def test_async_interval_and_queue_workers(sup):
    got = Counter(until=3)

    @background_worker(q=True, supervisor=sup)
    async def consume(item, **kwargs):
        got.hit(item)

    consume.start()
    for i in range(3):
        consume.put(i)
    got.wait()
    beats = Counter(until=3)

    @background_worker(interval=0.01, supervisor=sup)
    async def beat(**kwargs):
        beats.hit()

    beat.start()
    beats.wait()


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_process_pool_worker(method):
    sup = TaskSupervisor()
    sup.set_mp_pool(pool_size=1, context=method)
    worker = mp_funcs.DoublingWorker(3, supervisor=sup)
    try:
        worker.start()
        for i in (1, 2, 3):
            worker.put(i)
        assert worker.done.wait(SAFETY)
        assert [r[0] for r in worker.results] == [2, 4, 6]
        assert all(r[1] != os.getpid() for r in worker.results)
        sup.stop()
        assert not worker.is_active()       # process_result said False
    finally:
        sup.stop(wait=SAFETY, cancel_tasks=True)


def test_supervisor_stop_stops_workers():
    sup = TaskSupervisor()
    counter = Counter(until=3)

    @background_worker(interval=0.01, supervisor=sup)
    def beat(**kwargs):
        counter.hit()

    beat.start()
    counter.wait()
    sup.stop()
    assert not beat.is_active() and beat.is_stopped()
    with pytest.raises(RuntimeError, match="stopped"):
        beat.start()


def test_event_trigger_before_start_runs_at_start(sup):
    counter = Counter(until=1)

    @background_worker(e=True, supervisor=sup)
    def on_event(**kwargs):
        counter.hit()

    on_event.trigger()
    assert counter.count == 0
    on_event.start()
    counter.wait()


def test_stop_waits_for_running_runs_while_another_is_only_decided(sup):
    """A queue worker with two consumers: one run is running, the next is
    decided but not yet submitted when ``stop()`` comes.  ``stop()`` still
    waits for the running one, and the undecided item stays queued."""
    long_gate, short_gate = threading.Event(), threading.Event()
    in_gap, go_on = threading.Event(), threading.Event()

    def job(item, **_):
        (long_gate if item == "long" else short_gate).wait(SAFETY)

    worker = BackgroundQueueWorker(executor_func=job, workers=2,
                                   supervisor=sup)
    submit_due = worker._submit_due

    def held_submit_due(quiet):
        # the end of "short" decides the run of "c": hold it there
        if quiet and not in_gap.is_set():
            in_gap.set()
            go_on.wait(SAFETY)
        return submit_due(quiet)

    worker._submit_due = held_submit_due
    worker.start()
    for item in ("long", "short", "c"):
        worker.put(item)
    short_gate.set()
    assert in_gap.wait(SAFETY)
    assert_blocks_until(worker.stop, lambda: (go_on.set(), long_gate.set()))
    assert worker.qsize() == 1              # "c" went back to the queue
