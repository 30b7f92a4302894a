"""``parley client``: enroll this machine as a device, upload evidence encrypted here,
list and download what this device may read (docs/evidence.md "Protocol").

Exit status: 0 done, 1 failed (network, server, a check that did not pass), 2 bad
input (arguments, files, links). Messages go to stderr; stdout carries only results
(document ids, list lines, saved paths)."""

from __future__ import annotations

import argparse
import getpass
import mimetypes
import os
import re
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from parley_client.content import CHUNK, ciphertext_size, key_commit, new_content_key, seal_meta, unwrap_key, wrap_key
from parley_client.encoding import b64u, check_id, unb64u
from parley_client.errors import DecryptError, EvidenceError, FormatError, TrustError
from parley_client.files import (
    Chunk,
    Start,
    ciphertext_decision,
    plaintext_decision,
    resume_decision,
    safe_file_name,
)
from parley_client.http import Api, ApiError, origin_of
from parley_client.keys import DeviceKeys, DevicePublic, safety_code
from parley_client.recovery import open_recovery, seal_recovery
from parley_client.statements import Recipient, check_manifest, make_manifest, sign_statement
from parley_client.store import Enrollment, Store, read_json, write_json
from parley_client.stream import PlainChunk, decrypt_to_file, encrypt_file
from parley_client.trust import Statement, Status, assess

ENTITLED_ROLES = ("secretariat", "expert", "delegate")
PASSPHRASE_ENV = "PARLEY_CLIENT_PASSPHRASE"


class UsageError(Exception):
    """Bad input: exit status 2."""


class Failure(Exception):
    """A failure that is not the input's fault: exit status 1."""


def arg_id(value: str | None, what: str) -> str:
    """An id given on the command line: a bad one is the input's fault (exit 2)."""
    try:
        return check_id(value, what)
    except FormatError as err:
        raise UsageError(str(err)) from None


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- enrollment and keys --------------------------------------------------------------

def _passphrase(*, confirm: bool) -> str:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise UsageError(f"No passphrase: set {PASSPHRASE_ENV} or run in a terminal.")
    first = getpass.getpass("Passphrase for this device's keys: ")
    if confirm:
        if len(first) < 8:
            raise UsageError("Choose a passphrase of at least 8 characters.")
        if first != getpass.getpass("Repeat the passphrase: "):
            raise UsageError("The passphrases differ.")
    return first


@dataclass
class Client:
    """An enrolled client, unlocked: its store, API connection and keys."""

    store: Store
    enrollment: Enrollment
    api: Api
    keys: DeviceKeys

    @property
    def me(self) -> DevicePublic:
        return DevicePublic(self.enrollment.device, self.enrollment.person, self.keys.sig_alg, self.keys.sig_pub,
                            self.keys.enc_pub)

    def visit(self, given: str | None) -> str:
        visit = given or self.enrollment.visit
        if not visit:
            raise UsageError("Name the visit with --visit (this device was enrolled with a device link).")
        return arg_id(visit, "visit")


def _unlock(store: Store) -> Client:
    enrollment = store.load_enrollment()
    if enrollment is None:
        raise UsageError("This machine is not enrolled: run `parley client enroll URL` first.")
    try:
        keys = open_recovery(enrollment.sealed_keys, enrollment.person, passphrase=_passphrase(confirm=False))
    except DecryptError:
        raise UsageError("Wrong passphrase for this device's keys.") from None
    return Client(store, enrollment, Api(enrollment.server, enrollment.cookie), keys)


@dataclass(frozen=True)
class Link:
    server: str
    kind: str  # "invite" or "device-link"
    token: str


