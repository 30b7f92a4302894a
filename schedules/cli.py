"""Command line: ``suggest PROBLEM.json [--alternatives K]``.

Prints the result as JSON on stdout (exit status 0, also when nothing is feasible:
the result then has no sessions and an ``infeasible`` entry).  Bad input gets one
line on stderr naming the field, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

from .model import ProblemError, parse_problem
from .solver import solve

__all__ = ["DEFAULT_ALTERNATIVES", "build_parser", "main"]

DEFAULT_ALTERNATIVES = 3


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2 (raised, not exited)
        raise _Usage(message)


def build_parser(prog: str = "schedule") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="Fair, optimal session slots across time zones.")
    sub = parser.add_subparsers(dest="command", required=True)
    sug = sub.add_parser("suggest", help="suggest session slots for a problem file")
    sug.add_argument("problem", help="problem as JSON (a file path, or - for stdin)")
    sug.add_argument("--alternatives", "-k", type=int, default=DEFAULT_ALTERNATIVES, metavar="K",
                     help=f"also list the K next-best schedules (default {DEFAULT_ALTERNATIVES})")
    sug.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS",
                     help="time limit for the CP-SAT solver on large unordered agendas (default 30)")
    sug.add_argument("--compact", action="store_true", help="print JSON on one line")
    return parser


def _fail(message: str) -> int:
    print(" ".join(message.split()), file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, prog: str = "schedule") -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input)."""
    try:
        args = build_parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))
    except _Usage as exc:
        return _fail(f"usage: {exc}")
    if args.alternatives < 0:
        return _fail("--alternatives: must not be negative")
    if args.time_limit <= 0:
        return _fail("--time-limit: must be positive")
    try:
        if args.problem == "-":
            text = sys.stdin.read()
        else:
            with open(args.problem, encoding="utf-8") as fh:
                text = fh.read()
    except OSError as exc:
        return _fail(f"{args.problem}: cannot read the file ({exc.strerror or exc})")
    except UnicodeDecodeError:
        return _fail(f"{args.problem}: not UTF-8 text")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _fail(f"{args.problem}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
    try:
        problem = parse_problem(data)
    except ProblemError as exc:
        return _fail(str(exc))
    result = solve(problem, args.alternatives, time_limit=args.time_limit)
    json.dump(result.to_json(), sys.stdout, ensure_ascii=False, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
