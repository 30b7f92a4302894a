"""Validated payloads of the room's audio events (pydantic, strict)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from server.room.schemas import Id, SessionRef

# A Socket.IO message is at most 64 KiB (``max_http_buffer_size``); an audio SDP is a
# few KiB. No NUL anywhere.
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=60_000, pattern=r"^[^\x00]+$")]
Channel = Annotated[str, StringConstraints(min_length=1, max_length=35, pattern=r"^[A-Za-z0-9-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PublishPayload(SessionRef):
    channel: Channel
    sdp: Sdp


class UnpublishPayload(SessionRef):
    channel: Literal["talkback"] | None = None  # only the talk-back line; else the microphone


class ListenPayload(SessionRef):
    channel: Channel
    video: bool = False  # also the floor speakers' video; False: audio only


class AnswerPayload(SessionRef):
    sub: Annotated[int, Field(ge=0)]
    sdp: Sdp


class IceCandidate(_Strict):
    """A browser's ``RTCIceCandidate.toJSON()``."""

    candidate: Annotated[str, StringConstraints(max_length=1024, pattern=r"^[^\x00]*$")]
    sdpMid: Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")] | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=64)] | None = None
    usernameFragment: Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00]*$")] | None = None


class CandidatePayload(SessionRef):
    pc: Literal["publish", "listen", "talkback"]
    candidate: IceCandidate | None


class CoughPayload(SessionRef):
    on: bool


class MemberPayload(SessionRef):
    membership_id: Id


class BoothFloorPayload(SessionRef):
    carries_floor: bool
