"""The evidence room's rows: devices and what they sign, and documents as ciphertext.

Nothing here is secret to the server except the device-link token (stored as a keyed
hash, like invitation tokens): keys are public keys, ``meta`` and the chunks are
ciphertext, wrapped keys are sealed for their device. Binary values are stored as
bytes and shown as b64u.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.clock import utcnow
from server.core.ids import new_id
from server.db.base import Base, UTCDateTime


class Device(Base):
    """A browser profile or a ``parley client`` install of one person: its public keys.
    A device is never deleted, only revoked (statements and manifests name it)."""

    __tablename__ = "device"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    sig_alg: Mapped[str] = mapped_column(String(10))
    sig_pub: Mapped[bytes] = mapped_column(LargeBinary(65))
    enc_pub: Mapped[bytes] = mapped_column(LargeBinary(32))
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Statement(Base):
    """A signed verify or cross-sign statement (kept as signed: body text and signature)."""

    __tablename__ = "device_statement"
    __table_args__ = (UniqueConstraint("kind", "signer_device_id", "subject_device_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(20))  # "verify" or "cross-sign"
    signer_device_id: Mapped[str] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), index=True)
    subject_device_id: Mapped[str] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecoveryBlob(Base):
    """A device's private keys, sealed by its person (one per device, replaced on change)."""

    __tablename__ = "recovery_blob"

    device_id: Mapped[str] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), primary_key=True)
    blob: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceLink(Base):
    """A one-time "add a device" link: spending it opens a login of the same person with
    the scope of the login that made it."""

    __tablename__ = "device_link"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id", ondelete="CASCADE"), index=True)
    login_id: Mapped[str] = mapped_column(ForeignKey("login_session.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    spent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Document(Base):
    """The logical item (a law, a case file) in a visit; its content is in versions."""

    __tablename__ = "document"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    visit_id: Mapped[str] = mapped_column(ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    # A session's documents follow the session's access (a cancelled session keeps them).
    session_id: Mapped[str | None] = mapped_column(ForeignKey("agenda_session.id"), index=True)
    item_id: Mapped[str | None] = mapped_column(ForeignKey("agenda_item.id"))
    articles: Mapped[list[str]] = mapped_column(JSON, default=list)
    uploader_person_id: Mapped[str] = mapped_column(ForeignKey("person.id"), index=True)
    # The device that signed the first complete version (None until then).
    uploader_device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentVersion(Base):
    """One upload: its own content key, chunks, wrapped keys and signed manifest."""

    __tablename__ = "document_version"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("document.id", ondelete="CASCADE"), index=True)
    uploader_person_id: Mapped[str] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[bytes | None] = mapped_column(LargeBinary)  # the sealed metadata record
    rekey: Mapped[bool] = mapped_column(Boolean, default=False)
    manifest: Mapped[str | None] = mapped_column(Text)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary(64))
    uploader_device_id: Mapped[str | None] = mapped_column(ForeignKey("device.id"))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A newer version completed; ``purged_at``: a re-key deleted this one's chunks and keys.
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def complete(self) -> bool:
        return self.completed_at is not None


class VersionChunk(Base):
    """A stored chunk: its position, size and the SHA-256 of its ciphertext."""

    __tablename__ = "version_chunk"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("document_version.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    size: Mapped[int] = mapped_column(Integer)


class Share(Base):
    """A signed share statement: a holder wrapped the version's key for late recipients."""

    __tablename__ = "document_share"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    version_id: Mapped[str] = mapped_column(ForeignKey("document_version.id", ondelete="CASCADE"), index=True)
    signer_device_id: Mapped[str] = mapped_column(ForeignKey("device.id"))
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WrappedKey(Base):
    """A version's content key sealed for one device (from the upload or a share)."""

    __tablename__ = "wrapped_key"

    version_id: Mapped[str] = mapped_column(
        ForeignKey("document_version.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"), primary_key=True, index=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary(80))
    share_id: Mapped[str | None] = mapped_column(ForeignKey("document_share.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
