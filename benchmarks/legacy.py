"""Measure a PyPI release of the original atasker (run by benchmarks.run).

Run with the python of a venv where that release is installed; it must not
see this checkout's package (the runner starts it from this directory, so
``sys.path[0]`` is ``benchmarks/``).  Prints one JSON line: the version and
tasks/s for a burst of no-op thread tasks and of no-op process tasks (on
two processes).  A workload that does not finish within its time limit is
reported as ``null``.

    /path/to/venv/bin/python benchmarks/legacy.py THREAD_TASKS MP_TASKS
"""

import json
import os
import sys
import threading
import time

import atasker
from atasker import TT_MP, background_task, task_supervisor

LIMIT = 120     # seconds per workload


def noop(*args, **kwargs):
    return None


def burst(submit, n):
    """Submit *n* tasks whose completion counts down; return tasks/s."""
    lock = threading.Lock()
    left = [n]
    done = threading.Event()

    def count(*args, **kwargs):
        with lock:
            left[0] -= 1
            if not left[0]:
                done.set()

    started = time.perf_counter()
    for _ in range(n):
        submit(count)
    if not done.wait(LIMIT):
        return None
    return n / (time.perf_counter() - started)


def main():
    threads, processes = int(sys.argv[1]), int(sys.argv[2])
    # 0.7 sets up its process queues at start(): make the pool first
    task_supervisor.set_mp_pool(pool_size=2, reserve_normal=0,
                                reserve_high=0)
    task_supervisor.start()
    time.sleep(0.5)     # its event loop thread must be up
    thread_rate = burst(lambda count: background_task(count)(), threads)
    mp_rate = burst(lambda count: background_task(
        noop, tt=TT_MP, callback=count)(), processes)
    print(json.dumps({"version": atasker.__version__,
                      "thread_rate": thread_rate, "mp_rate": mp_rate}),
          flush=True)
    os._exit(0)     # its stop() fails on Python >= 3.9


if __name__ == "__main__":
    main()
