"""Shared fixtures: a private supervisor, gates, and a thread census.

Every test runs between two thread censuses: a thread started during the
test and still alive after its fixtures are torn down fails the test, as in
CPython's concurrent.futures tests.
"""

from __future__ import annotations

import threading
import time

import pytest

import atasker

SAFETY = 10.0   # seconds: a safety net for waits, never a synchronisation


@pytest.fixture(autouse=True)
def thread_census():
    before = set(threading.enumerate())
    yield
    # give threads that were joined an instant to be unlisted
    deadline = time.monotonic() + 2.0
    while True:
        leaked = [t for t in threading.enumerate()
                  if t not in before and t.is_alive()]
        if not leaked or time.monotonic() > deadline:
            break
        for thread in leaked:
            thread.join(0.1)
    assert not leaked, f"threads left behind: {leaked}"


@pytest.fixture
def sup():
    """A private supervisor, stopped (waiting) after the test."""
    supervisor = atasker.TaskSupervisor(pool_size=4, reserve_normal=1,
                                        reserve_high=1)
    yield supervisor
    supervisor.stop(wait=SAFETY, cancel_tasks=True)


@pytest.fixture
def global_sup():
    """The global supervisor, stopped after the test (it restarts on use)."""
    yield atasker.task_supervisor
    atasker.task_supervisor.stop(wait=SAFETY, cancel_tasks=True)
    atasker.task_supervisor.start()     # usable again; starts no thread


class Gate:
    """A task body that reports it started and blocks until opened."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self, value=None):
        self.started.set()
        assert self.opened.wait(SAFETY), "gate never opened"
        return value

    def open(self) -> None:
        self.opened.set()

    def wait_started(self) -> None:
        assert self.started.wait(SAFETY), "gated task never started"


@pytest.fixture
def gates():
    """Make gates; all are opened at teardown so nothing stays blocked."""
    made = []

    def make():
        gate = Gate()
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.open()
