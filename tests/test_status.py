"""``status()``, the Prometheus text, the HTTP status server, and the
``atasker status`` command."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from atasker import TASK_HIGH, TASK_LOW, TaskError, TaskSupervisor, \
    background_worker
from atasker._cli import format_status, main
from atasker._status import render_metrics

from .conftest import SAFETY


def fail():
    raise TaskError("expected")


@pytest.fixture
def busy(gates):
    """A supervisor in a known, frozen state."""
    sup = TaskSupervisor(pool_size=2, reserve_normal=0, reserve_high=0,
                         supervisor_id="frozen")
    sup.wait_completed([sup.put_task(lambda: 1), sup.put_task(lambda: 2)])
    with pytest.raises(TaskError):
        sup.wait_completed(sup.put_task(fail))
    held = [gates(), gates()]
    sup.put_task(held[0], name="slow-high", priority=TASK_HIGH)
    sup.put_task(held[1], name="slow-normal")
    for gate in held:
        gate.wait_started()
    sup.put_task(lambda: None, priority=100)
    sup.put_task(lambda: None, priority=100)
    sup.put_task(lambda: None, priority=TASK_LOW)
    sup.cancel_task(sup.put_task(lambda: None, priority=TASK_LOW))
    sup.put_task(lambda: None, delay=3600)
    worker = background_worker(lambda **kw: None, interval=3600,
                               delay_before=3600, name="hourly",
                               supervisor=sup)
    worker.start()
    yield sup
    worker.stop()
    sup.stop(wait=False, cancel_tasks=True)
    for gate in held:
        gate.open()
    sup.stop(wait=SAFETY)


def test_status_snapshot(busy):
    status = busy.status()
    assert status["supervisor"] == "frozen" and status["state"] == "running"
    assert status["uptime"] > 0
    assert status["totals"]["completed"] == 2
    assert status["totals"]["failed"] == 1
    assert status["totals"]["canceled"] == 1
    assert status["totals"]["by_tt"]["thread"] == {
        "completed": 2, "failed": 1, "canceled": 1}
    pool = status["pools"]["thread"]
    assert (pool["size"], pool["running"], pool["queued"]) == (2, 2, 3)
    assert pool["queued_by_band"] == {"critical": 0, "high": 0,
                                      "normal": 2, "low": 1}
    assert pool["queued_by_priority"] == {"100": 2, "200": 1}
    assert pool["running_by_band"] == {"critical": 0, "high": 1,
                                       "normal": 1, "low": 0}
    assert status["pools"]["process"]["processes"] == 0
    assert status["delayed"] == 1 and status["running_count"] == 2
    assert {t["name"] for t in status["running"]} == {"slow-high",
                                                      "slow-normal"}
    ages = [t["age"] for t in status["running"]]
    assert ages == sorted(ages, reverse=True)
    assert status["workers"] == [{"name": "hourly",
                                  "kind": "BackgroundIntervalWorker",
                                  "active": True}]
    json.dumps(status)      # JSON-ready


def test_metrics_text(busy):
    text = render_metrics(busy.status())
    assert '# TYPE atasker_tasks_total counter' in text
    assert 'atasker_tasks_total{supervisor="frozen",tt="thread",' \
           'status="completed"} 2' in text
    assert 'atasker_tasks_queued{supervisor="frozen",tt="thread",' \
           'band="normal"} 2' in text
    assert 'atasker_tasks_running{supervisor="frozen",tt="thread",' \
           'band="high"} 1' in text
    assert 'atasker_workers_active{supervisor="frozen"} 1' in text
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith("# ") or line.startswith("atasker_")


def get(url):
    with urllib.request.urlopen(url, timeout=SAFETY) as answer:
        return answer.status, answer.headers, answer.read().decode()


def test_server_endpoints(busy):
    server = busy.serve_status()
    try:
        assert server.host == "127.0.0.1" and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}/"
        code, headers, body = get(server.url + "status")
        assert code == 200 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["totals"]["completed"] == 2
        code, headers, body = get(server.url + "metrics")
        assert headers["Content-Type"].startswith("text/plain")
        assert "atasker_tasks_total" in body
        code, headers, body = get(server.url)
        assert headers["Content-Type"].startswith("text/html")
        assert "<title>atasker status</title>" in body
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(server.url + "nothing")
        assert missing.value.code == 404
        missing.value.close()
        # read-only: every other method is refused
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            conn = http.client.HTTPConnection(server.host, server.port,
                                              timeout=SAFETY)
            conn.request(method, "/status", body=b"{}")
            answer = conn.getresponse()
            assert answer.status == 405, method
            assert answer.headers["Allow"] == "GET, HEAD"
            conn.close()
        conn = http.client.HTTPConnection(server.host, server.port,
                                          timeout=SAFETY)
        conn.request("HEAD", "/status")
        answer = conn.getresponse()
        assert answer.status == 200 and answer.read() == b""
        conn.close()
    finally:
        server.stop()
    server.stop()           # idempotent
    with pytest.raises(OSError):
        get(server.url + "status")


def test_server_arguments(sup):
    with pytest.raises(ValueError, match="allow_remote"):
        sup.serve_status(host="0.0.0.0")
    with pytest.raises(ValueError, match="port"):
        sup.serve_status(port=70000)
    server = sup.serve_status(host="localhost")
    server.stop()


def test_status_command(busy, capsys):
    server = busy.serve_status()
    try:
        assert main(["status", server.url]) == 0
        out = capsys.readouterr().out
        assert out.startswith("supervisor frozen: running, up ")
        assert out.count("\n") == format_status(busy.status()).count(
            "\n") + 1
        assert "thread pool: 2 running of 2" in out
        assert "queued 3 (critical 0, high 0, normal 2, low 1)" in out
        assert "completed 2, failed 1, canceled 1" in out
        assert "hourly (BackgroundIntervalWorker)" in out
        assert "slow-high" in out and "slow-normal" in out
        assert main(["status", f"127.0.0.1:{server.port}/status",
                     "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["supervisor"] == "frozen"
    finally:
        server.stop()
    assert main(["status", server.url]) == 1
    assert "cannot read" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic", "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian "
                    "package chromium, which .ci/run installs)")
def test_page_in_headless_chromium_matches_status(busy, tmp_path):
    server = busy.serve_status()
    try:
        result = subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS,
             f"--user-data-dir={tmp_path / 'profile'}",
             # run the page's script (fetch, render) before dumping
             "--virtual-time-budget=3000", "--dump-dom", server.url],
            capture_output=True, text=True, timeout=90)
    finally:
        server.stop()
    dom = result.stdout
    assert "<title>atasker status</title>" in dom, result.stderr[-2000:]

    def shown(element_id):
        found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
        assert found, f"#{element_id} missing from the page"
        return found.group(1)

    status = busy.status()
    assert shown("supervisor") == "frozen"
    assert shown("state") == "running"
    for key in ("completed", "failed", "canceled"):
        assert shown(key) == str(status["totals"][key])
    assert shown("running-count") == str(status["running_count"])
    assert shown("delayed") == str(status["delayed"])
    pool = status["pools"]["thread"]
    assert shown("thread-running") == str(pool["running"])
    assert shown("thread-queued") == str(pool["queued"])
    assert shown("process-queued") == "0"
    assert "slow-high" in dom and "hourly" in dom
    assert shown("error") == ""
