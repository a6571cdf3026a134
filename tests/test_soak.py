"""The soak (``benchmarks/soak.py``), short: a mixed run under worker kills,
raises, timeouts and cancels, in a subprocess with a hard timeout.

Every task must end exactly once, as planned, and ``stop()`` must leave no
thread or process behind.  The full run (a million tasks) is run by hand:
``python -m benchmarks.soak``.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
HARD_TIMEOUT = 50.0     # seconds: kills a hung soak (a safety net)


def soak(*args: str) -> dict:
    """Run the soak with *args*; its JSON report."""
    command = [sys.executable, "-m", "benchmarks.soak", "--json", *args]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True,
                              text=True, timeout=HARD_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"soak still running after {HARD_TIMEOUT} s (hung); "
                    f"stderr: {exc.stderr!r}")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"no report (exit status {done.returncode}); stderr:\n"
                    f"{done.stderr[-3000:]}")
    report["returncode"] = done.returncode
    return report


def test_short_soak_ends_every_task_once_as_planned():
    """About 15 s of mixed thread, process and coroutine tasks with a
    killer thread shooting workers: nothing lost, duplicated or
    mismatched, nothing left after ``stop()``, exit status 0."""
    report = soak("--seconds", "15", "--inflight", "2000", "--seed", "1")
    facts = {key: report[key] for key in (
        "tasks", "lost", "duplicated", "mismatched", "threads_left",
        "processes_left", "errors", "examples")}
    assert report["tasks"] > 10_000, facts
    assert report["lost"] == report["duplicated"] == 0, facts
    assert report["mismatched"] == 0, facts
    assert report["threads_left"] == report["processes_left"] == [], facts
    assert report["errors"] == [], facts
    # the run did what it is about
    outcomes = {kind: set(counts) for kind, counts in
                report["by_kind"].items()}
    assert {"completed", "SoakError", "TaskTimeoutError",
            "canceled"} <= outcomes["thread"] & outcomes["coroutine"], facts
    assert "WorkerLostError" in outcomes["process"], facts
    assert report["killer_shots"] > 0, facts
    assert report["returncode"] == 0, facts
