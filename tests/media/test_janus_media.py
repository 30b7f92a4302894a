"""Media through Janus, end to end without a browser: inside a network namespace of
its own, a WebRTC peer publishes a sine tone into a VideoRoom that Parley's client set
up, another peer subscribes, and what it hears has the publisher's frequency."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.fixtures.janus import running_janus
from tests.fixtures.netns import network_namespace

ROOT = Path(__file__).resolve().parents[2]


def test_a_tone_published_into_janus_reaches_a_subscriber(tmp_path: Path) -> None:
    with network_namespace() as ns, running_janus(tmp_path, netns=ns) as janus:
        done = ns.run(
            [sys.executable, "-m", "tests.media.janus_peers", janus.url, janus.api_secret, janus.admin_key, "440"],
            cwd=ROOT, timeout=90,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["samples"] > 48000, result
    assert abs(result["frequency"] - 440) < 15, result
