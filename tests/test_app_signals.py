"""Signals and ``run()``: one request per signal, however it is delivered.

A launcher such as GNU ``timeout`` signals the app *and* its process group,
so the app receives the same signal twice within microseconds: that must
count as one request (a drain), not two (a drain that cancels queued work).
Two deliberate signals still cancel queued work, a third still returns 130
at once, and process-pool workers are out of reach of the group's signal.
The wake-up pipes ``run()`` waits on are safe to poke after ``run()``
returned (nothing is written to a descriptor number that was closed and
reused) and work above descriptor 1023.

An app that is signalled runs in a subprocess (``atasker run``) with a
hard timeout, and is sent a signal only once it printed that it is ready
for it.  The races of the wake-up pipes are forced in-process: a patched
``os.write`` holds the poking thread between taking its descriptor and
writing to it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import atasker
from atasker import _wakeup
from atasker._app_wake import SIGNAL_REPEAT_WINDOW, AppWake
from atasker._wakeup import WakePipe

from .conftest import SAFETY
from .test_lifecycle import HOME, run_script

HARD_TIMEOUT = 30.0     # seconds: kills a hung app (a safety net)


def outlast_repeat_window() -> None:
    """Let the app's repeat window pass, so the next signal is a new
    request.  Not a synchronisation: the gap between two signals is what
    the rule under test is about."""
    time.sleep(SIGNAL_REPEAT_WINDOW * 1.5)


# -- an app in a subprocess -------------------------------------------------
GATED_APP = """
import atasker
sup = atasker.TaskSupervisor(pool_size=1, reserve_normal=0, reserve_high=0)

def blocker(path):
    print("blocker started", flush=True)
    with open(path) as fifo:        # blocks until the test opens it
        fifo.read()
    print("blocker done", flush=True)

@sup.task
def start():
    sup.put_task(blocker, args=(FIFO,))
    for n in range(5):
        sup.put_task(print, args=(f"job {n} done",), kwargs={"flush": True},
                     priority=atasker.TASK_LOW)
"""


class AppProcess:
    """``atasker run MODULE:sup`` in a subprocess, output merged; read it
    line by line with :meth:`wait_for`."""

    def __init__(self, tmp_path, source: str, *, launcher=(),
                 new_session: bool = False) -> None:
        module = tmp_path / "signal_app.py"
        module.write_text(textwrap.dedent(source))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (HOME, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [*launcher, sys.executable, "-m", "atasker", "run",
             f"{module}:sup"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
            start_new_session=new_session)
        self.lines: list = []

    def wait_for(self, *markers: str) -> str:
        """Read until a line holds one of *markers*; return that marker."""
        for line in self.process.stdout:
            self.lines.append(line)
            for marker in markers:
                if marker in line:
                    return marker
        raise AssertionError(f"none of {markers} printed:\n"
                             f"{''.join(self.lines)}")

    def kill(self, signum: int = signal.SIGTERM) -> None:
        os.kill(self.process.pid, signum)

    def finish(self) -> tuple:
        """Wait for the exit; return (exit status, whole output)."""
        try:
            rest, _ = self.process.communicate(timeout=HARD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
            pytest.fail(f"app still running after {HARD_TIMEOUT} s:\n"
                        f"{''.join(self.lines)}{rest}")
        return self.process.returncode, "".join(self.lines) + rest

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


class GatedApp(AppProcess):
    """GATED_APP: one running task held on a FIFO, five queued behind."""

    def __init__(self, tmp_path, **options) -> None:
        self.fifo = tmp_path / "gate"
        os.mkfifo(self.fifo)
        super().__init__(tmp_path,
                         GATED_APP.replace("FIFO", repr(str(self.fifo))),
                         **options)

    def release(self) -> None:
        """Let the running task finish (it is reading the FIFO)."""
        with open(self.fifo, "w"):
            pass


@pytest.fixture
def gated_app(tmp_path):
    made = []

    def make(**options):
        app = GatedApp(tmp_path, **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


ALL_JOBS = [f"job {n} done" for n in range(5)]


# -- one request per signal -------------------------------------------------
def test_a_signal_delivered_twice_at_once_counts_once():
    # a thread signalling itself receives each signal before the next
    # kill: two separate deliveries, read by one wait()
    main = threading.main_thread().ident
    wake = AppWake()
    wake.handle_signals((signal.SIGINT, signal.SIGTERM))
    try:
        signal.pthread_kill(main, signal.SIGTERM)
        signal.pthread_kill(main, signal.SIGTERM)
        signal.pthread_kill(main, signal.SIGINT)    # another signal counts
        wake.wait(SAFETY)
        assert wake.signals == [signal.SIGTERM, signal.SIGINT]
    finally:
        wake.close()


def test_repeated_delivery_after_the_first_was_read_counts_once(gated_app):
    app = gated_app()
    app.wait_for("blocker started")
    app.kill(signal.SIGTERM)
    app.wait_for("draining queued work")
    # the copy a launcher sends to the group arrives just after the app
    # counted the first: the same request
    app.kill(signal.SIGTERM)
    seen = app.wait_for("second signal", "counted once")
    app.release()
    code, output = app.finish()
    assert seen == "counted once", output
    assert code == 0, output
    assert "blocker done" in output
    assert all(job in output for job in ALL_JOBS), output


def test_back_to_back_delivery_drains_queued_work(gated_app):
    # how GNU timeout signals: the app, then its whole process group (the
    # kernel merges the two when the first is still pending)
    app = gated_app()
    app.wait_for("blocker started")
    app.kill(signal.SIGTERM)
    app.kill(signal.SIGTERM)
    app.wait_for("draining queued work")
    app.release()
    code, output = app.finish()
    assert code == 0, output
    assert "second signal" not in output
    assert all(job in output for job in ALL_JOBS), output


@pytest.mark.skipif(shutil.which("timeout") is None,
                    reason="needs GNU timeout")
def test_timeout_forwarding_its_signal_drains_queued_work(gated_app):
    # timeout passes a SIGTERM it receives on to its child and to the
    # child's process group, as when its time runs out
    app = gated_app(launcher=("timeout", str(HARD_TIMEOUT)))
    app.wait_for("blocker started")
    app.kill(signal.SIGTERM)        # app.process is timeout itself
    app.wait_for("draining queued work")
    app.release()
    code, output = app.finish()
    assert code == 0, output
    assert "second signal" not in output
    assert all(job in output for job in ALL_JOBS), output


def test_second_signal_cancels_queued_work(gated_app):
    app = gated_app()
    app.wait_for("blocker started")
    app.kill(signal.SIGINT)
    app.wait_for("draining queued work")
    outlast_repeat_window()
    app.kill(signal.SIGINT)
    app.wait_for("second signal: canceled 5 queued")
    app.release()
    code, output = app.finish()
    assert code == 0, output
    assert "blocker done" in output and "job 0 done" not in output


def test_third_signal_returns_at_once(gated_app):
    app = gated_app()
    app.wait_for("blocker started")
    app.kill(signal.SIGTERM)
    app.wait_for("draining queued work")
    outlast_repeat_window()
    app.kill(signal.SIGTERM)
    app.wait_for("second signal")
    outlast_repeat_window()
    app.kill(signal.SIGTERM)
    code, output = app.finish()     # the blocker is never released
    assert code == 130, output
    assert "third signal" in output and "blocker done" not in output


GROUP_APP = """
import os
import socket

