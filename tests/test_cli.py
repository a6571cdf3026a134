"""The atasker command, its demo, and the README's examples."""

from __future__ import annotations

import io
import pathlib
import re
import subprocess
import sys

import pytest

from atasker.cli import main
from atasker.demo import run_demo

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
    assert "no threads left behind" in capsys.readouterr().out


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
