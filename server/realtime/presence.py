"""Broadcast leaves recorded for connections whose process is gone.

They are committed by whichever process ran the expiry; with Redis the emit reaches
the room's sockets on every process, like any other ``room.event``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from server.room.maintenance import PresenceClosed

if TYPE_CHECKING:
    from server.realtime.server import Realtime


def presence_closed_emitter(realtime: Realtime) -> Callable[[PresenceClosed], Awaitable[None]]:
    from server.realtime.server import room_name

    async def emit(closed: PresenceClosed) -> None:
        for item in closed.events:
            await realtime.sio.emit(
                "room.event", {"session_id": closed.session_id, **item}, room=room_name(closed.session_id)
            )

    return emit
