"""Locker as a decorator and as a context manager."""

from __future__ import annotations

import threading

import pytest

from atasker import Locker


def test_decorator_and_with_block_serialise():
    lock = Locker(mod="t", timeout=5)
    inside = []

    @lock
    def guarded(x):
        inside.append(x)
        return x * 2

    assert guarded(3) == 6
    with lock:
        with lock:                 # re-entrant by default
            assert guarded(1) == 2
    assert inside == [3, 1]


def hold(lock):
    """Hold *lock* in another thread until released; return the release."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(10)
    return release, thread


def test_timeout_calls_critical(caplog):
    lock = Locker(mod="db", timeout=0.01, relative=False)
    criticals = []
    lock.critical = lambda: criticals.append(1)

    @lock
    def guarded():
        return "ran"

    release, thread = hold(lock)
    try:
        assert guarded() is None
        with pytest.raises(TimeoutError, match="db"):
            with lock:
                pass
    finally:
        release.set()
        thread.join()
    assert criticals == [1, 1]
    assert [r.levelname for r in caplog.records].count("CRITICAL") == 2
    assert guarded() == "ran"


def test_plain_lock_is_not_reentrant():
    lock = Locker(timeout=0.01, relative=False)
    with lock:
        with pytest.raises(TimeoutError):
            with lock:
                pass


def test_bad_timeout():
    with pytest.raises(ValueError):
        Locker(timeout=-1)
    with pytest.raises(TypeError):
        Locker(timeout="5")
