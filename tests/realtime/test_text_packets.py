"""Socket.IO packets as Parley sends them (server/realtime/packets.py): the same JSON
values as python-socketio's own packets, encoded faster, and never split as binary."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from socketio import packet

from server.realtime.packets import TextPacket

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_a_packet_decodes_to_what_python_socketios_own_packet_gives(value: object) -> None:
    ours = TextPacket(packet.ACK, data=[value], id=7).encode()
    theirs = packet.Packet(packet.ACK, data=[value], id=7).encode()
    assert ours[:2] == theirs[:2] == "37"
    assert json.loads(ours[2:]) == json.loads(theirs[2:])


def test_what_orjson_refuses_is_still_encoded() -> None:
    # A lone surrogate reaches the server through a "\ud800" escape in a client's JSON.
    text = json.loads('"half \\ud800 a pair"')
    big = 2**70
    encoded = TextPacket(packet.EVENT, data=["room.event", {"text": text, "n": big}]).encode()
    assert json.loads(encoded[1:]) == ["room.event", {"text": text, "n": big}]


def test_no_binary_walk_and_no_binary_packet() -> None:
    calls = 0

    class Counting(TextPacket):
        @classmethod
        def data_is_binary(cls, data: object) -> bool:
            nonlocal calls
            calls += 1
            return super().data_is_binary(data)

    pkt = Counting(packet.ACK, data=[{"state": {"people": {str(i): {"name": "x"} for i in range(100)}}}], id=1)
    assert pkt.packet_type == packet.ACK and calls == 1  # one call at the top, no walk


def test_non_ascii_is_sent_as_utf8_text() -> None:
    encoded = TextPacket(packet.EVENT, data=["chat", "Señora Ministra, 谢谢"]).encode()
    assert "Señora Ministra, 谢谢" in encoded
