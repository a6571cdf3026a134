"""The pure dispatcher, driven directly: no threads, no clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atasker import TASK_CRITICAL, TASK_HIGH, TASK_LOW, TASK_NORMAL
from atasker._constants import (BAND_CRITICAL, BAND_HIGH, BAND_LOW,
                               BAND_NORMAL, priority_band)
from atasker._dispatcher import Dispatcher


def test_bands_of_priorities():
    assert priority_band(TASK_CRITICAL) == BAND_CRITICAL
    assert priority_band(-7) == BAND_CRITICAL
    assert priority_band(1) == BAND_HIGH
    assert priority_band(TASK_HIGH) == BAND_HIGH
    assert priority_band(75) == BAND_NORMAL
    assert priority_band(TASK_NORMAL) == BAND_NORMAL
    assert priority_band(150) == BAND_LOW
    assert priority_band(TASK_LOW) == BAND_LOW
    assert priority_band(10_000) == BAND_LOW


def test_limits_per_band():
    d = Dispatcher(pool_size=2, reserve_normal=1, reserve_high=1)
    assert [d.limit(b) for b in (BAND_LOW, BAND_NORMAL, BAND_HIGH)] == \
        [2, 3, 4]
    assert d.limit(BAND_CRITICAL) == float("inf")


def fill(d, priority, count):
    for i in range(count):
        d.push(priority, (priority, i))


def test_low_band_stops_at_pool_size():
    d = Dispatcher(2, 1, 1)
    fill(d, TASK_LOW, 5)
    assert d.pop() == (TASK_LOW, 0)
    assert d.pop() == (TASK_LOW, 1)
    assert d.pop() is None
    assert d.running == 2 and d.queued() == 3


def test_normal_and_high_use_reserves():
    d = Dispatcher(2, 1, 1)
    fill(d, TASK_LOW, 3)
    d.pop(), d.pop()
    d.push(TASK_NORMAL, "n1")
    d.push(TASK_NORMAL, "n2")
    assert d.pop() == "n1"            # 2 < 3
    assert d.pop() is None            # 3 running: normal band full
    d.push(TASK_HIGH, "h1")
    d.push(TASK_HIGH, "h2")
    assert d.pop() == "h1"            # 3 < 4
    assert d.pop() is None            # high band full, h2 waits
    d.push(TASK_CRITICAL, "c1")
    d.push(-1, "c2")
    assert d.pop() == "c2"            # critical: always, most urgent first
    assert d.pop() == "c1"
    assert d.running == 6
    assert d.pop() is None


def test_strict_priority_blocks_lower_bands():
    d = Dispatcher(1, 1, 0)
    d.push(TASK_NORMAL, "n-running")
    assert d.pop() == "n-running"
    d.push(TASK_HIGH, "h")          # may not start: 1 running >= limit 2? no
    assert d.pop() == "h"
    d.push(TASK_HIGH, "h2")
    d.push(TASK_LOW, "l")
    assert d.pop() is None          # h2 cannot start, so l may not either
    d.release()
    assert d.pop() == "h2"          # the freed slot goes to the high task
    d.release()
    d.release()
    assert d.pop() == "l"


def test_fifo_within_priority_and_priority_order_within_band():
    d = Dispatcher(0, 0, 0)
    d.push(100, "a")
    d.push(75, "b")
    d.push(100, "c")
    d.push(75, "d")
    assert [d.pop() for _ in range(4)] == ["b", "d", "a", "c"]


def test_unlimited_pool():
    d = Dispatcher(0, 5, 5)
    fill(d, TASK_LOW, 1000)
    assert sum(1 for _ in iter(d.pop, None)) == 1000


def test_configure_takes_effect_at_once():
    d = Dispatcher(1, 0, 0)
    fill(d, TASK_LOW, 3)
    assert d.pop() is not None and d.pop() is None
    d.configure(3, 0, 0)
    assert d.can_start()
    assert d.pop() is not None and d.pop() is not None and d.pop() is None
    d.configure(1, 0, 0)            # shrinking never stops running ones
    assert d.running == 3


def test_remove_skips_entry():
    d = Dispatcher(0, 0, 0)
    keys = [d.push(TASK_NORMAL, i) for i in range(3)]
    d.remove(TASK_NORMAL, keys[0])
    assert d.queued() == 2
    assert [d.pop(), d.pop(), d.pop()] == [1, 2, None]


def test_remove_last_clears_band():
    d = Dispatcher(0, 0, 0)
    key = d.push(TASK_LOW, "x")
    d.remove(TASK_LOW, key)
    assert d.queued() == 0 and d.pop() is None
    assert d._queues[BAND_LOW] == {} and d._orders[BAND_LOW] == [] \
        and not d._removed


def test_drain_returns_live_entries_in_order():
    d = Dispatcher(1, 0, 0)
    d.push(TASK_LOW, "l")
    k = d.push(TASK_NORMAL, "n-removed")
    d.push(TASK_NORMAL, "n")
    d.push(TASK_HIGH, "h")
    d.remove(TASK_NORMAL, k)
    assert d.drain() == ["h", "n", "l"]
    assert d.queued() == 0 and d.pop() is None


def test_release_without_running_is_an_error():
    with pytest.raises(RuntimeError):
        Dispatcher(1, 0, 0).release()


@pytest.mark.parametrize("args,exc", [
    ((-1, 0, 0), ValueError), ((1, -1, 0), ValueError),
    ((1, 0, -2), ValueError), ((1.5, 0, 0), TypeError),
    (("1", 0, 0), TypeError), ((True, 0, 0), TypeError)])
def test_bad_pool_numbers(args, exc):
    with pytest.raises(exc):
        Dispatcher(*args)


priorities = st.sampled_from([-5, 0, 10, 50, 60, 100, 150, 200, 300])
ops = st.lists(st.one_of(
    st.tuples(st.just("push"), priorities),
    st.just(("pop",)),
    st.just(("release",)),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("configure"), st.integers(0, 4), st.integers(0, 2),
              st.integers(0, 2)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(pool=st.tuples(st.integers(0, 4), st.integers(0, 2),
                      st.integers(0, 2)), script=ops)
def test_invariants_against_a_model(pool, script):
    """Replay random operations on the dispatcher and on a brute-force
    model; after each one they must agree on what starts and on counts.

    This checks: never above a band's limit, never a less urgent entry
    started while a startable more urgent one waits, FIFO within a
    priority, and that removed entries never start.
    """
    d = Dispatcher(*pool)
    limits = pool
    queued = {}        # key -> (priority, push order): the model's queue
    running = 0
    pushes = 0

    def limit(priority):
        size, rn, rh = limits
        band = priority_band(priority)
        if band == BAND_CRITICAL or size == 0:
            return float("inf")
        return {BAND_LOW: size, BAND_NORMAL: size + rn,
                BAND_HIGH: size + rn + rh}[band]

    for op in script:
        if op[0] == "push":
            pushes += 1
            key = d.push(op[1], pushes)
            queued[key] = (op[1], pushes)
        elif op[0] == "release":
            if running:
                d.release()
                running -= 1
        elif op[0] == "cancel":
            if queued:
                key = sorted(queued)[op[1] % len(queued)]
                d.remove(queued[key][0], key)
                del queued[key]
        elif op[0] == "configure":
            d.configure(*op[1:])
            limits = op[1:]
        else:
            expected = None
            if queued:
                key, head = min(queued.items(), key=lambda kv: kv[1])
                if running < limit(head[0]):
                    expected = head[1]
                    del queued[key]
                    running += 1
            assert d.pop() == expected
        assert d.running == running
        assert d.queued() == len(queued)
        if queued:
            head = min(queued.values())
            assert d.can_start() == (running < limit(head[0]))
        else:
            assert not d.can_start()
