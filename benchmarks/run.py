"""atasker beside its peers, every workload in one run.

Each workload runs every implementation alternately for several rounds; the
table shows medians and the ratio that each target is about.  Nothing here
is part of the test suite's pass/fail: ``--quick`` (tiny sizes, one round)
exists so that a test keeps the runner from rotting.

    python -m benchmarks [--quick] [--rounds 5] [--json]
        [--legacy 0.7.9=/venv-0.7.9/bin/python ...]

``--legacy VERSION=PYTHON`` runs ``benchmarks/legacy.py`` with the python of
a venv where that release of the original atasker is installed
(``pip install atasker==0.7.9``): its package name clashes with this one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, wait
from typing import Any, Callable

import atasker

CTX = multiprocessing.get_context("forkserver")

SIZES = {   # workload: (full size, --quick size)
    "thread_burst": (50_000, 2_000),
    "latency": (2_000, 100),
    "mp_burst": (20_000, 500),
    "co_mp": (5_000, 200),
    "memory": (200_000, 5_000),
    "critical": (100_000, 2_000),
    "legacy_threads": (2_000, 200),
    "legacy_mp": (300, 50),
}


def noop() -> None:
    return None


def supervisor(threads: int = 8, processes: int = 0,
               keep: int = 10_000) -> atasker.TaskSupervisor:
    sup = atasker.TaskSupervisor(pool_size=threads, reserve_normal=0,
                                 reserve_high=0)
    sup.keep_finished = keep
    if processes:
        sup.set_mp_pool(pool_size=processes, context=CTX)
        sup.wait_completed(sup.put_task(noop, tt=atasker.TT_MP))
    return sup


# -- workloads: each returns {implementation: measurement} for one round ----
def thread_burst(n: int) -> dict:
    """Wall time to submit n no-op thread tasks and wait for all."""
    out = {}
    executor = ThreadPoolExecutor(8)
    started = time.perf_counter()
    wait([executor.submit(noop) for _ in range(n)])
    out["ThreadPoolExecutor(8)"] = time.perf_counter() - started
    executor.shutdown()
    sup = supervisor(keep=n)
    submit = atasker.background_task(noop, supervisor=sup)
    started = time.perf_counter()
    sup.wait_completed([submit() for _ in range(n)])
    out["atasker, 8 threads"] = time.perf_counter() - started
    sup.stop()
    return out


def _latencies(n: int, run: Callable[[Callable[[float], float]], float]
               ) -> float:
    samples = []

    def probe(t0: float) -> float:
        return time.perf_counter() - t0

    for _ in range(n):
        samples.append(run(probe))
    return statistics.median(samples)


def latency(n: int) -> dict:
    """Median time from submit to the task's first line, pool idle."""
    executor = ThreadPoolExecutor(8)
    out = {"ThreadPoolExecutor(8)": _latencies(
        n, lambda probe: executor.submit(probe,
                                         time.perf_counter()).result())}
    executor.shutdown()
    sup = supervisor()
    submit = atasker.background_task
    out["atasker, 8 threads"] = _latencies(
        n, lambda probe: sup.wait_completed(
            submit(probe, supervisor=sup)(time.perf_counter())))
    sup.stop()
    return out


def mp_burst(n: int) -> dict:
    """Wall time for n no-op process tasks on 2 processes."""
    out = {}
    with CTX.Pool(2) as pool:
        pool.apply(noop)
        started = time.perf_counter()
        for result in [pool.apply_async(noop) for _ in range(n)]:
            result.get()
        out["multiprocessing.Pool(2)"] = time.perf_counter() - started
    with ProcessPoolExecutor(2, mp_context=CTX) as executor:
        executor.submit(noop).result()
        started = time.perf_counter()
        wait([executor.submit(noop) for _ in range(n)])
        out["ProcessPoolExecutor(2)"] = time.perf_counter() - started
    sup = supervisor(processes=2, keep=n)
    submit = atasker.background_task(noop, tt=atasker.TT_MP, supervisor=sup)
    started = time.perf_counter()
    sup.wait_completed([submit() for _ in range(n)])
    out["atasker TT_MP, 2 processes"] = time.perf_counter() - started
    sup.stop()
    return out