def parse_link(url: str) -> Link:
    """An invitation link (…/invite/TOKEN) or a one-time "add a device" link
    (…/device-links/TOKEN), else a usage error."""
    try:
        server = origin_of(url.strip())
    except ValueError as err:
        raise UsageError(str(err)) from None
    path = urlsplit(url.strip()).path
    invite = re.fullmatch(r"/invite/([A-Za-z0-9_\-.~%]+)/?", path)
    if invite:
        return Link(server, "invite", invite.group(1))
    link = re.fullmatch(r"/api/device-links/([A-Za-z0-9_\-.~%]+)/?", path)
    if link:
        return Link(server, "device-link", link.group(1))
    raise UsageError("Give an invitation link (…/invite/…) or an \"add a device\" link (…/api/device-links/…).")


def _log_in(link: Link) -> Api:
    """Spends the link as the browser's Join does (an invitation) or as the evidence
    room's "add a device" does (a device link); returns the signed-in API."""
    api = Api(link.server)
    try:
        if link.kind == "invite":
            target = f"/invite/{link.token}"
            api.request("GET", target, headers={"Accept": "text/html"}, ok=(200,))
            api.request("POST", target, body=b"", ok=(303,),
                        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
        else:
            api.request("POST", f"/api/device-links/{link.token}", ok=(204,))
    except ApiError as err:
        if err.status == 410:
            what = "invitation" if link.kind == "invite" else "device link"
            raise Failure(f"This {what} is spent, expired or unknown: ask for a new one.") from None
        raise
    if not api.cookie:
        raise Failure("The server did not sign this client in (no login cookie in its answer).")
    return api


def _login_visit(api: Api) -> str | None:
    """The visit the new login belongs to (an invitation's, or the visit of the login
    that made the device link); None for a login not bound to one visit."""
    answer = api.get_json("/api/me/logins")
    logins = answer.get("logins", []) if isinstance(answer, dict) else []
    current = [entry for entry in logins if isinstance(entry, dict) and entry.get("current") is True]
    visits = {entry.get("visit_id") for entry in current}
    if len(visits) != 1:
        return None
    visit = visits.pop()
    return check_id(visit, "visit") if visit is not None else None


def cmd_enroll(args: argparse.Namespace, store: Store) -> int:
    if store.load_enrollment() is not None and not args.force:
        raise UsageError(f"This machine is already enrolled ({store.enrollment_path}); add --force to replace it.")
    link = parse_link(args.url)
    passphrase = _passphrase(confirm=True)
    chosen = arg_id(args.visit, "visit") if args.visit else None
    api = _log_in(link)
    visit = _login_visit(api)
    if chosen is not None and visit is not None and chosen != visit:
        raise UsageError(f"This link signs in to visit {visit}, not {chosen}.")
    visit = visit or chosen
    me = api.get_json("/api/me")
    person = check_id(me.get("id"), "person")
    keys = DeviceKeys.generate("Ed25519")
    label = args.label or f"parley client on {socket.gethostname()}"[:80]
    answer = api.send_json("POST", "/api/devices", {"label": label, "sig_alg": keys.sig_alg,
                                                     "sig_pub": b64u(keys.sig_pub), "enc_pub": b64u(keys.enc_pub)})
    device = _device(answer["device"])
    if (device.person, device.sig_pub, device.enc_pub) != (person, keys.sig_pub, keys.enc_pub):
        raise Failure("The server registered other keys than this device's.")
    sealed = seal_recovery(keys, person, device.id, passphrase=passphrase)
    enrollment = Enrollment(server=api.server, cookie=api.cookie, person=person, device=device.id, visit=visit,
                            sig_alg=keys.sig_alg, sealed_keys=sealed)
    store.save_enrollment(enrollment)
    pins = assess([device], [], device.id, store.load_pins())
    store.save_pins(pins.pins)
    say(f"Enrolled as {me.get('name', person)}: device {device.id}.")
    say("Compare this safety code with the one other participants see for this device:")
    if visit is None:
        say("This login is not bound to one visit: name it with --visit when you upload, list or download.")
    print(safety_code(device.fingerprint))
    return 0


# ---- the visit's keys and trust -------------------------------------------------------

def _device(value: Any) -> DevicePublic:
    try:
        return DevicePublic(
            id=check_id(value["id"], "device"), person=check_id(value["person"], "person"),
            sig_alg=str(value["sig_alg"]), sig_pub=unb64u(value["sig_pub"]), enc_pub=unb64u(value["enc_pub"]),
        )
    except (KeyError, TypeError) as err:
        raise Failure(f"The server listed a malformed device ({err}).") from None


@dataclass
class VisitKeys:
    devices: dict[str, DevicePublic]  # every listed device, revoked ones included
    active: dict[str, DevicePublic]
    roles: dict[str, str]  # person -> role
    status: dict[str, Status]


def _visit_keys(session: Client, visit: str) -> VisitKeys:
    answer = session.api.get_json(f"/api/visits/{visit}/keys")
    devices: dict[str, DevicePublic] = {}
    active: dict[str, DevicePublic] = {}
    roles: dict[str, str] = {}
    for person in answer.get("people", []):
        roles[str(person.get("person"))] = str(person.get("role"))
        for raw in person.get("devices", []):
            device = _device(raw)
            devices[device.id] = device
            if not raw.get("revoked_at"):
                active[device.id] = device
    statements = [Statement(str(s.get("kind")), str(s.get("body")), str(s.get("signature")))
                  for s in answer.get("statements", [])]
    if session.me.id in devices and session.me.id not in active:
        raise TrustError("This device was revoked: it can no longer upload or read documents. Enroll this machine "
                         "again with a new link (`parley client enroll --force URL`).")
    mine = active.get(session.me.id)
    if mine is None or mine != session.me:
        raise TrustError("The server does not list this device with its keys (revoked, or keys replaced).")
    result = assess(active.values(), statements, session.me.id, session.store.load_pins())
    for warning in result.warnings:
        say(f"Warning: {warning}")
    session.store.save_pins(result.pins)
    return VisitKeys(devices, active, roles, result.status)


def _recipients(keys: VisitKeys, me: DevicePublic) -> list[DevicePublic]:
    """Entitled devices this client may share with: the secretariat, the experts and
    the State under review, and this person's own devices; never one in warning."""
    chosen = [
        d for d in keys.active.values()
        if (keys.roles.get(d.person) in ENTITLED_ROLES or d.person == me.person) and keys.status[d.id].may_receive
    ]
    secretariat = {d.person for d in keys.active.values() if keys.roles.get(d.person) == "secretariat"}
    missing = secretariat - {d.person for d in chosen}
    if missing:
        raise TrustError("No device of a secretariat member may receive this upload (their keys changed without "
                         "verification); ask them to verify their device again.")
    # The uploader's own devices first (the server expects them first in PUT keys).
    return sorted(chosen, key=lambda d: (d.person != me.person, d.id != me.id, d.id))


# ---- upload -------------------------------------------------------------------------

class _Restart(Exception):
    """The recorded state cannot be continued safely: a new version with a new key."""


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = read_json(path)
    except FormatError:
        return None
    return state if isinstance(state, dict) and state.get("v") == 1 else None


def _server_upload(session: Client, state: dict[str, Any] | None) -> dict[str, Any] | None:
    if state is None:
        return None
    try:
        answer = session.api.get_json(f"/api/versions/{check_id(state.get('version'), 'version')}/upload")
    except (ApiError, FormatError) as err:
        if isinstance(err, ApiError) and err.status not in (403, 404, 410):
            raise
        return None
    return answer if isinstance(answer, dict) else None


def _new_version(session: Client, visit: str, session_id: str, path: Path, size: int,
                 state_path: Path) -> dict[str, Any]:
    n_chunks = max(1, -(-size // CHUNK))
    try:
        created = session.api.send_json("POST", f"/api/visits/{visit}/documents", {
            "session": session_id, "articles": [], "chunks": n_chunks, "size": ciphertext_size(size),
        })
    except ApiError as err:
        if err.status == 413:
            raise Failure(f"{path.name} is too large for this server ({size} bytes; the server says: "
                          f"{err.message})") from None
        raise
    document, version = check_id(created.get("document"), "document"), check_id(created.get("version"), "version")
    if created.get("chunk_size") != CHUNK:
        raise Failure(f"The server wants chunks of {created.get('chunk_size')} bytes; this client writes {CHUNK}.")
    key = new_content_key()
    state = {"v": 1, "file": str(path.resolve()), "size": size, "visit": visit, "session": session_id,
             "document": document, "version": version, "chunk_size": CHUNK, "plain": {},
             # K, wrapped to this device: a resumed upload continues with the same key.
             "wrapped_self": b64u(wrap_key(key, session.keys.enc_pub, visit, version, session.me.id))}
    write_json(state_path, state)
    return state


def _upload_one(session: Client, visit: str, session_id: str, path: Path, show: Callable[[str], None]) -> str:
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UsageError(f"Cannot read {path}: {err.strerror}.") from None
    if not path.is_file():
        raise UsageError(f"{path} is not a file.")
    state_path = session.store.upload_state_path(session.enrollment.server, visit, session_id, path)
    for _attempt in range(2):
        state = _read_state(state_path)
        server = _server_upload(session, state)
        decision = resume_decision(state, size, server)
        if decision == Start.DONE and state is not None:
            state_path.unlink(missing_ok=True)
            return str(state["document"])
        if decision == Start.NEW or state is None or server is None:
            state = _new_version(session, visit, session_id, path, size, state_path)
            server = {"chunks": {}, "keys": [], "complete": False}
        else:
            show(f"{path.name}: resuming the interrupted upload")
        try:
            return _send(session, path, state, state_path, server, show)
        except _Restart:
            show(f"{path.name} changed since the interrupted upload: starting over with a new key")
            state_path.unlink(missing_ok=True)
    raise Failure(f"{path.name} keeps changing while it is uploaded; upload it when it is finished.")


def _send(session: Client, path: Path, state: dict[str, Any], state_path: Path, server: dict[str, Any],
          show: Callable[[str], None]) -> str:
    visit, version, document = state["visit"], state["version"], state["document"]
    key = unwrap_key(unb64u(state["wrapped_self"]), session.keys.enc_private, visit, version, session.me.id)
    stored: dict[str, str] = {str(k): str(v) for k, v in (server.get("chunks") or {}).items()}
    plain: dict[str, str] = state["plain"]

    def before_encrypt(chunk: PlainChunk) -> None:
        digest = b64u(chunk.sha256)
        if plaintext_decision(plain.get(str(chunk.index)), digest) == Chunk.RESTART:
            raise _Restart
        if str(chunk.index) not in plain:
            plain[str(chunk.index)] = digest
            write_json(state_path, state)  # recorded before these bytes are ever encrypted and sent

    hashes: list[bytes] = []
    total = max(1, -(-int(state["size"]) // CHUNK))
    try:
        for chunk in encrypt_file(key, version, path, before_encrypt=before_encrypt):
            hashes.append(chunk.sha256)
            action = ciphertext_decision(stored.get(str(chunk.index)), b64u(chunk.sha256))
            if action == Chunk.RESTART:
                raise _Restart
            if action == Chunk.SEND:
                answer = session.api.request(
                    "PUT", f"/api/versions/{version}/chunks/{chunk.index}", body=chunk.ciphertext,
                    headers={"Content-Type": "application/octet-stream"},
                ).json()
                if answer.get("sha256") != b64u(chunk.sha256):
                    raise Failure(f"The server stored other bytes for chunk {chunk.index} of {path.name}.")
            show(f"{path.name}: {chunk.index + 1}/{total} chunks")
    except FormatError:
        raise _Restart from None  # the file changed size while it was read
    size = int(state["size"])
    if len(hashes) != total:
        raise _Restart
    keys = _visit_keys(session, visit)
    recipients = _recipients(keys, session.me)
    meta_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    meta = seal_meta(key, version, {"name": path.name, "type": meta_type, "size": size, "description": ""})
    session.api.send_json("PUT", f"/api/versions/{version}/keys", {"keys": [
        {"device": d.id, "wrapped": b64u(wrap_key(key, d.enc_pub, visit, version, d.id))} for d in recipients
    ]})
    body = make_manifest(
        visit_id=visit, document_id=document, version_id=version, chunk_hashes=hashes, size=ciphertext_size(size),
        meta_ciphertext=meta, commit=key_commit(key, version), uploader=session.me.id,
        uploader_fp=session.me.fingerprint, recipients=[Recipient(d.id, d.person, d.fingerprint) for d in recipients],
    )
    text, signature = sign_statement(session.keys, body)
    # docs/evidence.md has the sealed metadata in POST .../documents, but it is sealed
    # with the version id that answer issues; it travels with completion here instead.
    session.api.send_json("POST", f"/api/versions/{version}/complete",
                          {"manifest": text, "signature": signature, "meta": b64u(meta)})
    state_path.unlink(missing_ok=True)
    return str(document)


def cmd_upload(args: argparse.Namespace, store: Store) -> int:
    paths = [Path(p) for p in args.files]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such file.")
    session_id = arg_id(args.session, "session")
    session = _unlock(store)
    visit = session.visit(args.visit)
    for path in paths:
        print(_upload_one(session, visit, session_id, path, say), flush=True)
    return 0


# ---- list and download ----------------------------------------------------------------

def _documents(session: Client, visit: str, session_id: str | None) -> list[dict[str, Any]]:
    query = f"?session={arg_id(session_id, 'session')}" if session_id else ""
    answer = session.api.get_json(f"/api/visits/{visit}/documents{query}")
    documents = answer.get("documents", []) if isinstance(answer, dict) else []
    return [d for d in documents if isinstance(d, dict)]


def _open_document(session: Client, visit: str, keys: VisitKeys, document: dict[str, Any]) -> Any:
    version = document.get("version") or {}
    wrapped = next((k.get("wrapped") for k in version.get("keys", []) if k.get("device") == session.me.id), None)
    if not wrapped:
        raise TrustError("This device holds no key for it (enrolled after the upload: ask someone to share it).")
    uploader_id = str((document.get("uploader") or {}).get("device"))
    uploader = keys.devices.get(uploader_id)
    if uploader is None:
        raise TrustError("The uploading device is not listed in this visit.")
    status = keys.status.get(uploader_id)
    if status is None or not status.may_receive:
        say(f"Warning: document {document.get('id')}: unverified uploader (its device is revoked or its key changed).")
    shares = [(str(s.get("body")), str(s.get("signature"))) for s in version.get("shares", [])]
    return check_manifest(
        str(version.get("manifest")), str(version.get("signature")), visit_id=visit,
        version_id=check_id(version.get("id"), "version"), document_id=check_id(document.get("id"), "document"),
        uploader=uploader, me=session.me, keys=session.keys, wrapped=unb64u(str(wrapped)),
        meta_ciphertext=unb64u(str(version.get("meta"))), shares=shares, devices=keys.devices,
    )


def cmd_list(args: argparse.Namespace, store: Store) -> int:
    session = _unlock(store)
    visit = session.visit(args.visit)
    keys = _visit_keys(session, visit)
    for document in _documents(session, visit, args.session):
        try:
            checked = _open_document(session, visit, keys, document)
        except EvidenceError as err:
            say(f"Skipped document {document.get('id')}: {err}")
            continue
        print(f"{document['id']}\t{safe_file_name(checked.meta['name'])}", flush=True)
    return 0


def cmd_download(args: argparse.Namespace, store: Store) -> int:
    document_id = arg_id(args.document, "document")
    session = _unlock(store)
    visit = session.visit(args.visit)
    keys = _visit_keys(session, visit)
    document = next((d for d in _documents(session, visit, None) if d.get("id") == document_id), None)
    if document is None:
        raise Failure(f"Document {document_id} is not in this visit, or not one this person may read.")
    checked = _open_document(session, visit, keys, document)
    name = safe_file_name(checked.meta["name"])
    dest = Path(args.output) if args.output else Path.cwd() / name
    if dest.is_dir():
        dest = dest / name
    if dest.exists():
        raise UsageError(f"{dest} already exists; nothing was overwritten.")
    with session.api.stream(f"/api/versions/{checked.manifest.version}/content") as response:
        decrypt_to_file(checked, response, dest,
                        on_chunk=lambda done, total: say(f"{name}: {done}/{total} chunks verified"))
    print(dest, flush=True)
    return 0


# ---- the command ----------------------------------------------------------------------

def build_parser(prog: str = "parley client") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Parley's evidence room from the command line: files are encrypted and "
        "decrypted on this machine; the server sees only ciphertext. Keys live in "
        "$XDG_CONFIG_HOME/parley (~/.config/parley), sealed with a passphrase "
        f"(asked for, or from {PASSPHRASE_ENV}).",
    )
    sub = parser.add_subparsers(dest="client_command", required=True)
    enroll = sub.add_parser(
        "enroll", help="make this machine one of your devices, from an invitation or an \"add a device\" link",
        description="Spends the link, creates this device's keys and registers them, and prints the device's "
        "safety code. There is no recovery code: if the keys or the passphrase are lost, enroll again with a "
        "new link (documents shared before then are shared again to the new device).",
    )
    enroll.add_argument("url", metavar="URL")
    enroll.add_argument("--label", help="the device's name as others see it")
    enroll.add_argument("--force", action="store_true", help="replace an existing enrollment on this machine")
    enroll.add_argument("--visit", metavar="ID", help="the visit to work in by default (needed only when the link's "
                        "login is not bound to one visit, such as a link made from a password login)")
    enroll.set_defaults(func=cmd_enroll)

    upload = sub.add_parser("upload", help="encrypt and upload files to a session; prints each document id")
    upload.add_argument("--session", required=True, metavar="ID")
    upload.add_argument("--visit", metavar="ID", help="the visit (default: the one this device was enrolled in)")
    upload.add_argument("files", nargs="+", metavar="FILE")
    upload.set_defaults(func=cmd_upload)

    download = sub.add_parser("download", help="check, download and decrypt a document")
    download.add_argument("document", metavar="DOC_ID")
    download.add_argument("--output", metavar="PATH", help="file or directory to save to (default: its own name here)")
    download.add_argument("--visit", metavar="ID")
    download.set_defaults(func=cmd_download)

    listing = sub.add_parser("list", help="the documents this device can read: id, tab, file name")
    listing.add_argument("--session", metavar="ID")
    listing.add_argument("--visit", metavar="ID")
    listing.set_defaults(func=cmd_list)
    return parser


def _fail(code: int, message: str) -> NoReturn:
    say(f"parley client: {message}")
    raise SystemExit(code)


def main(argv: list[str] | None = None, *, prog: str = "parley client", store: Store | None = None) -> int:
    os.umask(0o077)
    args = build_parser(prog).parse_args(argv)  # exits 2 on bad arguments
    try:
        result: int = args.func(args, store or Store())
        return result
    except UsageError as err:
        _fail(2, str(err))
    except FormatError as err:
        _fail(2 if args.client_command == "enroll" else 1, str(err))
    except ApiError as err:
        if err.status == 401 and args.client_command != "enroll":
            _fail(1, "The server no longer accepts this machine's login (it ended, expired, was signed out, or "
                  "its visit closed). Enroll again with a new link: `parley client enroll --force URL`.")
        _fail(1, str(err))
    except (EvidenceError, Failure) as err:
        _fail(1, str(err))
    except OSError as err:
        _fail(1, f"{err.strerror or err} ({err.filename or 'network'})")
    except KeyboardInterrupt:
        _fail(1, "interrupted; run the same upload again to resume it.")
