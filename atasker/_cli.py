"""The ``atasker`` command line: ``demo``, ``run`` and ``status``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import time
import urllib.request
from typing import Any, Optional, Sequence, TextIO

from ._demo import run_demo
from ._supervisor import TaskSupervisor, task_supervisor


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atasker",
        description="Supervised background tasks on prioritised pools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="run a short mixed-priority workload and report it")
    demo.add_argument("--burst", type=int, default=20_000,
                      help="no-op tasks in the throughput burst "
                           "(default: %(default)s)")
    run = commands.add_parser(
        "run", help="import a module and run its supervisor as an app",
        description="Import TARGET (pkg.module or path/to/file.py, "
                    "optionally :attribute naming a TaskSupervisor; "
                    "default: atasker.task_supervisor) and call its run(): "
                    "init tasks, then tasks, timers and workers, until "
                    "SIGINT/SIGTERM, then a graceful drain.")
    run.add_argument("target", metavar="TARGET")
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR",
                              "CRITICAL"],
                     help="(default: %(default)s)")
    run.add_argument("--for-time", type=float, metavar="SECONDS",
                     help="stop (and drain) after this many seconds")
    run.add_argument("--until-complete", action="store_true",
                     help="stop once every task has ended and no worker "
                          "is active")
    run.add_argument("--status-port", type=int, metavar="PORT",
                     help="serve /status, /metrics and / on this port "
                          "(0: any free port; the URL is logged)")
    run.add_argument("--status-host", default="127.0.0.1",
                     help="address of the status server "
                          "(default: %(default)s; another than loopback "
                          "needs --status-remote)")
    run.add_argument("--status-remote", action="store_true",
                     help="allow a non-loopback --status-host (the server "
                          "has no authentication)")
    run.add_argument("--dask", metavar="ADDRESS",
                     help="run the app's process tasks on the dask "
                          "cluster whose scheduler is at ADDRESS "
                          "(e.g. tcp://127.0.0.1:8786; needs "
                          "atasker[dask])")
    status = commands.add_parser(
        "status", help="show a running app's status (from its --status-port)")
    status.add_argument("url", metavar="URL",
                        help="the app's status URL, e.g. "
                             "http://127.0.0.1:8765/")
    status.add_argument("--watch", nargs="?", const=2.0, type=float,
                        metavar="SECONDS",
                        help="refresh every SECONDS (default 2) until Ctrl-C")
    status.add_argument("--json", action="store_true",
                        help="print the raw /status JSON")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``atasker`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.burst < 1:
            parser.error("--burst must be at least 1")
        run_demo(sys.stdout, burst=args.burst)
        return 0
    if args.command == "run":
        return _run(parser, args)
    if args.command == "status":
        return _status(parser, args)
    parser.print_help()
    return 2


# -- atasker run ----------------------------------------------------------------
def load_supervisor(target: str) -> Any:
    """Import ``pkg.module[:attr]`` or ``path/file.py[:attr]``; return the
    supervisor it names (default: the global ``task_supervisor``).

    Raises:
        ImportError: the module cannot be imported.
        AttributeError, TypeError: *attr* is missing or not a supervisor.
    """
    module_part, _, attr = target.partition(":")
    if module_part.endswith(".py") or os.sep in module_part:
        path = os.path.abspath(module_part)
        if not os.path.isfile(path):
            raise ImportError(f"no such file: {module_part}")
        directory, filename = os.path.split(path)
        # importable by name, so process tasks defined there unpickle
        if directory not in sys.path:
            sys.path.insert(0, directory)
        module = importlib.import_module(os.path.splitext(filename)[0])
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(module_part)
    if not attr:
        return task_supervisor
    supervisor = getattr(module, attr)
    if not isinstance(supervisor, TaskSupervisor):
        raise TypeError(f"{target} is a {type(supervisor).__name__}, not a "
                        f"TaskSupervisor")
    return supervisor


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.for_time is not None and args.for_time < 0:
        parser.error("--for-time must be >= 0")
    if args.status_port is not None and not 0 <= args.status_port <= 65535:
        parser.error("--status-port must be in 0..65535")
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("atasker")
    try:
        supervisor = load_supervisor(args.target)
    except (ImportError, AttributeError, TypeError) as exc:
        print(f"atasker run: cannot load {args.target}: {exc}",
              file=sys.stderr)
        return 2
    client = None
    if args.dask is not None:
        try:
            client = _dask_client(args.dask)
            supervisor.set_mp_pool(executor=client)
        except (ImportError, OSError, ValueError) as exc:
            print(f"atasker run: dask: {exc}", file=sys.stderr)
            if client is not None:
                client.close()
            return 2
        log.info("process tasks run on the dask cluster at %s", args.dask)
    server = None
    if args.status_port is not None:
        try:
            server = supervisor.serve_status(
                args.status_port, args.status_host,
                allow_remote=args.status_remote)
        except (OSError, ValueError) as exc:
            print(f"atasker run: status server: {exc}", file=sys.stderr)
            return 2
        log.info("status: %s", server.url)
    try:
        code = supervisor.run(until_complete=args.until_complete,
                              for_time=args.for_time)
    finally:
        if server is not None:
            server.stop()
        if client is not None:
            client.close()
    if code == 130:
        # a third signal: do not wait for running thread tasks at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _dask_client(address: str) -> Any:
    """A ``distributed.Client`` connected to the scheduler at *address*."""
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--dask needs the dask extra: pip install "
                          "'atasker[dask]'") from None
    return Client(address, timeout=10)


# -- atasker status ------------------------------------------------------------
def _status_url(url: str) -> str:
    if "://" not in url:
        url = "http://" + url
    base = url.split("?", 1)[0]
    if base.endswith("/status"):
        return base
    return base.rstrip("/") + "/status"


def fetch_status(url: str, timeout: float = 5.0) -> dict:
    """GET the ``/status`` JSON of a running app."""
    with urllib.request.urlopen(_status_url(url), timeout=timeout) as answer:
        return json.loads(answer.read().decode())


def format_status(status: dict) -> str:
    """Plain-text lines for a ``/status`` snapshot."""
    lines = []
    uptime = status.get("uptime")
    up = "-" if uptime is None else f"{uptime:.1f} s"
    totals = status["totals"]
    lines.append(f"supervisor {status['supervisor']}: {status['state']}, "
                 f"up {up}; completed {totals['completed']}, failed "
                 f"{totals['failed']}, canceled {totals['canceled']}")
    for name, unit in (("thread", "threads"), ("process", "processes")):
        pool = status["pools"][name]
        bands = ", ".join(f"{band} {count}"
                          for band, count in pool["queued_by_band"].items())
        lines.append(
            f"{name} pool: {pool['running']} running of {pool['size']} "
            f"(+{pool['reserve_normal']} normal, +{pool['reserve_high']} "
            f"high), {pool[unit]} {unit}; queued {pool['queued']} "
            f"({bands})")
    coroutines = status["coroutines"]
    lines.append(f"coroutines: {coroutines['running']} running, "
                 f"{coroutines['queued']} queued; delayed tasks: "
                 f"{status['delayed']}")
    workers = status["workers"]
    active = sum(1 for worker in workers if worker["active"])
    lines.append(f"workers: {active} active of {len(workers)}")
    for worker in workers:
        lines.append(f"  {worker['name']} ({worker['kind']})"
                     f"{'' if worker['active'] else ' stopped'}")
    running = status["running"]
    lines.append(f"running tasks: {status['running_count']}"
                 + (", longest first:" if running else ""))
    for task in running[:10]:
        lines.append(f"  {task['age']:8.1f} s  {task['id']}  {task['name']} "
                     f"({task['tt']}, priority {task['priority']})")
    return "\n".join(lines)


def _status(parser: argparse.ArgumentParser, args: argparse.Namespace,
            out: Optional[TextIO] = None) -> int:
    out = out or sys.stdout
    if args.watch is not None and args.watch <= 0:
        parser.error("--watch must be > 0")
    try:
        while True:
            try:
                status = fetch_status(args.url)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                print(f"atasker status: cannot read "
                      f"{_status_url(args.url)}: {reason}", file=sys.stderr)
                if args.watch is None:
                    return 1
            else:
                if args.json:
                    print(json.dumps(status, indent=2), file=out)
                else:
                    if args.watch is not None and out.isatty():
                        print("\033[H\033[2J", end="", file=out)
                    print(format_status(status), file=out)
                    if args.watch is not None:
                        print(file=out)
                out.flush()
            if args.watch is None:
                return 0
            time.sleep(args.watch)      # the refresh period itself
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