def co_mp(n: int) -> dict:
    """Wall time for n concurrent awaits of no-op process tasks."""
    out = {}
    with ProcessPoolExecutor(2, mp_context=CTX) as executor:
        executor.submit(noop).result()

        async def stdlib() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*[loop.run_in_executor(executor, noop)
                                   for _ in range(n)])

        started = time.perf_counter()
        asyncio.run(stdlib())
        out["run_in_executor(ProcessPoolExecutor(2))"] = \
            time.perf_counter() - started
    sup = supervisor(processes=2, keep=n)

    async def ours() -> None:
        await asyncio.gather(*[atasker.co_mp_apply(noop, supervisor=sup)
                               for _ in range(n)])

    started = time.perf_counter()
    asyncio.run(ours())
    out["atasker co_mp_apply"] = time.perf_counter() - started
    sup.stop()
    return out


def _traced(fill: Callable[[], Any], n: int) -> float:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = fill()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return (after - before) / n


def memory(n: int) -> dict:
    """Bytes per queued task, n tasks waiting behind one blocked thread."""
    out = {}
    gate = threading.Event()
    executor = ThreadPoolExecutor(1)
    executor.submit(gate.wait)
    out["ThreadPoolExecutor(1)"] = _traced(
        lambda: [executor.submit(noop) for _ in range(n)], n)
    gate.set()
    executor.shutdown()
    gate.clear()
    sup = supervisor(threads=1, keep=n)
    sup.put_task(gate.wait)
    submit = atasker.background_task(noop, supervisor=sup)
    out["atasker, 1 thread"] = _traced(
        lambda: [submit() for _ in range(n)], n)
    gate.set()
    sup.stop()
    return out


def _critical_p50(queued: int, probes: int = 50) -> float:
    sup = supervisor(threads=2, keep=queued + 1000)
    gate = threading.Event()
    for _ in range(2):
        sup.put_task(gate.wait, priority=atasker.TASK_LOW)
    for _ in range(queued):
        sup.put_task(noop, priority=atasker.TASK_LOW)
    samples = []

    def probe(t0: float) -> float:
        return time.perf_counter() - t0

    for _ in range(probes):
        samples.append(sup.wait_completed(sup.put_task(
            probe, args=(time.perf_counter(),),
            priority=atasker.TASK_CRITICAL)))
    gate.set()
    sup.stop(cancel_tasks=True)
    return statistics.median(samples)


def critical(n: int) -> dict:
    """Median start latency of a critical task, idle vs n low tasks queued."""
    return {"idle supervisor": _critical_p50(0),
            f"{n} low tasks queued": _critical_p50(n)}


def legacy(threads: int, processes: int, pythons: dict) -> dict:
    """tasks/s of the original atasker beside this one, same sizes."""
    out: dict = {}
    sup = supervisor(processes=2, keep=max(threads, processes))
    for kind, n, tt in (("threads", threads, atasker.TT_THREAD),
                        ("processes", processes, atasker.TT_MP)):
        submit = atasker.background_task(noop, tt=tt, supervisor=sup)
        started = time.perf_counter()
        sup.wait_completed([submit() for _ in range(n)])
        out[f"atasker {kind}"] = n / (time.perf_counter() - started)
    sup.stop()
    here = os.path.dirname(os.path.abspath(__file__))
    for version, python in pythons.items():
        done = subprocess.run(
            [python, os.path.join(here, "legacy.py"), str(threads),
             str(processes)], capture_output=True, text=True, cwd=here,
            timeout=600)
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        out[f"atasker {version} threads"] = result.get("thread_rate")
        out[f"atasker {version} processes"] = result.get("mp_rate")
    return out


