"""Files in and out chunk by chunk: never a whole file in memory, and nothing
half-decrypted left on disk."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from parley_client.content import CHUNK, TAG, ChunkCipher, chunk_count
from parley_client.errors import DecryptError, FormatError, TrustError
from parley_client.statements import CheckedVersion


@dataclass(frozen=True)
class PlainChunk:
    index: int
    last: bool
    plaintext: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.plaintext).digest()


@dataclass(frozen=True)
class EncryptedChunk:
    index: int
    last: bool
    ciphertext: bytes
    plaintext_sha256: bytes

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.ciphertext).digest()


def _read_exactly(source: BinaryIO, count: int) -> bytes:
    parts: list[bytes] = []
    wanted = count
    while wanted > 0:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


def read_plain_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[PlainChunk]:
    """The file's chunks, one at a time; fails if the file changes size while read."""
    with path.open("rb") as source:
        size = os.fstat(source.fileno()).st_size
        n = chunk_count(size, chunk_size)
        for index in range(n):
            want = chunk_size if index < n - 1 else size - (n - 1) * chunk_size
            data = _read_exactly(source, want)
            if len(data) != want:
                raise FormatError(f"{path.name} changed while it was read.")
            yield PlainChunk(index, index == n - 1, data)
        if source.read(1):
            raise FormatError(f"{path.name} changed while it was read.")


def encrypt_file(key: bytes, version_id: str, path: Path, *, chunk_size: int = CHUNK,
                 before_encrypt: Callable[[PlainChunk], None] | None = None) -> Iterator[EncryptedChunk]:
    """Encrypts chunk by chunk. ``before_encrypt`` sees each plaintext chunk first and may
    raise to stop (a resumed upload checks nothing changed, so one key and nonce never
    encrypt different bytes)."""
    cipher = ChunkCipher(key, version_id)
    for chunk in read_plain_chunks(path, chunk_size):
        digest = chunk.sha256
        if before_encrypt is not None:
            before_encrypt(chunk)
        yield EncryptedChunk(chunk.index, chunk.last, cipher.encrypt(chunk.index, chunk.last, chunk.plaintext), digest)


def decrypt_to_file(checked: CheckedVersion, source: BinaryIO, dest: Path, *, overwrite: bool = False,
                    on_chunk: Callable[[int, int], None] | None = None) -> int:
    """Reads the chunks' ciphertext in order from ``source``; checks each chunk's hash
    against the manifest before decrypting it; writes to a temporary file beside
    ``dest`` and gives it its name only after the last chunk verified. Returns the
    plaintext size. On any failure nothing is kept."""
    m = checked.manifest
    cipher = ChunkCipher(checked.key, m.version)
    directory = dest.parent if str(dest.parent) else Path(".")
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=".parley-", suffix=".part")
    temp = Path(temp_name)
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for index in range(m.chunks):
                last = index == m.chunks - 1
                want = m.chunk_size + TAG if not last else m.size - (m.chunks - 1) * (m.chunk_size + TAG)
                data = _read_exactly(source, want)
                if len(data) != want:
                    raise DecryptError(f"The content ends early, in chunk {index} of {m.chunks}: truncated.")
                if hashlib.sha256(data).digest() != m.chunk_hashes[index]:
                    raise TrustError(f"Chunk {index} is not the one the manifest signs (altered or swapped).")
                plaintext = cipher.decrypt(index, last, data)
                out.write(plaintext)
                written += len(plaintext)
                if on_chunk is not None:
                    on_chunk(index + 1, m.chunks)
            if source.read(1):
                raise DecryptError("The content goes on after the last chunk.")
            if written != checked.plaintext_size:
                raise TrustError("The decrypted size differs from the metadata's.")
            out.flush()
            os.fsync(out.fileno())
        _publish(temp, dest, overwrite)
        return written
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def _publish(temp: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, dest)
        return
    try:
        os.link(temp, dest)  # atomic, and refuses an existing name
    except FileExistsError:
        raise FormatError(f"{dest} already exists; nothing was overwritten.") from None
    except OSError:
        if dest.exists():
            raise FormatError(f"{dest} already exists; nothing was overwritten.") from None
        os.replace(temp, dest)
        return
    temp.unlink()
