"""Process tasks side by side with the stdlib, in one run.

* a burst of no-op ``TT_MP`` tasks on 2 processes, beside
  ``ProcessPoolExecutor`` and ``multiprocessing.Pool.apply_async``;
* concurrent ``await co_mp_apply(...)`` beside
  ``loop.run_in_executor(ProcessPoolExecutor)``.

Every pool uses the forkserver start method and is warmed up before timing.
Runs alternate, several rounds; medians and ratios of wall time are printed
(below 1.0 means faster than the first row of the group).

    python -m benchmarks.process_burst [--tasks 20000] [--awaits 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, wait

import atasker

CTX = multiprocessing.get_context("forkserver")


def noop() -> None:
    return None


def executor_burst(n: int) -> float:
    with ProcessPoolExecutor(2, mp_context=CTX) as executor:
        executor.submit(noop).result()
        started = time.perf_counter()
        wait([executor.submit(noop) for _ in range(n)])
        return time.perf_counter() - started


def pool_burst(n: int) -> float:
    with CTX.Pool(2) as pool:
        pool.apply(noop)
        started = time.perf_counter()
        for result in [pool.apply_async(noop) for _ in range(n)]:
            result.get()
        return time.perf_counter() - started


def _supervisor(n: int) -> atasker.TaskSupervisor:
    supervisor = atasker.TaskSupervisor()
    supervisor.set_mp_pool(pool_size=2, context=CTX)
    supervisor.keep_finished = n
    supervisor.wait_completed(supervisor.put_task(noop, tt=atasker.TT_MP))
    return supervisor


def atasker_burst(n: int) -> float:
    supervisor = _supervisor(n)
    submit = atasker.background_task(noop, tt=atasker.TT_MP,
                                     supervisor=supervisor)
    started = time.perf_counter()
    supervisor.wait_completed([submit() for _ in range(n)])
    elapsed = time.perf_counter() - started
    supervisor.stop()
    return elapsed


def executor_awaits(n: int) -> float:
    with ProcessPoolExecutor(2, mp_context=CTX) as executor:
        executor.submit(noop).result()

        async def main() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.gather(*[loop.run_in_executor(executor, noop)
                                   for _ in range(n)])

        started = time.perf_counter()
        asyncio.run(main())
        return time.perf_counter() - started


def atasker_awaits(n: int) -> float:
    supervisor = _supervisor(n)

    async def main() -> None:
        await asyncio.gather(*[atasker.co_mp_apply(noop,
                                                   supervisor=supervisor)
                               for _ in range(n)])

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    supervisor.stop()
    return elapsed


def report(title: str, n: int, times: dict) -> None:
    print(title)
    base = None
    for name, values in times.items():
        median = statistics.median(values)
        base = base or median
        print(f"  {name:<38} {n / median:>10,.0f} tasks/s   "
              f"ratio {median / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--awaits", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bursts: dict = {"ProcessPoolExecutor(2)": [],
                    "multiprocessing.Pool(2).apply_async": [],
                    "atasker TT_MP, 2 processes": []}
    awaits: dict = {"run_in_executor(ProcessPoolExecutor(2))": [],
                    "atasker co_mp_apply, 2 processes": []}
    for _ in range(args.rounds):
        for name, run in zip(bursts, (executor_burst, pool_burst,
                                      atasker_burst)):
            bursts[name].append(run(args.tasks))
        for name, run in zip(awaits, (executor_awaits, atasker_awaits)):
            awaits[name].append(run(args.awaits))
    report(f"{args.tasks} no-op process tasks, median of {args.rounds}",
           args.tasks, bursts)
    report(f"{args.awaits} concurrent awaits of no-op process tasks",
           args.awaits, awaits)


if __name__ == "__main__":
    main()
