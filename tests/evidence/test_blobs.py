"""The local blob store: one file per version with chunks at fixed offsets, created
sparse and owner-only, written durably, refusing anything that is not an id."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.evidence.blobs import LocalBlobStore


def test_layout_and_permissions(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "evidence", stride=10)
    version = "-leading_dash-id_0123"  # ids may start with "-" (token_urlsafe)
    size = 10 + 10 + 4
    store.put_chunk(version, 2, b"cccc", size=size)
    store.put_chunk(version, 0, b"a" * 10, size=size)
    path = store.local_path(version)
    assert path == tmp_path / "evidence" / "-l" / f"{version}.bin"
    assert path.stat().st_size == size and path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    store.put_chunk(version, 1, b"b" * 10, size=size)
    assert path.read_bytes() == b"a" * 10 + b"b" * 10 + b"cccc"
    assert store.read(version, 18, 6) == b"bbcccc"
    with pytest.raises(ValueError):
        store.put_chunk(version, 3, b"d", size=size)  # past the end
    with pytest.raises(ValueError):
        store.put_chunk(version, 0, b"e" * 11, size=size)  # over a slot
    store.delete(version)
    assert store.local_path(version) is None
    store.delete(version)  # nothing to delete: fine


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "a.b", "x" * 65, "a\x00b"])
def test_refuses_what_is_not_an_id(tmp_path: Path, bad: str) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ValueError):
        store.put_chunk(bad, 0, b"x", size=1)
    with pytest.raises(ValueError):
        store.local_path(bad)
