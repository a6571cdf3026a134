"""``atasker demo``: a short, self-contained mixed-priority workload."""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO

from ._constants import BAND_NAMES, TASK_CRITICAL, TASK_HIGH, TASK_LOW, \
    TASK_NORMAL, priority_band
from ._supervisor import TaskSupervisor

_MIX = ((TASK_LOW, 120), (TASK_NORMAL, 120), (TASK_HIGH, 60),
        (TASK_CRITICAL, 6))


def _busy(seconds: float) -> float:
    """Stand-in for blocking I/O: sleep, return how long it took."""
    started = time.perf_counter()
    time.sleep(seconds)
    return time.perf_counter() - started


def _live_line(supervisor: TaskSupervisor, started: float) -> str:
    status = supervisor.status()
    pool = status["pools"]["thread"]
    queued = " ".join(f"{band} {count:>3}"
                      for band, count in pool["queued_by_band"].items())
    return (f"  {time.perf_counter() - started:5.2f} s  running "
            f"{pool['running']}  queued: {queued}  completed "
            f"{status['totals']['completed']}")


def _watch(supervisor: TaskSupervisor, out: TextIO, started: float,
           done: threading.Event, period: float = 0.1) -> None:
    """Print the live view every *period* seconds until *done*."""
    live = out.isatty()
    while not done.wait(period):    # the refresh period, not a poll for work
        line = _live_line(supervisor, started)
        print(f"\r{line}" if live else line, end="" if live else "\n",
              file=out, flush=True)
    if live:
        print(file=out)


def run_demo(out: TextIO, burst: int = 20_000,
             work: Callable[[float], float] = _busy) -> dict:
    """Run the demo, print a report (and a live view while the mixed
    workload runs) to *out*, return the figures."""
    supervisor = TaskSupervisor(pool_size=4, reserve_normal=2,
                                reserve_high=2, supervisor_id="demo")
    figures: dict = {}
    try:
        print("atasker demo: a pool of 4 threads (+2 normal, +2 high "
              "reserve), all busy, gets a burst of mixed-priority I/O "
              "tasks", file=out)
        _mixed(supervisor, out, work, figures)
        print("  critical tasks jumped the queue; high ones ran before "
              "normal, normal before low", file=out)
        _burst(supervisor, out, burst, figures)
    finally:
        supervisor.stop(wait=True)
    print("supervisor stopped; no threads left behind", file=out)
    return figures


def _mixed(supervisor: TaskSupervisor, out: TextIO,
           work: Callable[[float], float], figures: dict) -> None:
    """The mixed-priority burst on a busy pool, with a live view."""
    # keep all 8 slots busy until the whole burst has arrived, so the
    # order in which tasks start shows the priorities alone
    gate = threading.Event()
    holders = [supervisor.put_task(gate.wait, priority=TASK_HIGH)
               for _ in range(8)]
    ids = []
    started = time.perf_counter()
    # submit the least urgent first, so priorities have to reorder them
    for priority, count in _MIX:
        for _ in range(count):
            ids.append(supervisor.put_task(work, args=(0.01,),
                                           priority=priority))
    done = threading.Event()
    watcher = threading.Thread(target=_watch, name="atasker_demo_view",
                               args=(supervisor, out, started, done))
    watcher.start()
    gate.set()
    try:
        supervisor.wait_completed(holders + ids)
    finally:
        done.set()
        watcher.join()
    elapsed = time.perf_counter() - started
    waits: dict = {name: [] for name in BAND_NAMES}
    for task_id in ids:
        info = supervisor.get_task_info(task_id)
        assert info is not None and info.time_started is not None
        waits[BAND_NAMES[priority_band(info.priority)]].append(
            info.time_started - info.time_queued)
    print(f"  {len(ids)} tasks done in {elapsed:.2f} s", file=out)
    print("  band        tasks   mean wait in queue", file=out)
    for name in BAND_NAMES:
        values = waits[name]
        mean = sum(values) / len(values)
        figures[f"wait_{name}"] = mean
        print(f"  {name:<10} {len(values):>6}   {mean * 1000:8.1f} ms",
              file=out)


def _noop() -> None:
    pass


def _burst(supervisor: TaskSupervisor, out: TextIO, burst: int,
           figures: dict) -> None:
    """Throughput of no-op tasks."""
    started = time.perf_counter()
    ids = [supervisor.put_task(_noop) for _ in range(burst)]
    supervisor.wait_completed(ids)
    elapsed = time.perf_counter() - started
    figures["burst_rate"] = burst / elapsed
    print(f"  then {burst} no-op tasks: {elapsed:.2f} s, "
          f"{burst / elapsed:,.0f} tasks/s", file=out)
