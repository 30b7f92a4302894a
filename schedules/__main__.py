"""``python -m schedules suggest PROBLEM.json [--alternatives K]``."""

import sys

from .cli import main

raise SystemExit(main(sys.argv[1:], prog="python -m schedules"))
