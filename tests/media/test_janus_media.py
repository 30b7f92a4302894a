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


def test_the_engine_gives_each_listener_only_its_channel_and_ending_the_floor_silences_it(tmp_path: Path) -> None:
    """The Janus engine (server/media/janus_engine.py): a floor speaker (440 Hz) and a
    Spanish booth interpreter (660 Hz); the floor listener hears 440 Hz, the booth
    listener 660 Hz. When the floor ends (forwarding off at Janus), the floor listener
    hears nothing from one second on, while the booth goes on."""
    with network_namespace() as ns, running_janus(tmp_path, netns=ns) as janus:
        done = ns.run(
            [sys.executable, "-m", "tests.media.engine_peers", "janus", janus.url, janus.api_secret, janus.admin_key],
            cwd=ROOT, timeout=120,
        )
        heard = json.loads(done.stdout.strip().splitlines()[-1])
    assert abs(heard["floor_hz"] - 440) < 15, heard
    assert abs(heard["booth_hz"] - 660) < 15, heard
    assert heard["floor_level_before"] > 1000, heard
    # Silence after the cut: nothing of the floor, and nothing of the booth either.
    assert heard["floor_level_after"] < heard["floor_level_before"] / 100, heard
    assert heard["booth_level_after"] > 1000, heard


def test_a_booth_hand_over_only_switches_forwarding_and_the_listener_hears_the_new_voice(tmp_path: Path) -> None:
    """Two interpreters publish into the Spanish booth, the standby (880 Hz) connected
    but not forwarded; the listener hears the active one (660 Hz). The hand-over swaps
    forwarding at Janus: from one second later the listener hears 880 Hz and no longer
    660 Hz, with no new negotiation."""
    with network_namespace() as ns, running_janus(tmp_path, netns=ns) as janus:
        done = ns.run(
            [sys.executable, "-m", "tests.media.engine_peers", "janus", janus.url, janus.api_secret, janus.admin_key,
             "handover"],
            cwd=ROOT, timeout=120,
        )
        heard = json.loads(done.stdout.strip().splitlines()[-1])
    before, after = heard["before"], heard["after"]
    assert before["active"] > 100 * max(before["standby"], 1.0), heard
    assert after["standby"] > 100 * max(after["active"], 1.0), heard
    assert heard["switch_seconds"] < 1.0, heard
