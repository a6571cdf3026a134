import asyncio
import hashlib

from atasker import (TASK_HIGH, TT_MP, WorkerLostError, background_task,
                     co_mp_apply, task_supervisor, wait_completed)


def digest(data, rounds=1000, _task_id=None):
    # runs in a worker process; gets its task id because it asks for it
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()[:16]


def crash():
    import os
    os._exit(7)


async def main():
    # await a process task from any asyncio loop
    return await co_mp_apply(digest, args=(b"async",), priority=TASK_HIGH)


if __name__ == "__main__":   # needed: worker processes import this file
    task_supervisor.set_mp_pool(pool_size=2)
    ids = [background_task(digest, tt=TT_MP)(bytes([n])) for n in range(4)]
    print(len(wait_completed(ids)), "digests")
    print(asyncio.run(main()))
    try:   # a worker that dies fails its own task only
        wait_completed(background_task(crash, tt=TT_MP)())
    except WorkerLostError as exc:
        print("lost:", exc.exitcode)
    print(wait_completed(background_task(digest, tt=TT_MP)(b"still fine")))
    task_supervisor.stop()
