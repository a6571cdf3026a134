"""Taking the supervisor's lock from a hot loop without a lock convoy."""

from __future__ import annotations

import threading
import time

#: GIL yields before a worker blocks on a held supervisor lock
SPINS = 16


def acquire_contended(lock: threading.Lock) -> None:
    """Take *lock*, just found held: yield the GIL a few times, then block.

    The supervisor's lock is held for microseconds at a time.  A thread
    that blocks on a held ``threading.Lock`` is given the lock while it
    sleeps and must then wait for the GIL while holding it, so the thread
    that has the GIL soon blocks on the lock in turn: a lock convoy in which
    every hand-over costs two context switches.  With eight workers draining
    no-op tasks that made a burst 2-3x slower.  ``time.sleep(0)`` releases
    the GIL, lets the holder finish its critical section and costs nothing
    when nobody else wants the GIL; after ``SPINS`` tries (a holder that is
    busy for longer) the worker blocks as usual.  This waits for a critical
    section to end, never for work: idle workers park on their wake lock.
    """
    for _ in range(SPINS):
        time.sleep(0)
        if lock.acquire(False):
            return
    lock.acquire()
