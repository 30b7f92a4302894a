"""Validated payloads of the room's Socket.IO events (pydantic, strict)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.room.state import CHAT_WINDOW

# No NUL bytes anywhere: PostgreSQL refuses them in text (an error, not a refusal).
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
IdemKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
MAX_CHAT_CHARS = 2000


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SessionRef(_Payload):
    session_id: Id


class JoinPayload(SessionRef):
    since: Annotated[int, Field(ge=0)] | None = None


class SyncPayload(SessionRef):
    since: Annotated[int, Field(ge=0)]


class HistoryPayload(SessionRef):
    before: Annotated[int, Field(ge=1)]
    limit: Annotated[int, Field(ge=1, le=CHAT_WINDOW)] = CHAT_WINDOW


class ChatPayload(SessionRef):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHAT_CHARS, pattern=r"^[^\x00]+$")]
    idem: IdemKey


class IdemPayload(SessionRef):
    idem: IdemKey | None = None


class TargetPayload(SessionRef):
    membership_id: Id
    idem: IdemKey | None = None


class ItemPayload(SessionRef):
    item_id: Id
    idem: IdemKey | None = None
