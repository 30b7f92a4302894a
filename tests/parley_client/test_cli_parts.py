"""The command-line client's pure parts: safe names, links, resumption decisions,
trust and pinning, the config store, and exit statuses for bad input."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from parley_client.cli import Link, UsageError, main, parse_link
from parley_client.crypto import b64u, device_statement, sign_statement
from parley_client.files import (
    Chunk,
    Start,
    ciphertext_decision,
    plaintext_decision,
    resume_decision,
    safe_file_name,
)
from parley_client.store import Enrollment, Store, config_dir
from parley_client.trust import Statement, Status, assess
from tests.parley_client.world import device


@pytest.mark.parametrize(("given", "expected"), [
    ("Ley 1474.pdf", "Ley 1474.pdf"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("/etc/passwd", "_etc_passwd"),
    ("..\\..\\boot.ini", "_.._boot.ini"),
    ("..", "document"),
    ("", "document"),
    ("   ", "document"),
    ("./", "document"),
    (".bashrc", "bashrc"),
    ("report\x00.pdf\n", "report.pdf"),
    ("evil\u202egpj.exe", "evilgpj.exe"),
    ("CON", "_CON"),
    ("nul.txt", "_nul.txt"),
    ("com1", "_com1"),
    ("C:evil", "C_evil"),
    ("résumé.docx", "résumé.docx"),
    ("Закон о противодействии коррупции.pdf", "Закон о противодействии коррупции.pdf"),
])
def test_safe_file_name(given: str, expected: str) -> None:
    assert safe_file_name(given) == expected


def test_safe_file_name_is_never_a_path_and_keeps_the_extension_when_shortened() -> None:
    long = "界" * 300 + ".pdf"
    name = safe_file_name(long)
    assert name.endswith(".pdf") and len(name.encode()) <= 200
    for tricky in ("a/b", "a\\b", "/", "\\", "a/../b", "~/x", "\x7f\x1b[31m"):
        out = safe_file_name(tricky)
        assert "/" not in out and "\\" not in out and out not in ("", ".", "..")
        assert all(ord(c) >= 0x20 and c != "\x7f" for c in out)


def test_parse_link() -> None:
    assert parse_link("https://parley.example.org/invite/AbC-12_x") == Link("https://parley.example.org", "invite",
                                                                              "AbC-12_x")
    assert parse_link("http://127.0.0.1:8080/api/device-links/tok") == Link("http://127.0.0.1:8080", "device-link",
                                                                             "tok")
    assert parse_link("https://p.example/api/device-links/tok/").kind == "device-link"
    for bad in ("https://p.example/device-links/tok", "ftp://p.example/invite/x", "https://p.example/visits/x", "invite/x", "https:///invite/x",
                "https://p.example/invite/x/y"):
        with pytest.raises(UsageError):
            parse_link(bad)


def test_resume_decision() -> None:
    state = {"v": 1, "size": 10, "version": "e" * 32}
    assert resume_decision(None, 10, None) == Start.NEW
    assert resume_decision(state, 10, None) == Start.NEW  # the server forgot it
    assert resume_decision(state, 10, {"chunks": {}, "complete": False}) == Start.RESUME
    assert resume_decision(state, 11, {"chunks": {}, "complete": False}) == Start.NEW  # the file changed size
    assert resume_decision(state, 11, {"chunks": {}, "complete": True}) == Start.DONE
    assert plaintext_decision(None, "h") == Chunk.SEND
    assert plaintext_decision("h", "h") == Chunk.SEND
    assert plaintext_decision("h", "other") == Chunk.RESTART  # never the same nonce for other bytes
    assert ciphertext_decision(None, "c") == Chunk.SEND
    assert ciphertext_decision("c", "c") == Chunk.SKIP
    assert ciphertext_decision("x", "c") == Chunk.RESTART


def test_trust_pins_on_first_sight_and_refuses_a_changed_key() -> None:
    me, alice, bob = device(1, 10), device(2, 20), device(3, 30)
    first = assess([me.public, alice.public, bob.public], [], me.id, {})
    assert first.status == {me.id: Status.OWN, alice.id: Status.NEW, bob.id: Status.NEW}
    assert first.pins[alice.id] == {"fp": b64u(alice.public.fingerprint), "person": alice.person, "verified": False}
    again = assess([me.public, alice.public, bob.public], [], me.id, first.pins)
    assert again.status[alice.id] == Status.PINNED and not again.warnings
    swapped = device(2, 20)  # same device id, other keys
    changed = assess([me.public, swapped.public, bob.public], [], me.id, again.pins)
    assert changed.status[swapped.id] == Status.CHANGED and not changed.status[swapped.id].may_receive
    assert changed.pins[swapped.id]["fp"] == b64u(alice.public.fingerprint)  # the pin stays
    assert "another key" in changed.warnings[0]
    # Verified again by this device: the new key is pinned, verified.
    text, signature = sign_statement(me.keys, device_statement("verify", me.public, swapped.public))
    fixed = assess([me.public, swapped.public], [Statement("verify", text, signature)], me.id, changed.pins)
    assert fixed.status[swapped.id] == Status.VERIFIED
    assert fixed.pins[swapped.id]["fp"] == b64u(swapped.public.fingerprint)


def test_trust_verify_cross_sign_and_replacement() -> None:
    me, alice1, alice2, alice3 = device(1, 10), device(2, 20), device(3, 20), device(4, 20)
    verify = sign_statement(me.keys, device_statement("verify", me.public, alice1.public))
    cross = sign_statement(alice1.keys, device_statement("cross-sign", alice1.public, alice2.public))
    forged = sign_statement(alice3.keys, device_statement("cross-sign", alice1.public, alice3.public))
    statements = [Statement("cross-sign", *cross), Statement("verify", *verify), Statement("cross-sign", *forged)]
    result = assess([me.public, alice1.public, alice2.public], statements, me.id, {})
    assert result.status[alice1.id] == Status.VERIFIED and result.status[alice2.id] == Status.VERIFIED
    # Alice's verified devices vanish; a new one with no cross-signature appears.
    replaced = assess([me.public, alice3.public], statements, me.id, result.pins)
    assert replaced.status[alice3.id] == Status.UNVOUCHED and not replaced.status[alice3.id].may_receive
    assert alice3.id not in replaced.pins
    # A cross-sign needs a verified signer: signed by an unverified device it is ignored.
    bob1, bob2 = device(5, 30), device(6, 30)
    unvouched = sign_statement(bob1.keys, device_statement("cross-sign", bob1.public, bob2.public))
    plain = assess([me.public, bob1.public, bob2.public], [Statement("cross-sign", *unvouched)], me.id, {})
    assert plain.status[bob2.id] == Status.NEW


def test_store_places_and_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert config_dir() == tmp_path / "cfg" / "parley"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config_dir() == tmp_path / "home" / ".config" / "parley"
    store = Store(tmp_path / "cfg" / "parley")
    enrollment = Enrollment(server="https://p.example", cookie="c", person="1" * 32, device="2" * 32, visit=None,
                            sig_alg="Ed25519", sealed_keys={"v": 1})
    store.save_enrollment(enrollment)
    store.save_pins({"x": {"fp": "y"}})
    assert store.load_enrollment() == enrollment and store.load_pins() == {"x": {"fp": "y"}}
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    for path in store.root.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    a = store.upload_state_path("https://p.example", "v" * 32, "s" * 32, tmp_path / "f")
    b = store.upload_state_path("https://p.example", "v" * 32, "t" * 32, tmp_path / "f")
    assert a != b and a.parent == store.root / "uploads"


def test_exit_statuses_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "parley")
    monkeypatch.setenv("PARLEY_CLIENT_PASSPHRASE", "a passphrase")
    cases = [
        ["list"],  # not enrolled
        ["upload", "--session", "x" * 32, str(tmp_path / "missing.pdf")],
        ["upload", "--session", "nope", str(tmp_path)],
        ["enroll", "https://p.example/elsewhere"],
        ["download", "not-an-id"],
        ["frobnicate"],
    ]
    for argv in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv, store=store)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.strip(), argv
    assert not store.root.exists()


def test_network_failure_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_CLIENT_PASSPHRASE", "a passphrase")
    with pytest.raises(SystemExit) as exit_info:
        main(["enroll", "http://127.0.0.1:9/invite/abc"], store=Store(tmp_path / "parley"))
    assert exit_info.value.code == 1
    assert "Cannot reach http://127.0.0.1:9" in capsys.readouterr().err
