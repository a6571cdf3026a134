"""The pure core: which queued task may start now.

The :class:`Dispatcher` owns no thread, no lock and no clock.  Its owner (a
pool, under the supervisor's lock) pushes entries, asks for the next one that
may start, and tells it when a running one has ended.  Everything here is
deterministic, so it is tested exhaustively without threads.

Rules (see "Priorities and pool reserves" in the design):

* ``running`` counts every started entry that has not been released, in all
  bands.  A low-band entry may start while ``running < pool_size``, a normal
  one while ``running < pool_size + reserve_normal``, a high one while
  ``running < pool_size + reserve_normal + reserve_high``; a critical one
  always.  ``pool_size == 0`` lifts every limit.
* Strict priority: the only candidate is the most urgent queued entry (lowest
  ``(priority, seq)``).  If it may not start, nothing starts: every less
  urgent entry is in the same or a lower band, whose limit is no larger.
* With ``capped=True`` (process pools) critical entries share the high
  band's limit instead of being unlimited: they still go first.
* FIFO within one priority, by a sequence number that never repeats.

Each band keeps a FIFO deque of entries per distinct priority and a small
heap of the priorities that have entries.  A push or pop costs ``O(1)`` plus
``O(log p)`` in the number ``p`` of distinct priorities of that band (a heap
operation only when a priority's deque appears or empties), however many
entries wait in any band; no per-entry tuple is allocated.  Removal
(cancel) is lazy: the entry's key is remembered and the entry is skipped
when it reaches the front of its deque.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Optional

from ._constants import BAND_CRITICAL, BAND_HIGH, BAND_LOW, BAND_NORMAL, \
    priority_band

_UNLIMITED = float("inf")
#: a band drops the deques of a priority that empties once it has more
#: than this many priorities (most programs use a handful)
_KEEP_EMPTY = 8


def validate_pool_numbers(pool_size: int, reserve_normal: int,
                          reserve_high: int) -> None:
    """Raise ``TypeError``/``ValueError`` naming a bad pool argument."""
    for name, value in (("pool_size", pool_size),
                        ("reserve_normal", reserve_normal),
                        ("reserve_high", reserve_high)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"{name} must be an int, not {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


class Dispatcher:
    """Per-band priority queues and the running count.

    Not thread-safe by design: the caller serialises every call (the
    supervisor does so under its lock).
    """

    __slots__ = ("_queues", "_orders", "_removed", "_seq", "_queued", "running",
                 "_limits", "pool_size", "reserve_normal", "reserve_high",
                 "_capped")

    def __init__(self, pool_size: int = 0, reserve_normal: int = 0,
                 reserve_high: int = 0, capped: bool = False) -> None:
        #: with ``capped`` critical entries may not grow beyond the high
        #: band's limit either (a process pool has that many processes)
        self._capped = capped
        #: per band: priority -> (deque of items, deque of their keys);
        #: a priority's deques may be empty (then it is not in _orders)
        self._queues: list[dict[int, tuple[deque, deque]]] = \
            [{}, {}, {}, {}]
        #: per band: heap of the priorities present in ``_queues``
        self._orders: list[list[int]] = [[], [], [], []]
        self._removed: set[int] = set()
        self._seq = 0
        #: live (not removed) queued entries per band
        self._queued = [0, 0, 0, 0]
        #: started and not yet released, all bands together
        self.running = 0
        self.configure(pool_size, reserve_normal, reserve_high)

    # -- configuration ----------------------------------------------------
    def configure(self, pool_size: int, reserve_normal: int,
                  reserve_high: int) -> None:
        """Set the three pool numbers; effective for the next question."""
        validate_pool_numbers(pool_size, reserve_normal, reserve_high)
        self.pool_size = pool_size
        self.reserve_normal = reserve_normal
        self.reserve_high = reserve_high
        if pool_size == 0:
            low = normal = high = _UNLIMITED
        else:
            low = pool_size
            normal = low + reserve_normal
            high = normal + reserve_high
        limits = [0.0] * 4
        limits[BAND_CRITICAL] = high if self._capped else _UNLIMITED
        limits[BAND_HIGH] = high
        limits[BAND_NORMAL] = normal
        limits[BAND_LOW] = low
        self._limits = limits

    def limit(self, band: int) -> float:
        """How many entries may run at most while one of *band* starts."""
        return self._limits[band]

    @property
    def capacity(self) -> float:
        """Slots usable by non-critical entries (``inf`` when unlimited)."""
        return self._limits[BAND_HIGH]

    # -- queue ------------------------------------------------------------
    def push(self, priority: int, item: Any) -> int:
        """Queue *item*; return its key (for :meth:`remove`)."""
        self._seq = seq = self._seq + 1
        band = priority_band(priority)
        queues = self._queues[band]
        queue = queues.get(priority)
        if queue is None:
            queue = queues[priority] = (deque(), deque())
            heapq.heappush(self._orders[band], priority)
        elif not queue[0]:          # kept empty after its last pop
            heapq.heappush(self._orders[band], priority)
        queue[0].append(item)
        queue[1].append(seq)
        self._queued[band] += 1
        return seq

    def remove(self, priority: int, key: int) -> None:
        """Forget the queued entry *key* (pushed with *priority*).

        The caller guarantees the entry is queued (not popped, not removed).
        """
        band = priority_band(priority)
        self._queued[band] -= 1
        if self._queued[band]:
            self._removed.add(key)
        else:
            # nothing live is left in this band: drop the dead entries now
            # rather than keep them (and their items) until the next pop
            for _, keys in self._queues[band].values():
                self._removed.difference_update(keys)
            self._queues[band].clear()
            self._orders[band].clear()

    def pop(self) -> Optional[Any]:
        """Start the next entry if one may start: return it, else ``None``.

        A returned entry counts as running until :meth:`release`.
        """
        queued = self._queued
        for band in (BAND_CRITICAL, BAND_HIGH, BAND_NORMAL, BAND_LOW):
            if queued[band]:
                break
        else:
            return None
        if self.running >= self._limits[band]:
            return None
        queues = self._queues[band]
        order = self._orders[band]
        removed = self._removed
        while True:
            items, keys = queues[order[0]]
            item = items.popleft()
            seq = keys.popleft()
            if not items:
                # keep a few empty deques for the next push of that priority
                if len(queues) > _KEEP_EMPTY:
                    del queues[order[0]]
                heapq.heappop(order)
            if removed and seq in removed:
                removed.discard(seq)
                continue
            queued[band] -= 1
            self.running += 1
            return item

    def release(self) -> None:
        """A running entry has ended; its slot is free."""
        if self.running <= 0:
            raise RuntimeError("release() without a running entry")
        self.running -= 1

    def can_start(self) -> bool:
        """Whether :meth:`pop` would return an entry now."""
        queued = self._queued
        for band in (BAND_CRITICAL, BAND_HIGH, BAND_NORMAL, BAND_LOW):
            if queued[band]:
                return self.running < self._limits[band]
        return False

    # -- introspection ----------------------------------------------------
    def queued(self, band: Optional[int] = None) -> int:
        """Number of queued entries, in one band or in all."""
        if band is None:
            return sum(self._queued)
        return self._queued[band]

    def queued_by_priority(self) -> dict[int, int]:
        """Number of queued entries per priority (priorities with none are
        left out)."""
        counts: dict[int, int] = {}
        removed = self._removed
        for queues in self._queues:
            for priority, (items, keys) in queues.items():
                live = len(items)
                if removed and live:
                    live -= sum(1 for key in keys if key in removed)
                if live:
                    counts[priority] = live
        return counts

    def drain(self) -> list[Any]:
        """Remove and return every queued entry, most urgent first."""
        items: list[Any] = []
        removed = self._removed
        for queues, order in zip(self._queues, self._orders):
            for priority in sorted(queues):
                entries, keys = queues[priority]
                items.extend(item for item, seq in zip(entries, keys)
                             if seq not in removed)
            queues.clear()
            order.clear()
        removed.clear()
        self._queued = [0, 0, 0, 0]
        return items
