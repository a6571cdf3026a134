"""Period jitter of an interval worker.

An ``interval=0.01`` worker records the monotonic time of each run; the
deviation of beat *k* from ``first + k * interval`` is reported (mean and
max), with the number of skipped beats.

    python -m benchmarks.interval_jitter [--interval 0.01] [--beats 500]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import atasker


def measure(interval: float, beats: int) -> dict:
    supervisor = atasker.TaskSupervisor()
    marks: list[float] = []
    done = threading.Event()

    @atasker.background_worker(interval=interval, supervisor=supervisor)
    def beat(**kwargs):
        marks.append(time.monotonic())
        if len(marks) == beats:
            done.set()
            return False

    beat.start()
    done.wait()
    supervisor.stop()
    first = marks[0]
    deviations = []
    skipped = 0
    for mark in marks:
        k = round((mark - first) / interval)
        deviations.append(abs(mark - (first + k * interval)))
    skipped = round((marks[-1] - first) / interval) + 1 - len(marks)
    return {"mean_ms": statistics.mean(deviations) * 1000,
            "max_ms": max(deviations) * 1000,
            "total_drift_ms": (marks[-1] - first - (len(marks) - 1 + skipped)
                               * interval) * 1000,
            "skipped": skipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--beats", type=int, default=500)
    args = parser.parse_args()
    result = measure(args.interval, args.beats)
    print(f"interval={args.interval} s, {args.beats} beats: deviation from "
          f"the planned beat mean {result['mean_ms']:.3f} ms, max "
          f"{result['max_ms']:.3f} ms; drift {result['total_drift_ms']:.3f} "
          f"ms; skipped beats {result['skipped']}")


if __name__ == "__main__":
    main()
