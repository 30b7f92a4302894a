"""Where the ciphertext of document versions is kept.

``BlobStore`` is what the evidence service needs from a store; ``LocalBlobStore``
keeps each version in one file on local disk, the default (``PARLEY_EVIDENCE_DIR``).

Layout: ``<dir>/<first two characters of the id>/<version id>.bin``; chunk ``i`` lies at
offset ``i * (chunk_size + 16)``, and every chunk but the last fills its slot exactly,
so the complete file *is* the ciphertext of all chunks in order and a download is a
plain file response (with ``Range``). The file is created sparse at its final length
on the first chunk and each chunk is written with ``pwrite`` and ``fdatasync`` (the
durability of ``dd oflag=dsync``: the data and what is needed to read it back, such as
the blocks allocated in the sparse file; plus the directory's ``fsync`` when the file
was created): a chunk acknowledged is on disk.
Directories are 0700, files 0600. These calls block: run them in a thread.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol, TypeAlias

from server.core.ids import is_id
from server.evidence.formats import CHUNK_STRIDE

# A chunk's bytes as the transport holds them (a view of its read buffer, not a copy).
Chunk: TypeAlias = bytes | bytearray | memoryview
# ``fsync`` where there is no ``fdatasync`` (macOS).
_datasync = getattr(os, "fdatasync", os.fsync)


class BlobStore(Protocol):
    def put_chunk(self, version: str, index: int, data: Chunk, *, size: int) -> None:
        """Store chunk ``index`` of a version whose ciphertext is ``size`` bytes in all;
        durable when it returns."""

    def read(self, version: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` of the version's ciphertext."""

    def local_path(self, version: str) -> Path | None:
        """The file holding the version's ciphertext in order, if the store has one."""

    def delete(self, version: str) -> None:
        """Forget a version's ciphertext (nothing happens if there is none)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalBlobStore:
    def __init__(self, root: Path, stride: int = CHUNK_STRIDE) -> None:
        self.root = root
        self.stride = stride

    def _path(self, version: str) -> Path:
        # Ids come from the database, but the store refuses anything that could leave
        # its directory all the same (an id is letters, digits, "-" and "_" only).
        if not is_id(version):
            raise ValueError("not a version id")
        return self.root / version[:2] / f"{version}.bin"

    def _ensure_dir(self, path: Path) -> bool:
        created = False
        for directory in (self.root, path.parent):
            if not directory.exists():
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                created = True
        return created

    def put_chunk(self, version: str, index: int, data: Chunk, *, size: int) -> None:
        if index < 0 or len(data) > self.stride or index * self.stride + len(data) > size:
            raise ValueError("chunk outside the version")
        path = self._path(version)
        new_dir = self._ensure_dir(path)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, os.O_RDWR)
            created = False
        try:
            if created:
                os.ftruncate(fd, size)  # sparse: only written chunks take space
            view = memoryview(data).cast("B")
            offset = index * self.stride
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
            _datasync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(path.parent)
            if new_dir:
                _fsync_dir(path.parent.parent)

    def read(self, version: str, offset: int, length: int) -> bytes:
        fd = os.open(self._path(version), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def local_path(self, version: str) -> Path | None:
        path = self._path(version)
        return path if path.exists() else None

    def delete(self, version: str) -> None:
        path = self._path(version)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            _fsync_dir(path.parent)
