"""The worker's contended lock acquisition: yield the GIL, then block."""

from __future__ import annotations

import threading
import types

from atasker import _spin as spin

from .conftest import SAFETY


def fake_time(on_sleep):
    calls = []

    def sleep(seconds):
        assert seconds == 0
        calls.append(seconds)
        on_sleep(len(calls))

    return types.SimpleNamespace(sleep=sleep), calls


def test_takes_the_lock_once_the_holder_lets_go_while_yielding(monkeypatch):
    lock = threading.Lock()
    lock.acquire()

    def on_sleep(count):
        if count == 3:
            lock.release()

    fake, calls = fake_time(on_sleep)
    monkeypatch.setattr(spin, "time", fake)
    spin.acquire_contended(lock)
    assert lock.locked() and len(calls) == 3
    lock.release()


def test_blocks_after_the_spins_until_the_holder_releases(monkeypatch):
    lock = threading.Lock()
    lock.acquire()
    spun_out = threading.Event()
    acquired = threading.Event()

    def on_sleep(count):
        if count == spin.SPINS:
            spun_out.set()

    fake, calls = fake_time(on_sleep)
    monkeypatch.setattr(spin, "time", fake)

    def contender():
        spin.acquire_contended(lock)
        acquired.set()
        lock.release()

    thread = threading.Thread(target=contender)
    thread.start()
    assert spun_out.wait(SAFETY)
    assert not acquired.is_set()
    lock.release()
    assert acquired.wait(SAFETY)
    thread.join(SAFETY)
    assert len(calls) == spin.SPINS
