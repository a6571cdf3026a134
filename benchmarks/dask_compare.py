"""atasker on a dask cluster beside raw ``client.submit``, one run.

``python -m benchmarks.dask_compare [--tasks N]`` starts a LocalCluster of
two single-thread worker processes on 127.0.0.1 and prints, for N tiny
tasks: tasks per second through ``client.submit`` and through atasker
(``set_mp_pool(executor=client)``, with its default slots -- the cluster's
threads -- and with 32), the median submit-to-result time of one task at a
time for each; then the start position of a high-priority task submitted behind 40 low
ones (both worker threads busy), for each.  Needs ``atasker[dask]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import atasker
from atasker import TASK_HIGH, TASK_LOW, TT_MP


def tiny(x: int = 0) -> int:
    return x


def stamp(tag: str) -> tuple[str, float]:
    return tag, time.time()


def hold(seconds: float) -> None:
    time.sleep(seconds)         # a busy worker, for the priority figure


def throughput(client, sup, n: int) -> dict:
    """Tasks per second for a burst of n tiny tasks."""
    out = {}
    started = time.perf_counter()
    client.gather([client.submit(tiny, i, pure=False) for i in range(n)])
    out["client.submit"] = n / (time.perf_counter() - started)
    for slots in (None, 32):
        if slots:
            sup.set_mp_pool(pool_size=slots)
        started = time.perf_counter()
        sup.wait_completed([sup.put_task(tiny, args=(i,), tt=TT_MP)
                            for i in range(n)])
        name = "atasker on dask" + (f", {slots} slots" if slots else "")
        out[name] = n / (time.perf_counter() - started)
    sup.set_mp_pool(pool_size=2)
    return out


def latency(client, sup, n: int = 200) -> dict:
    """Median submit-to-result time of one task at a time, in ms."""
    out = {}
    samples = []
    for i in range(n):
        started = time.perf_counter()
        client.submit(tiny, i, pure=False).result()
        samples.append(time.perf_counter() - started)
    out["client.submit"] = statistics.median(samples) * 1000
    samples = []
    for i in range(n):
        started = time.perf_counter()
        sup.wait_completed(sup.put_task(tiny, args=(i,), tt=TT_MP))
        samples.append(time.perf_counter() - started)
    out["atasker on dask"] = statistics.median(samples) * 1000
    return out


def high_position(client, sup) -> dict:
    out = {}
    busy = [client.submit(hold, 1.0, pure=False) for _ in range(2)]
    low = [client.submit(stamp, f"low{i}", pure=False, priority=0)
           for i in range(40)]
    high = client.submit(stamp, "high", pure=False, priority=10)
    results = sorted(client.gather(low + [high]), key=lambda r: r[1])
    client.gather(busy)
    out["client.submit"] = [tag for tag, _ in results].index("high") + 1
    blockers = [sup.put_task(hold, args=(1.0,), tt=TT_MP) for _ in range(2)]
    ids = [sup.put_task(stamp, args=(f"low{i}",), tt=TT_MP,
                        priority=TASK_LOW) for i in range(40)]
    ids.append(sup.put_task(stamp, args=("high",), tt=TT_MP,
                            priority=TASK_HIGH))
    results = sorted(sup.wait_completed(ids), key=lambda r: r[1])
    sup.wait_completed(blockers)
    out["atasker on dask"] = [tag for tag, _ in results].index("high") + 1
    return out


def main() -> None:
    from distributed import Client, LocalCluster
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    args = parser.parse_args()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        sup = atasker.TaskSupervisor()
        sup.set_mp_pool(executor=client)
        client.gather([client.submit(tiny, pure=False) for _ in range(20)])
        sup.wait_completed([sup.put_task(tiny, tt=TT_MP) for _ in range(20)])
        for name, rate in throughput(client, sup, args.tasks).items():
            print(f"{name:28} {rate:8.0f} tasks/s")
        for name, p50 in latency(client, sup).items():
            print(f"{name:28} p50 {p50:6.1f} ms submit to result")
        for name, position in high_position(client, sup).items():
            print(f"{name:28} high task started {position} of 41")
        sup.stop()


if __name__ == "__main__":
    main()
