"""The Socket.IO packet Parley sends: JSON text only, encoded fast.

python-socketio walks every outgoing payload looking for bytes (to split binary
attachments), then encodes it with ``json.dumps``. Parley never sends binary data, and
a join acknowledgement carries a room's whole state (tens of KiB for a 250-person
room): in a reconnect storm that walk and the encoding were about 30 % of the server's
CPU. Here the walk is skipped and the payload is encoded with orjson (several times
faster than ``json.dumps``), falling back to ``json.dumps`` for what orjson refuses
(a string with a lone surrogate, which a client can send through a ``\\ud800`` escape,
or an integer beyond 64 bits), so the same payloads encode as before. Decoding stays
``json.loads``: the packet guard (server/realtime/server.py) relies on its errors.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from socketio import packet


class _Codec:
    """The ``json`` interface python-socketio's packets call."""

    @staticmethod
    def dumps(value: Any, **_: Any) -> str:
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except (TypeError, orjson.JSONEncodeError):
            return json.dumps(value, separators=(",", ":"))

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        return json.loads(text, **kwargs)


class TextPacket(packet.Packet):  # type: ignore[misc]
    json = _Codec

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        return False  # Parley's payloads are JSON values, never bytes
