"""`parley client` end to end against the in-memory stand-in of the evidence routes:
enroll from an invitation, upload (interrupted and resumed), list, download, and a
secretariat device reading the same upload with its own key."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from parley_client.cli import main
from parley_client.crypto import DevicePublic, check_manifest, decrypt_to_file, unb64u
from parley_client.store import Store
from tests.parley_client.fake_server import PERSON, SESSION, VISIT, World, serve
from tests.parley_client.world import device

MIB = 1048576


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("PARLEY_CLIENT_PASSPHRASE", "a long passphrase")
    w = World()
    w.secretariat = device(0xE1, 0x5EC)
    sec = w.secretariat
    w.people = [
        {"person": PERSON, "name": "Focal point", "role": "delegate", "delegation": "X", "devices": []},
        {"person": sec.person, "name": "Officer", "role": "secretariat", "delegation": None,
         "devices": [w.device_json(sec.id, sec.person, sec.keys.sig_alg, sec.keys.sig_pub, sec.keys.enc_pub)]},
        {"person": "0b5" * 10 + "00", "name": "Observer", "role": "observer", "delegation": None, "devices": [
            w.device_json("0b5" * 10 + "01", "0b5" * 10 + "00", "Ed25519", bytes(32), bytes(32))]},
    ]
    server = serve(w)
    yield w
    server.shutdown()
    server.server_close()


def run(store: Store, *argv: str) -> int:
    try:
        return main(list(argv), store=store)
    except SystemExit as exit_info:
        return int(exit_info.code or 0)


def test_enroll_upload_resume_list_download(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "config" / "parley")
    assert run(store, "enroll", f"{world.origin}/invite/tok3n") == 0
    out = capsys.readouterr()
    assert len(out.out.strip().split(" ")) == 4  # the safety code, alone on stdout
    assert store.load_enrollment() is not None and store.load_enrollment().visit == VISIT  # type: ignore[union-attr]

    data = os.urandom(2 * MIB + 5)
    source = tmp_path / "Informe anual 2023.pdf"
    source.write_bytes(data)
    world.fail_chunk_once = 2
    assert run(store, "upload", "--session", SESSION, str(source)) == 1
    err = capsys.readouterr()
    assert err.out == "" and "Storage is busy" in err.err and "Traceback" not in err.err
    assert world.puts == [0, 1, 2]
    assert run(store, "upload", "--session", SESSION, str(source)) == 0
    out = capsys.readouterr()
    (version,) = world.versions.values()
    assert out.out == f"{version.document}\n" and "resuming" in out.err
    assert world.puts == [0, 1, 2, 2]  # only the missing chunk was sent again
    assert version.complete and not list((store.root / "uploads").iterdir())
    observer = "0b5" * 10 + "01"
    assert observer not in version.keys and world.secretariat.id in version.keys

    assert run(store, "list", "--session", SESSION) == 0
    assert capsys.readouterr().out == f"{version.document}\tInforme anual 2023.pdf\n"

    monkeypatch.chdir(tmp_path / "config")
    assert run(store, "download", version.document) == 0
    saved = tmp_path / "config" / "Informe anual 2023.pdf"
    assert capsys.readouterr().out.strip() == str(saved) and saved.read_bytes() == data
    assert run(store, "download", version.document) == 2  # never overwrites

    # The secretariat's device opens the same upload with its own key.
    sec = world.secretariat
    uploader = world.devices()[version.uploader_device]
    checked = check_manifest(
        version.manifest, version.signature, visit_id=VISIT, version_id=version.id, document_id=version.document,
        uploader=DevicePublic(uploader["id"], PERSON, uploader["sig_alg"], unb64u(uploader["sig_pub"]),
                              unb64u(uploader["enc_pub"])),
        me=sec.public, keys=sec.keys, wrapped=unb64u(version.keys[sec.id]), meta_ciphertext=unb64u(version.meta),
    )
    decrypt_to_file(checked, io.BytesIO(b"".join(version.data[i] for i in range(3))), tmp_path / "sec.pdf")
    assert (tmp_path / "sec.pdf").read_bytes() == data


def test_a_changed_file_starts_over_and_tampering_is_refused(world: World, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "parley")
    assert run(store, "enroll", f"{world.origin}/api/device-links/l1nk") == 0
    source = tmp_path / "stats.csv"
    source.write_bytes(b"a" * (MIB + 1))
    world.fail_chunk_once = 1
    assert run(store, "upload", "--visit", VISIT, "--session", SESSION, str(source)) == 1
    source.write_bytes(b"b" * (MIB + 1))  # same size, other bytes
    assert run(store, "upload", "--visit", VISIT, "--session", SESSION, str(source)) == 0
    assert "starting over" in capsys.readouterr().err
    first, second = world.versions.values()
    assert not first.complete and second.complete and world.puts == [0, 1, 0, 1]

    second.data[0] = second.data[0][:-1] + bytes([second.data[0][-1] ^ 1])
    assert run(store, "download", "--visit", VISIT, second.document, "--output", str(tmp_path / "x.csv")) == 1
    err = capsys.readouterr().err
    assert "Chunk 0 is not the one the manifest signs" in err and not (tmp_path / "x.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".parley-")]


def test_a_changed_key_of_a_pinned_device_gets_nothing(world: World, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "parley")
    assert run(store, "enroll", f"{world.origin}/invite/t") == 0
    source = tmp_path / "law.txt"
    source.write_bytes(b"law")
    assert run(store, "upload", "--session", SESSION, str(source)) == 0
    sec_person = world.people[1]
    impostor = device(0xE1, 0x5EC)
    sec_person["devices"] = [world.device_json(impostor.id, impostor.person, "Ed25519", impostor.keys.sig_pub,
                                               impostor.keys.enc_pub)]
    assert run(store, "upload", "--session", SESSION, str(source)) == 1
    err = capsys.readouterr().err
    assert "another key" in err and "No device of a secretariat member may receive" in err
