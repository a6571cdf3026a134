"""Shared fixtures: private supervisors, gates, thread and process census.

Every test runs between two censuses: a thread or a child process started
during the test and still alive after its fixtures are torn down fails the
test, as in CPython's concurrent.futures tests.  (multiprocessing's own
forkserver and resource tracker live for the whole run and are exempt.)
"""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

import atasker

SAFETY = 10.0   # seconds: a safety net for waits, never a synchronisation

START_METHODS = ["forkserver", "spawn"]


def _our_children() -> dict:
    children = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if "multiprocessing.forkserver" in cmdline or \
                "multiprocessing.resource_tracker" in cmdline:
            continue
        children[child.pid] = child
    return children


@pytest.fixture(autouse=True)
def process_census():
    before = set(_our_children())
    yield
    new = [p for pid, p in _our_children().items() if pid not in before]
    _, alive = psutil.wait_procs(new, timeout=5)
    for process in alive:
        process.kill()
    assert not alive, f"processes left behind: {alive}"


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


@pytest.fixture(params=START_METHODS)
def mp_sup(request):
    """A private supervisor with a 2-process pool of each start method."""
    supervisor = atasker.TaskSupervisor(pool_size=4)
    supervisor.set_mp_pool(pool_size=2, reserve_normal=0, reserve_high=0,
                           context=request.param)
    yield supervisor
    supervisor.stop(wait=SAFETY, cancel_tasks=True)


class FifoGate:
    """Blocks a process task (tests.mp_funcs.wait_fifo) until opened.

    ``wait_started()`` returns once the task runs: opening a FIFO for
    writing blocks until the reader has opened it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        os.mkfifo(path)
        self._fifo = None

    def wait_started(self) -> None:
        self._fifo = open(self.path, "wb")

    def open(self) -> None:
        if self._fifo is None:
            self.wait_started()
        self._fifo.close()

    def release(self) -> None:
        """Let a reader, if one is there, go (never blocks)."""
        if self._fifo is not None:
            self._fifo.close()
            return
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:     # no reader: nothing to release
            pass


@pytest.fixture
def fifo_gates(tmp_path):
    made = []

    def make():
        gate = FifoGate(str(tmp_path / f"gate{len(made)}"))
        made.append(gate)
        return gate

    yield make
    for gate in made:
        gate.release()


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


class Collect:
    """A callback that keeps what it is called with; ``called`` is set at
    its first call."""

    def __init__(self) -> None:
        self.got: list = []
        self.called = threading.Event()

    def __call__(self, value) -> None:
        self.got.append(value)
        self.called.set()


def assert_blocks_until(call, release) -> None:
    """Run *call* in a thread: it must still be blocked a moment later, and
    return once ``release()`` has been called."""
    thread = threading.Thread(target=call)
    thread.start()
    thread.join(0.05)
    assert thread.is_alive(), "returned before it was released"
    release()
    thread.join(SAFETY)
    assert not thread.is_alive(), "still blocked after the release"
