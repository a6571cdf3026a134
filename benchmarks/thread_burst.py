"""Submit a burst of no-op thread tasks and wait for all of them.

atasker and ``concurrent.futures.ThreadPoolExecutor`` with the same number
of threads run alternately, several rounds; the medians and their ratio are
printed (ratio of wall time: below 1.0 means atasker was faster).

    python -m benchmarks.thread_burst [--tasks 50000] [--threads 8]
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor, wait

import atasker


def noop() -> None:
    pass


def run_stdlib(tasks: int, threads: int) -> float:
    executor = ThreadPoolExecutor(threads)
    started = time.perf_counter()
    wait([executor.submit(noop) for _ in range(tasks)])
    elapsed = time.perf_counter() - started
    executor.shutdown()
    return elapsed


def run_atasker(tasks: int, threads: int) -> float:
    supervisor = atasker.TaskSupervisor(pool_size=threads, reserve_normal=0,
                                        reserve_high=0)
    supervisor.keep_finished = tasks
    submit = atasker.background_task(noop, supervisor=supervisor)
    started = time.perf_counter()
    supervisor.wait_completed([submit() for _ in range(tasks)])
    elapsed = time.perf_counter() - started
    supervisor.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict = {"ThreadPoolExecutor": [], "atasker": []}
    for _ in range(args.rounds):
        times["ThreadPoolExecutor"].append(run_stdlib(args.tasks,
                                                      args.threads))
        times["atasker"].append(run_atasker(args.tasks, args.threads))
    base = statistics.median(times["ThreadPoolExecutor"])
    print(f"{args.tasks} no-op thread tasks on {args.threads} threads, "
          f"median of {args.rounds} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<20} {args.tasks / median:>10,.0f} tasks/s   "
              f"ratio {median / base:.2f}")


if __name__ == "__main__":
    main()
