"""How the executor pool talks to an executor: a plain
``concurrent.futures.Executor``, or a dask ``distributed.Client``.

A backend submits a task's pickled payload, turns a finished future into
the task's outcome (and the worker that ran it), and tries to stop a
running call after a timeout.  ``distributed`` is imported only when a
client is used (the ``atasker[dask]`` extra); nothing here holds state
beyond the executor.
"""

from __future__ import annotations

import os
import pickle
from concurrent.futures import CancelledError
from typing import Any, Callable, Optional

from ._errors import WorkerLostError
from ._mp import decode
from ._mp_worker import run_one
from ._taskinfo import TaskInfo


class PlainBackend:
    """Any ``concurrent.futures.Executor``: it cannot stop a running call."""

    #: pickles a task's (function, args, kwargs)
    dumps: Callable[..., bytes] = staticmethod(pickle.dumps)

    def __init__(self, executor: Any) -> None:
        self.executor = executor

    def default_size(self) -> Optional[int]:
        return getattr(self.executor, "_max_workers", None)

    def submit(self, payload: bytes, task_id: str) -> Any:
        return self.executor.submit(run_one, payload)

    def outcome(self, record: TaskInfo, future: Any) -> tuple[bool, Any]:
        if future.cancelled():
            return False, CancelledError(f"task {record.id} was canceled "
                                         f"on the executor")
        error = future.exception()
        if error is not None:       # the executor failed, not the task
            return False, error
        return decode(future.result())

    def kill(self, future: Any) -> bool:
        """Cancel the call if it has not started; ``False`` if it runs on
        (and keeps its slot until it returns)."""
        return bool(future.cancel())


class DaskBackend(PlainBackend):
    """A ``distributed.Client``: tasks are submitted ``pure=False`` under
    the key ``atasker-<task id>``; the remote side reports its worker's
    address; a timed-out task's future is canceled and its worker process
    made to exit (the nanny starts a new one), so the call really stops
    and the cluster does not run it again."""

    def __init__(self, executor: Any) -> None:
        super().__init__(executor)
        # by value for what a worker cannot import (a script's functions),
        # as dask itself does; the worker loads it with pickle
        import cloudpickle  # type: ignore[import-untyped]
        self.dumps = cloudpickle.dumps

    def default_size(self) -> Optional[int]:
        return sum(self.executor.nthreads().values()) or None

    def submit(self, payload: bytes, task_id: str) -> Any:
        return self.executor.submit(run_on_dask_worker, payload, pure=False,
                                    key=f"atasker-{task_id}")

    def outcome(self, record: TaskInfo, future: Any) -> tuple[bool, Any]:
        if future.cancelled():
            return False, CancelledError(f"task {record.id} was canceled "
                                         f"on the cluster")
        error = future.exception()
        if error is not None:
            if type(error).__name__ == "KilledWorker":
                lost = WorkerLostError(record.id, None, None)
                lost.__cause__ = error
                return False, lost
            return False, error
        address, answer = future.result()
        record.worker = address
        return decode(answer)

    def kill(self, future: Any) -> bool:
        client = self.executor
        try:
            address = client.run_on_scheduler(processing_on, future.key)
        except Exception:   # noqa: S110 -- the scheduler is gone: cancel only
            address = None
        future.cancel()
        if address is not None:
            client.run(exit_worker, workers=[address], wait=False)
            # the task's slot is freed once this returns: the next task
            # must not be handed to the worker that is about to exit
            try:
                client.run_on_scheduler(worker_gone, address,
                                        _WORKER_EXIT_WAIT)
            except Exception:   # noqa: S110 -- the scheduler is gone too
                pass
        return True


def backend_for(executor: Any) -> PlainBackend:
    """The backend for *executor*: dask's for a ``distributed.Client``."""
    if type(executor).__module__.split(".")[0] == "distributed" and \
            hasattr(executor, "run_on_scheduler"):
        return DaskBackend(executor)
    return PlainBackend(executor)


# -- run on the cluster (module level: they are pickled by reference) ------
def run_on_dask_worker(payload: bytes) -> tuple[str, bytes]:
    """Run one task on a dask worker: (the worker's address, the answer
    of :func:`~atasker._mp_worker.run_one`)."""
    from distributed import get_worker
    return get_worker().address, run_one(payload)


def processing_on(key: str, dask_scheduler: Any = None) -> Optional[str]:
    """On the scheduler: the address of the worker running task *key*."""
    task = dask_scheduler.tasks.get(key)
    worker = getattr(task, "processing_on", None)
    return None if worker is None else worker.address


#: seconds a timed-out task's slot waits for its worker to leave
_WORKER_EXIT_WAIT = 10.0


async def worker_gone(address: str, limit: float,
                      dask_scheduler: Any = None) -> bool:
    """On the scheduler: return once worker *address* has left (or after
    *limit* seconds).  The scheduler offers no event for one worker's
    removal, so this looks every 20 ms, on the scheduler's loop, for at
    most *limit* seconds -- only after a timeout killed a task."""
    import asyncio
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while address in dask_scheduler.workers:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def exit_worker() -> None:
    """On a worker: end its process now (its nanny starts a new one).  A
    coroutine function: ``Client.run(wait=False)`` takes only those."""
    os._exit(1)
