"""The room's audio signalling, end to end, inside a network namespace.

ICE skips loopback, and media must never use the machine's own address, so the cases
in ``hub_cases.py`` (server, Janus, socket clients and aiortc peers in one process) run
in a namespace of their own: this test makes it, runs pytest on those cases inside it
(``ip netns exec``, SQLite: PostgreSQL listens outside), and fails with their report
if any case fails. Each case is listed in the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.netns import network_namespace

ROOT = Path(__file__).resolve().parents[2]


def test_the_room_audio_cases_pass_in_a_network_namespace() -> None:
    with network_namespace() as ns:
        done = subprocess.run(
            ns.command([sys.executable, "-m", "pytest", "-q", "-rA", "--tb=short", "-p", "no:cacheprovider", "-k", "sqlite",
                        "tests/media/hub_cases.py"]),
            cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    report = done.stdout[-20000:] + done.stderr[-5000:]
    assert done.returncode == 0, report
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED")]
    assert len(passed) >= 26, report  # each case against Janus and the embedded engine
