"""The ``parley`` command: serve, db upgrade, demo, admin create, audit verify and
checkpoint, keys show, schedule, and ``client`` (the evidence room's command-line
client, which lives in parley_client and is imported only when asked for)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from server.config import DEFAULT_HOST, DEFAULT_PORT, Settings, load_settings
from server.core.errors import DomainError
from server.db import migrate
from server.db.session import make_engine, make_sessionmaker

T = TypeVar("T")


async def _with_db(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    from server.audit.service import session_info

    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine, info=session_info(settings))() as db:
            return await work(db)
    finally:
        await engine.dispose()


def _require_schema(settings: Settings) -> None:
    if asyncio.run(migrate.pending(settings.database_url)):
        sys.exit("The database schema is not current. Run `parley db upgrade` first.")


def cmd_serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from server.app import create_app

    settings = load_settings()
    settings = settings.with_bind(args.host or settings.host, args.port or settings.port)
    if settings.auto_migrate:
        migrate.upgrade(settings.database_url)
    else:
        _require_schema(settings)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    print(f"Parley is serving on {settings.base_url} (database: {settings.database_url.split('://')[0]})", flush=True)
    app = create_app(settings)
    # Everything allocated at start-up lives as long as the process: keep it out of
    # every later collection (a full collection of ~175k objects costs ~100 ms, seen
    # as latency spikes in large rooms), and collect the young generation less often.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    web.run_app(app, host=settings.host, port=settings.port, print=None, shutdown_timeout=5)


def cmd_db_upgrade(_: argparse.Namespace) -> None:
    settings = load_settings()
    migrate.upgrade(settings.database_url)
    print("Database schema is at the latest revision.")


def cmd_demo(args: argparse.Namespace) -> None:
    from server.demo.load import load_demo

    settings = load_settings()
    settings = settings.with_bind(args.host or settings.host, args.port or settings.port)
    if settings.auto_migrate:
        migrate.upgrade(settings.database_url)
    else:
        _require_schema(settings)
    result = asyncio.run(_with_db(settings, lambda db: load_demo(db, settings)))
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return
    print(f"Demo visit loaded: {settings.base_url}/visits/{result['visit_id']}")
    print("Personal invitation links (each works once, then the browser stays signed in):")
    for p in result["participants"]:
        print(f"  {p['role']:<12} {p['name']:<20} {p['delegation'] or '':<34} {p['invite_url']}")


def cmd_admin_create(args: argparse.Namespace) -> None:
    from server.people.service import create_admin

    settings = load_settings()
    _require_schema(settings)
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Repeat the password: "):
            sys.exit("The passwords differ.")
    else:
        password = sys.stdin.readline().rstrip("\n")

    async def work(db: Any) -> None:
        await create_admin(db, args.email, password)
        await db.commit()

    try:
        asyncio.run(_with_db(settings, work))
    except DomainError as err:
        sys.exit(err.message)
    print(f"Secretariat account {args.email} can now log in at /login.")


def cmd_audit_verify(args: argparse.Namespace) -> None:
    from server.audit.heads import HeadsFile, parse_heads
    from server.audit.service import AuditConfig
    from server.audit.verify import verify
    from server.core.signing import PublicKey, key_path, load_public_key

    settings = load_settings()
    _require_schema(settings)
    config = AuditConfig.from_settings(settings)
    try:
        if args.heads:
            heads = parse_heads(Path(args.heads).read_text())
            heads_from = args.heads
        else:
            heads = HeadsFile(config.heads_file).read()
            heads_from = str(config.heads_file)
        public = PublicKey.from_text(Path(args.public_key).read_text()) if args.public_key else None
        public = public or load_public_key(key_path(settings))
    except (OSError, ValueError, KeyError) as err:
        sys.exit(f"Cannot read the heads or the public key: {err}")
    report = asyncio.run(_with_db(settings, lambda db: verify(db, config.key, heads=heads, public_key=public)))
    if not heads:
        print(
            f"Note: no recorded heads in {heads_from}; a cut-off tail cannot be detected "
            "(with PARLEY_AUDIT_HEADS=log, pass the log lines with --heads)."
        )
    if report.legacy_entries:
        print(
            f"Note: {report.legacy_entries} entries from before keyed hashing (chain legacy) "
            "were checked with plain SHA-256: consistent, but not proof against someone "
            "with database access."
        )
    if report.ok:
        print(
            f"Audit log intact: {report.entries} entries in {len(report.chains)} chains, "
            f"{report.heads_checked} recorded heads, {report.checkpoints} signed checkpoints."
        )
        return
    for problem in report.problems:
        print(f"Audit log BROKEN: {problem}.", file=sys.stderr)
    sys.exit(1)


def cmd_audit_checkpoint(_: argparse.Namespace) -> None:
    from server.audit.service import checkpoint_all

    settings = load_settings()
    _require_schema(settings)

    async def work(db: Any) -> int:
        made = await checkpoint_all(db)
        await db.commit()
        return len(made)

    made = asyncio.run(_with_db(settings, work))
    print(f"Signed {made} new checkpoints; chain heads recorded ({settings.audit_heads}).")


def cmd_keys_show(_: argparse.Namespace) -> None:
    from server.core.signing import SigningKey, key_path

    settings = load_settings()
    path = key_path(settings)
    public = SigningKey.load_or_create(path).public_key
    print(f"Signing key: {path}")
    print(f"Public key (Ed25519, base64): {public.base64}")
    print(f"Fingerprint (SHA-256): {public.fingerprint}")
    print(public.pem, end="")


def cmd_schedule(args: argparse.Namespace) -> None:
    from schedules.cli import main as schedule_main

    sys.exit(schedule_main(args.rest, prog="parley schedule"))


def cmd_client(args: argparse.Namespace) -> None:
    # The one place server code names parley_client: the command dispatches to it. No
    # server module imports it (the server has no code path that decrypts anything).
    from parley_client.cli import main as client_main

    sys.exit(client_main(args.rest, prog="parley client"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley: confidential virtual country visits.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (applies pending migrations first)")
    serve.add_argument("--host", help=f"address to bind (default {DEFAULT_HOST} or PARLEY_HOST)")
    serve.add_argument("--port", type=int, help=f"port (default {DEFAULT_PORT} or PARLEY_PORT)")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply Alembic migrations").set_defaults(func=cmd_db_upgrade)

    demo = sub.add_parser("demo", help="load the demo visit and print fresh invitation links")
    demo.add_argument("--json", action="store_true", help="print JSON")
    demo.add_argument("--host", help="host the links should point to (as for serve)")
    demo.add_argument("--port", type=int, help="port the links should point to (as for serve)")
    demo.set_defaults(func=cmd_demo)

    admin = sub.add_parser("admin", help="secretariat accounts")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="create a secretariat account (password from stdin or prompt)")
    create.add_argument("--email", required=True)
    create.set_defaults(func=cmd_admin_create)

    audit = sub.add_parser("audit", help="audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the chains, recorded heads and signed checkpoints")
    verify.add_argument(
        "--heads", metavar="FILE",
        help="heads to check against: a heads file, or log lines of logger parley.audit.head "
        "(default: the heads file under the var directory)",
    )
    verify.add_argument(
        "--public-key", metavar="FILE",
        help="public key (PEM or base64, as `parley keys show` prints) to check checkpoints with "
        "(default: the server's signing key)",
    )
    verify.set_defaults(func=cmd_audit_verify)
    audit_sub.add_parser(
        "checkpoint", help="sign a checkpoint at the head of every chain and record the heads"
    ).set_defaults(func=cmd_audit_checkpoint)

    keys = sub.add_parser("keys", help="the server's signing key")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "show", help="print the public key and its fingerprint (creates the key on first use)"
    ).set_defaults(func=cmd_keys_show)

    schedule = sub.add_parser(
        "schedule", help="time-zone scheduling: `parley schedule suggest PROBLEM.json [--alternatives K]`",
        add_help=False,
    )
    schedule.add_argument("rest", nargs=argparse.REMAINDER)
    schedule.set_defaults(func=cmd_schedule)

    client = sub.add_parser(
        "client", help="the evidence room from the command line: `parley client enroll|upload|list|download ...`",
        add_help=False,
    )
    client.add_argument("rest", nargs=argparse.REMAINDER)
    client.set_defaults(func=cmd_client)
    return parser


def main(argv: list[str] | None = None) -> None:
    # Everything Parley writes (database, -wal, -shm, secret key, logs, storage) is
    # confidential: nothing it creates is readable by other users of the machine.
    os.umask(0o077)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["client"]:
        # Everything after "client" is the client's, options such as --help included
        # (argparse's REMAINDER does not take a leading option).
        cmd_client(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
