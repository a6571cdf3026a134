"""The benchmark runner's --quick smoke mode, so that it cannot rot.

No timing is asserted: only that every workload runs and reports.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(*args):
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick",
                           *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quick_json_report():
    report = json.loads(run("--json"))
    results = report["results"]
    assert set(results) == {"thread_burst", "latency", "mp_burst", "co_mp",
                            "memory", "critical", "legacy"}
    assert set(results["mp_burst"]) == {"multiprocessing.Pool(2)",
                                        "ProcessPoolExecutor(2)",
                                        "atasker TT_MP, 2 processes"}
    for values in results.values():
        assert all(isinstance(v, float) and v > 0 for v in values.values())
    assert len(report["targets"]) == 6
    for check in report["targets"]:
        assert check["ratio"] > 0 and isinstance(check["met"], bool)


def test_quick_table_for_some_workloads():
    text = run("--only", "latency", "memory")
    assert "latency" in text and "bytes/task" in text
    assert "idle dispatch latency" in text and "thread burst" not in text
