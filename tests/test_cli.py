"""The atasker command, its demo, and the README's examples."""

from __future__ import annotations

import io
import json
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from atasker._cli import main
from atasker._demo import run_demo

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_demo_reports_priorities_and_throughput():
    out = io.StringIO()
    figures = run_demo(out, burst=500, work=lambda seconds: seconds)
    text = out.getvalue()
    assert "306 tasks done" in text and "tasks/s" in text
    # more urgent bands waited less
    assert figures["wait_high"] <= figures["wait_normal"] \
        <= figures["wait_low"]
    assert figures["burst_rate"] > 0


def test_demo_command(capsys):
    assert main(["demo", "--burst", "100"]) == 0
    out = capsys.readouterr().out
    assert "no threads left behind" in out
    # the live view (plain lines when not on a terminal)
    assert re.search(r"s  running \d+  queued: critical +\d+ high", out)


def test_cli_usage_errors(capsys):
    assert main([]) == 2
    with pytest.raises(SystemExit):
        main(["demo", "--burst", "0"])
    with pytest.raises(SystemExit):
        main(["no-such-command"])


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "atasker", "demo",
                             "--burst", "200"], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "critical" in result.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    result = subprocess.run([sys.executable, str(path)], capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    expected = {
        "quickstart.py": "urgent 50 42",
        "priorities.py": "low-1 running\nlow-2 running\nlow-3 queued\n"
                         "high running\ncritical running\n"
                         "running: 4 queued: 1",
        "errors_and_timeouts.py": "waiting task was canceled",
        "task_collections.py": "True",
        "workers.py": "['a.png', 'b.png', 'c.png'] 3\n"
                      "False False False",
        "app.py": "progress: 20 of 20 jobs done",
        "processes.py": "4 digests\ndb10eec2c20c7106\nlost: 7\n"
                        "d29b8bcf8003109d",
    }[path.name]
    assert expected in result.stdout


def test_readme_code_is_from_the_tested_examples():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks
    sources = [p.read_text() for p in EXAMPLES]
    for block in blocks:
        assert any(block in source for source in sources), block[:60]


# -- atasker run ------------------------------------------------------------
APP = ROOT / "examples" / "app.py"


def start_app(*options):
    """Start ``atasker run examples/app.py`` with its output merged."""
    return subprocess.Popen(
        [sys.executable, "-m", "atasker", "run", str(APP), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=ROOT)


def read_until(process, marker, lines):
    for line in process.stdout:
        lines.append(line)
        if marker in line:
            return line
    raise AssertionError(f"{marker!r} never printed:\n{''.join(lines)}")


def test_run_serves_status_and_drains_on_sigterm():
    process = start_app("--status-port", "0")
    lines = []
    try:
        line = read_until(process, "status: http://", lines)
        url = line.split("status: ", 1)[1].strip()
        read_until(process, "queued 20 jobs", lines)
        with urllib.request.urlopen(url + "status", timeout=10) as answer:
            status = json.loads(answer.read().decode())
        with urllib.request.urlopen(url + "metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    # work was still queued when SIGTERM came, and all of it ran
    pool = status["pools"]["thread"]
    assert pool["queued"] + pool["running"] > 0, status
    assert status["supervisor"] == "default" and status["state"] == "running"
    assert 'atasker_tasks_queued{supervisor="default",tt="thread",' \
           'band="low"}' in metrics
    assert all(f"job {n} done" in output for n in range(20)), output
    assert "stopping (signal SIGTERM)" in output


def test_run_until_complete_and_load_errors(tmp_path, capsys):
    module = tmp_path / "tiny_app.py"
    module.write_text(textwrap.dedent("""
        import atasker
        sup = atasker.TaskSupervisor(pool_size=1)
        results = []

        @sup.init_task
        def prepare():
            results.append("init")

        @sup.task
        def work():
            results.append("task")
            print("tiny app:", results, flush=True)
        """))
    result = subprocess.run(
        [sys.executable, "-m", "atasker", "run", f"{module}:sup",
         "--until-complete", "--log-level", "WARNING"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tiny app: ['init', 'task']" in result.stdout
    assert main(["run", str(tmp_path / "missing.py")]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert main(["run", f"{module}:results"]) == 2
    assert "not a TaskSupervisor" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(module), "--for-time", "-1"])


def test_run_exits_non_zero_when_init_fails(tmp_path):
    module = tmp_path / "broken_app.py"
    module.write_text(textwrap.dedent("""
        import atasker
        sup = atasker.TaskSupervisor()

        @sup.init_task
        def connect():
            raise OSError("no route to database")
        """))
    result = subprocess.run(
        [sys.executable, "-m", "atasker", "run", "broken_app:sup",
         "--for-time", "30"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "no route to database" in result.stderr
    assert "not starting" in result.stderr