# -- the report ---------------------------------------------------------------
TARGETS = [
    # (workload, ours, baseline, unit, limit, what)
    ("thread_burst", "atasker, 8 threads", "ThreadPoolExecutor(8)", "s",
     1.0, "thread burst time vs ThreadPoolExecutor"),
    ("latency", "atasker, 8 threads", "ThreadPoolExecutor(8)", "s", 1.5,
     "idle dispatch latency p50 vs ThreadPoolExecutor"),
    ("mp_burst", "atasker TT_MP, 2 processes", "multiprocessing.Pool(2)",
     "s", 1.0, "process burst time vs Pool.apply_async"),
    ("co_mp", "atasker co_mp_apply",
     "run_in_executor(ProcessPoolExecutor(2))", "s", 0.7,
     "co_mp_apply time vs run_in_executor"),
    ("memory", "atasker, 1 thread", "ThreadPoolExecutor(1)", "B", 1.0,
     "bytes per queued task vs ThreadPoolExecutor"),
    ("critical", None, "idle supervisor", "s", 2.0,
     "critical start latency, loaded vs idle"),
]


def run(args: argparse.Namespace) -> dict:
    size = {k: v[1] if args.quick else v[0] for k, v in SIZES.items()}
    rounds = 1 if args.quick else args.rounds
    workloads: dict = {"thread_burst": thread_burst, "latency": latency,
                       "mp_burst": mp_burst, "co_mp": co_mp,
                       "memory": memory, "critical": critical}
    if args.only:
        workloads = {k: v for k, v in workloads.items() if k in args.only}
    results: dict = {}
    for name, workload in workloads.items():
        samples: dict = {}
        for _ in range(rounds):
            gc.collect()
            for impl, value in workload(size[name]).items():
                samples.setdefault(impl, []).append(value)
        results[name] = {impl: statistics.median(v)
                         for impl, v in samples.items()}
    pythons = dict(item.split("=", 1) for item in args.legacy)
    if not args.only or "legacy" in args.only:
        results["legacy"] = legacy(size["legacy_threads"],
                                   size["legacy_mp"], pythons)
    checks = []
    for name, ours, base, unit, limit, what in TARGETS:
        if name not in results:
            continue
        values = results[name]
        mine = values[ours] if ours else \
            [v for k, v in values.items() if k != base][0]
        ratio = mine / values[base]
        checks.append({"target": what, "ratio": ratio, "limit": limit,
                       "met": ratio <= limit})
    for kind in ("threads", "processes") if "legacy" in results else ():
        ours = results["legacy"][f"atasker {kind}"]
        for version in pythons:
            theirs = results["legacy"][f"atasker {version} {kind}"]
            ratio = ours / theirs if theirs else float("inf")
            checks.append({"target": f"{kind} tasks/s vs atasker {version}",
                           "ratio": ratio, "limit": 20, "met": ratio >= 20,
                           "higher_is_better": True})
    return {"machine": machine(), "sizes": size, "rounds": rounds,
            "results": results, "targets": checks}


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} "
            f"CPUs, Python {platform.python_version()}")


def show(report: dict) -> None:
    print(f"{report['machine']}; median of {report['rounds']} round(s)")
    units = {"memory": "bytes/task", "latency": "s", "critical": "s",
             "legacy": "tasks/s"}
    for name, values in report["results"].items():
        size = report["sizes"].get(name, report["sizes"]["legacy_threads"])
        print(f"\n{name} (n={size}, {units.get(name, 's wall time')})")
        for impl, value in values.items():
            shown = "n/a" if value is None else (
                f"{value:,.0f}" if name in ("memory", "legacy")
                else f"{value * 1e6:,.1f} µs" if value < 0.01
                else f"{value:.3f} s")
            print(f"  {impl:<44} {shown:>14}")
    print("\ntargets")
    for check in report["targets"]:
        sign = ">=" if check.get("higher_is_better") else "<="
        print(f"  {'met ' if check['met'] else 'MISS'} {check['target']:<52}"
              f" {check['ratio']:8.2f} (target {sign} {check['limit']})")


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one round (a smoke test)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", nargs="*", metavar="WORKLOAD",
                        help="run only these workloads (of: "
                             "thread_burst latency mp_burst co_mp memory "
                             "critical legacy)")
    parser.add_argument("--legacy", action="append", default=[],
                        metavar="VERSION=PYTHON")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
