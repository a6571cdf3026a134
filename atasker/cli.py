"""The ``atasker`` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

__all__ = ["main"]


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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``atasker`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.burst < 1:
            parser.error("--burst must be at least 1")
        from .demo import run_demo
        run_demo(sys.stdout, burst=args.burst)
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