import atasker

sup = atasker.TaskSupervisor(pool_size=1)
sup.set_mp_pool(pool_size=1, reserve_normal=0, reserve_high=0)

def held(path):
    # tells the test its pid, then waits for a byte from it
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(path)
        conn.sendall(str(os.getpid()).encode())
        conn.recv(1)
    return os.getpid()

def report(pid):
    print(f"process task done in {pid}", flush=True)

@sup.task
def start():
    sup.put_task(held, args=(SOCKET,), tt=atasker.TT_MP, callback=report)
"""


def test_process_workers_survive_a_signal_to_the_process_group(tmp_path):
    path = str(tmp_path / "held.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        server.settimeout(HARD_TIMEOUT)
        app = AppProcess(tmp_path, GROUP_APP.replace("SOCKET", repr(path)),
                         new_session=True)
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(HARD_TIMEOUT)
                worker = int(conn.recv(64))     # the task is running
                # once, to the app's whole group, as a launcher does
                os.killpg(app.process.pid, signal.SIGTERM)
                app.wait_for("draining queued work")
                conn.sendall(b"x")              # let the task finish
                code, output = app.finish()
        finally:
            app.close()
    assert code == 0, output
    assert f"process task done in {worker}" in output, output
    assert "second signal" not in output


# -- the wake-up pipes --------------------------------------------------------
class _OsWithWrite:
    """The os module, but with *write* replaced (patched into
    ``atasker._wakeup`` only)."""

    def __init__(self, write) -> None:
        self.write = write

    def __getattr__(self, name):
        return getattr(os, name)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class ReusedFd:
    """If descriptor *fd* is closed, make it the write end of a pipe of
    ours (as the next ``open()`` of anybody could): what lands there was
    written to a descriptor that had been closed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader = None
        if not _is_open(fd):
            self.reader, writer = os.pipe()
            os.set_blocking(self.reader, False)
            if writer != fd:
                os.dup2(writer, fd)
                os.close(writer)

    def stray_bytes(self) -> bytes:
        if self.reader is None:
            return b""
        try:
            return os.read(self.reader, 100)
        except BlockingIOError:
            return b""

    def close(self) -> None:
        if self.reader is not None:
            os.close(self.reader)
            os.close(self.fd)


