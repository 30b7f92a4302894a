"""The embedded media engine (server/media/embedded.py): an aiortc SFU in a child process.

The media scenarios run inside a network namespace of their own (ICE skips loopback), as
for Janus: the same script (tests/media/engine_peers.py) drives the embedded engine. The
process tests need no media: they check that the engine lives in a child process, that
a dead child is reported once and replaced, and that closing leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from server.media.embedded import EmbeddedEngine
from server.media.engine import MediaError, MediaUnavailable
from tests.fixtures.netns import network_namespace

ROOT = Path(__file__).resolve().parents[2]


def scenario(name: str) -> dict[str, Any]:
    with network_namespace() as ns:
        done = ns.run([sys.executable, "-m", "tests.media.engine_peers", "embedded", name], cwd=ROOT, timeout=90)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_each_listener_hears_only_its_channel_and_ending_the_floor_silences_it() -> None:
    """A floor speaker (440 Hz) and a Spanish booth interpreter (660 Hz); the floor
    listener hears 440 Hz, the booth listener 660 Hz. With the floor's forwarding off,
    the floor listener hears nothing from one second on, while the booth goes on."""
    heard = scenario("main")
    assert abs(heard["floor_hz"] - 440) < 15, heard
    assert abs(heard["booth_hz"] - 660) < 15, heard
    assert heard["floor_level_before"] > 1000, heard
    assert heard["floor_level_after"] < heard["floor_level_before"] / 100, heard
    assert heard["booth_level_after"] > 1000, heard


def test_a_booth_hand_over_only_switches_forwarding() -> None:
    """Active (660 Hz) and standby (880 Hz) interpreters, the standby not forwarded;
    swapping forwarding makes the listener hear 880 Hz and no longer 660 Hz."""
    heard = scenario("handover")
    before, after = heard["before"], heard["after"]
    assert before["active"] > 100 * max(before["standby"], 1.0), heard
    assert after["standby"] > 100 * max(after["active"], 1.0), heard
    assert heard["switch_seconds"] < 1.0, heard


def test_malformed_sdp_and_candidates_are_refused_while_a_listener_hears_on() -> None:
    heard = scenario("refusals")
    refused = heard["refused"]
    assert all(refused.values()), refused  # every one a MediaError with a message
    assert refused["publish"].startswith("malformed SDP offer"), refused
    assert refused["start"].startswith("malformed SDP answer"), refused
    assert all(refused[f"candidate_{n}"].startswith("malformed ICE candidate") for n in range(3)), refused
    assert abs(heard["floor_hz"] - 440) < 15, heard
    # It kept hearing through the garbage: most of the window (a busy machine may lose some).
    assert heard["seconds_heard"] > max(1.0, heard["window_seconds"] / 2), heard
    assert heard["level_after"] > 1000, heard


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_the_engine_runs_in_a_child_process_that_is_replaced_when_it_dies() -> None:
    engine = EmbeddedEngine(request_timeout=5.0)
    try:
        assert engine.pid is None  # started lazily
        await engine.open_room("r")
        first = engine.pid
        assert first is not None and first != os.getpid()
        assert await engine.live("r") == set()
        with pytest.raises(MediaError):
            await engine.live("no-such-room")
        with pytest.raises(MediaError):
            await engine.set_forwarding("r", "nobody", False)

        os.kill(first, signal.SIGKILL)
        with pytest.raises(MediaUnavailable):
            await engine.live("r")
        # The one after starts a new child, with the room opened again (empty).
        assert await engine.live("r") == set()
        second = engine.pid
        assert second is not None and second not in (first, os.getpid())
    finally:
        await engine.aclose()
    assert engine.pid is None
    assert not alive(second)


async def test_a_child_that_does_not_answer_in_time_is_unavailable_then_replaced() -> None:
    engine = EmbeddedEngine(request_timeout=0.5)
    try:
        await engine.open_room("r")
        hung = engine.pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        with pytest.raises(MediaUnavailable):
            await engine.live("r")
        assert await engine.live("r") == set()
        assert engine.pid not in (None, hung)
    finally:
        await engine.aclose()
    assert not alive(hung)


async def test_aclose_leaves_no_child_behind() -> None:
    engine = EmbeddedEngine()
    await engine.open_room("r")
    pid = engine.pid
    assert pid is not None
    await engine.aclose()
    assert engine.pid is None
    assert not alive(pid)
    with pytest.raises(MediaUnavailable):
        await engine.open_room("r")