def test_poke_racing_close_never_writes_to_a_reused_fd(monkeypatch):
    pipe = WakePipe()
    in_write, go = threading.Event(), threading.Event()
    written_to: list = []

    def write(fd, data):
        if threading.current_thread() is poker:
            written_to.append(fd)
            in_write.set()          # the poke has its descriptor...
            assert go.wait(SAFETY)  # ...and is preempted before writing
        return os.write(fd, data)

    monkeypatch.setattr(_wakeup, "os", _OsWithWrite(write))
    poker = threading.Thread(target=pipe.poke)
    poker.start()
    assert in_write.wait(SAFETY)
    pipe.close()                    # never waits for the poke
    reused = ReusedFd(written_to[0])
    try:
        go.set()
        poker.join(SAFETY)
        assert not poker.is_alive()
        assert reused.stray_bytes() == b""
    finally:
        reused.close()
    # the poke, the last user, closed the descriptors
    assert not _is_open(written_to[0])


def test_poke_and_close_nested_in_a_poke_are_safe(monkeypatch):
    # a signal handler or a finalizer runs between any two bytecodes of
    # the thread it interrupts, even inside poke()
    pipe = WakePipe()
    w = pipe.write_fileno()
    open_at_write: list = []

    def write(fd, data):
        if not open_at_write:
            open_at_write.append(None)
            pipe.poke()             # nested: writes, never deadlocks
            pipe.close()            # nested: must not close under us
        open_at_write.append(_is_open(fd))
        return os.write(fd, data)

    monkeypatch.setattr(_wakeup, "os", _OsWithWrite(write))
    pipe.poke()
    assert open_at_write == [None, True, True]
    assert not _is_open(w)
    pipe.poke()                     # closed: a no-op
    assert len(open_at_write) == 3


@pytest.fixture
def app():
    supervisor = atasker.TaskSupervisor(pool_size=1, reserve_normal=0,
                                        reserve_high=0)
    yield supervisor
    supervisor.stop(wait=SAFETY, cancel_tasks=True)


def test_drain_poke_after_a_third_signal_never_hits_a_reused_fd(
        app, gates, monkeypatch):
    """The third signal comes while the drain thread, done, is writing its
    last wake-up byte: run() returns and closes its pipes under it.  That
    byte must not land in whatever reuses the descriptor number."""
    gate = gates()
    app.task(gate)
    drain_pokes, go = threading.Event(), threading.Event()
    written_to: list = []

    def write(fd, data):
        # the drain thread's last poke, the one that reports its end
        if sys._getframe(2).f_code.co_name == "drain" and not written_to:
            written_to.append(fd)
            drain_pokes.set()       # it has its descriptor...
            assert go.wait(SAFETY)  # ...and is preempted before writing
        return os.write(fd, data)

    real_wait = AppWake.wait
    in_wait = [threading.Event() for _ in range(3)]

    def wait_for_a_signal(wake, timeout):
        # run() wakes for signals only, as when the third one comes before
        # it looked at the drain thread's end: it returns 130, not 0
        count = len(wake.signals)
        in_wait[count].set()
        while len(wake.signals) == count:
            real_wait(wake, timeout)

    monkeypatch.setattr(_wakeup, "os", _OsWithWrite(write))
    monkeypatch.setattr(AppWake, "wait", wait_for_a_signal)
    main = threading.main_thread().ident

    def send_signals():
        gate.wait_started()
        for count in range(3):
            assert in_wait[count].wait(SAFETY)
            if count == 2:
                gate.open()     # the drain's stop() returns; it pokes
                assert drain_pokes.wait(SAFETY)
            if count:
                outlast_repeat_window()
            signal.pthread_kill(main, signal.SIGTERM)

    helper = threading.Thread(target=send_signals)
    helper.start()
    try:
        assert app.run() == 130
        drainers = [t for t in threading.enumerate()
                    if t.name.endswith("_drain")]
        assert len(drainers) == 1       # still about to write
        reused = ReusedFd(written_to[0])
        try:
            go.set()
            drainers[0].join(SAFETY)
            assert not drainers[0].is_alive()
            assert reused.stray_bytes() == b""
        finally:
            reused.close()
    finally:
        go.set()
        helper.join(SAFETY)
    assert not _is_open(written_to[0])


def test_run_waits_on_descriptors_above_1023():
    done = run_script("""
        import os, resource, sys
        import atasker

        WANT = 1100
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < WANT:
            print("skip: hard RLIMIT_NOFILE", hard)
            sys.exit(0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, WANT), hard))
        null = os.open(os.devnull, os.O_RDONLY)
        for fd in range(WANT - 50):     # new descriptors come above these
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(null, fd)
        probe = os.pipe()
        assert min(probe) >= 1024, probe
        os.close(probe[0]); os.close(probe[1])

        sup = atasker.TaskSupervisor(pool_size=1)
        sup.task(print, args=("task ran",), kwargs={"flush": True})
        print("run returned", sup.run(for_time=0.05), flush=True)
        """)
    if done.stdout.startswith("skip:"):
        pytest.skip(done.stdout.strip())
    assert "task ran" in done.stdout and "run returned 0" in done.stdout, \
        done.stdout + done.stderr
