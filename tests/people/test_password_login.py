"""Password login (outside probe, defects 3 and 6): Argon2 off the event loop, growing
delays per account and per address counted in the database (so across processes),
the 429 vocabulary, a bounded audit trail of failures, and no open redirect."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.config import Settings
from server.core import clock
from server.people import service as people
from server.people import throttle
from server.people.models import LoginThrottle
from server.people.throttle import ThrottlePolicy, address_key
from tests.conftest import LiveServer, free_port, settings_for, start_server

PASSWORD = "a long secretariat passphrase"
EMAIL = "head.secretariat@example.org"


@pytest.fixture
async def admin(sessions: Any) -> str:
    async with sessions() as db:
        await people.create_admin(db, EMAIL, PASSWORD)
        await db.commit()
    return EMAIL


@pytest.fixture
async def throttled(settings: Settings) -> AsyncIterator[LiveServer]:
    """A server whose throttle starts early: after 2 failures per account, 4 per address."""
    live, runner = await start_server(
        settings_for(settings, login_throttle_account_after=2, login_throttle_address_after=4)
    )
    yield live
    await runner.cleanup()


async def attempt(
    server: LiveServer, email: str, password: str, *, as_json: bool = False, next_: str = "/"
) -> tuple[int, dict[str, str], str]:
    headers = {"Origin": server.origin}
    if as_json:
        headers["Accept"] = "application/json"
    async with aiohttp.ClientSession(base_url=server.url) as http:
        async with http.post(
            "/login", data={"email": email, "password": password, "next": next_},
            headers=headers, allow_redirects=False,
        ) as r:
            return r.status, dict(r.headers), await r.text()


async def test_failures_throttle_the_account_with_growing_delays(settings: Settings, admin: str) -> None:
    live, runner = await start_server(settings_for(settings, login_throttle_account_after=2))
    try:
        await _growing_delays(live, admin)
    finally:
        await runner.cleanup()


async def _growing_delays(throttled: LiveServer, admin: str) -> None:
    clock.freeze()  # only the shifts below move time: a slow machine must not end a block
    for _ in range(2):
        assert (await attempt(throttled, admin, "wrong password!"))[0] == 401
    # The third attempt is still checked (and fails), and blocks the account for 1 s.
    assert (await attempt(throttled, admin, "wrong password!"))[0] == 401
    status, headers, body = await attempt(throttled, admin, PASSWORD, as_json=True)
    assert status == 429 and headers["Retry-After"] == "1"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "retry_after"}
    assert error["code"] == "rate_limited" and error["retry_after"] == 1
    # The form gets the wait in words, and a 429 too.
    status, headers, page = await attempt(throttled, admin, PASSWORD)
    assert status == 429 and "Retry-After" in headers
    assert 'role="alert"' in page and "Please wait 1 second and try again." in page
    # Each further failure doubles the delay: 2 s, then 4 s.
    clock.shift(timedelta(seconds=1.5))
    assert (await attempt(throttled, admin, "wrong password!"))[0] == 401
    assert (await attempt(throttled, admin, PASSWORD))[1]["Retry-After"] in ("1", "2")
    clock.shift(timedelta(seconds=2.5))
    assert (await attempt(throttled, admin, "wrong password!"))[0] == 401
    assert (await attempt(throttled, admin, PASSWORD))[1]["Retry-After"] in ("3", "4")
    # Once the wait is over, the right password works and clears the account's count.
    clock.shift(timedelta(seconds=4.5))
    assert (await attempt(throttled, admin, PASSWORD))[0] == 303
    for _ in range(2):
        assert (await attempt(throttled, admin, "wrong password!"))[0] == 401


async def test_the_delay_has_a_cap_and_shows_in_minutes(settings: Settings, admin: str) -> None:
    live, runner = await start_server(settings_for(
        settings, login_throttle_account_after=1, login_throttle_base_seconds=100, login_throttle_max_seconds=900
    ))
    try:
        assert (await attempt(live, admin, "wrong password!"))[0] == 401  # free
        for wait in (100, 200, 400, 800, 900, 900):
            assert (await attempt(live, admin, "wrong password!"))[0] == 401
            status, headers, page = await attempt(live, admin, PASSWORD)
            # (the wait runs from the failure: a slow test machine may have used a second)
            assert status == 429 and wait - 3 <= int(headers["Retry-After"]) <= wait, (wait, headers)
            clock.shift(timedelta(seconds=wait + 1))
        assert "Please wait 15 minutes and try again." in page
    finally:
        await runner.cleanup()


async def test_one_address_is_throttled_across_accounts(throttled: LiveServer, admin: str) -> None:
    for n in range(5):  # four free, the fifth blocks the address
        assert (await attempt(throttled, f"guess{n}@example.org", "whatever"))[0] == 401
    status, headers, _ = await attempt(throttled, "another@example.org", "whatever", as_json=True)
    assert status == 429 and int(headers["Retry-After"]) >= 1
    # Even the right password of another account waits: the address is blocked.
    assert (await attempt(throttled, admin, PASSWORD))[0] == 429


async def test_counts_are_shared_by_server_processes(settings: Settings, admin: str, sessions: Any) -> None:
    changed = dict(login_throttle_account_after=2)
    first, r1 = await start_server(settings_for(settings, **changed))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    second, r2 = await start_server(
        settings_for(settings, port=port, base_url=base, allowed_origins=(base,), **changed)
    )
    try:
        for server in (first, second, first):
            assert (await attempt(server, admin, "wrong password!"))[0] == 401
        assert (await attempt(second, admin, PASSWORD))[0] == 429
        async with sessions() as db:
            row = await db.get(LoginThrottle, f"account:{admin}")
            assert row is not None and row.failures == 3
    finally:
        await r1.cleanup()
        await r2.cleanup()


async def test_failures_of_unknown_accounts_do_not_grow_the_audit_log(
    settings: Settings, sessions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    live, runner = await start_server(settings_for(
        settings, login_throttle_account_after=1000, login_throttle_address_after=1000
    ))
    try:
        for _ in range(12):
            assert (await attempt(live, "nobody@example.org", "guess"))[0] == 401
        async with sessions() as db:
            failed = (await db.execute(select(AuditEntry).where(AuditEntry.action == "login.failed"))).scalars().all()
            assert len(failed) == 1
            assert failed[0].data["email"] == "nobody@example.org" and failed[0].data["address"] == "127.0.0.1"
            row = await db.get(LoginThrottle, "account:nobody@example.org")
            assert row is not None and row.failures == 12 and row.unaudited == 11
        # A new key gets its entry, which carries the count of the address's others.
        assert (await attempt(live, "somebody@example.org", "guess"))[0] == 401
        async with sessions() as db:
            entries = (
                await db.execute(
                    select(AuditEntry).where(AuditEntry.action == "login.failed").order_by(AuditEntry.seq)
                )
            ).scalars().all()
        assert len(entries) == 2 and entries[1].data["unaudited"] == {"account": 0, "address": 11}
        # Keys idle for a whole window are pruned (and audited afresh).
        monkeypatch.setattr(throttle, "_last_prune", -math.inf)
        clock.shift(timedelta(days=1, seconds=1))
        assert (await attempt(live, "third@example.org", "guess"))[0] == 401
        async with sessions() as db:
            keys = set((await db.execute(select(LoginThrottle.key))).scalars())
        assert keys == {"account:third@example.org", "address:127.0.0.1"}
    finally:
        await runner.cleanup()


async def test_healthz_stays_fast_while_logins_are_checked(settings: Settings, admin: str) -> None:
    """Argon2 used to run on the event loop: one login in flight held /healthz for
    ~170 ms. With hashing in threads it answers at once."""
    live, runner = await start_server(settings_for(
        settings, login_throttle_account_after=1000, login_throttle_address_after=1000
    ))
    stop = asyncio.Event()

    async def keep_logging_in() -> None:
        while not stop.is_set():
            await attempt(live, admin, "wrong password, long enough")

    loggers = [asyncio.create_task(keep_logging_in()) for _ in range(3)]
    try:
        await asyncio.sleep(0.3)
        timings = []
        async with aiohttp.ClientSession(base_url=live.url) as http:
            for _ in range(15):
                started = time.perf_counter()
                async with http.get("/healthz") as r:
                    assert r.status == 200
                timings.append(time.perf_counter() - started)
                await asyncio.sleep(0.02)
        assert statistics.median(timings) < 0.1, timings
    finally:
        stop.set()
        await asyncio.gather(*loggers)
        await runner.cleanup()


HOSTILE_NEXT = [
    "//evil.example/x",
    "///evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "/\\/evil.example/x",
    "/%5Cevil.example/x",
    "/%5cevil.example/x",
    "/%2F/evil.example/x",
    "/%2f%2fevil.example",
    "/%252F/evil.example",
    "/\t/evil.example/x",
    "/%09/evil.example/x",
    "/%0a/evil.example/x",
    "/%0D%0A/evil.example",
    "/\x00/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example/",
    "javascript:alert(1)",
    " /evil",
    "evil.example",
    "/\u0085/evil.example",
    "",
]


async def test_login_never_redirects_off_site(sessions: Any, settings: Settings) -> None:
    live, runner = await start_server(settings_for(
        settings, login_throttle_account_after=1000, login_throttle_address_after=1000
    ))
    async with sessions() as db:
        await people.create_admin(db, EMAIL, PASSWORD)
        await db.commit()
    try:
        for target in HOSTILE_NEXT:
            status, headers, _ = await attempt(live, EMAIL, PASSWORD, next_=target)
            assert status == 303 and headers["Location"] == "/", (target, headers.get("Location"))
            async with aiohttp.ClientSession(base_url=live.url) as http:
                async with http.get("/login", params={"next": target}) as r:
                    assert 'name="next" value="/"' in await r.text(), target
        for fine in ("/me", "/visits/abc?tz=utc", "/visits/abc#agenda", "/a%20b"):
            status, headers, _ = await attempt(live, EMAIL, PASSWORD, next_=fine)
            assert headers["Location"] == fine
    finally:
        await runner.cleanup()


def test_address_keys() -> None:
    assert address_key("203.0.113.7") == "203.0.113.7"
    # One host may own a whole IPv6 /64: it is one key.
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_key("") == "unknown"


def test_delays_double_up_to_the_cap() -> None:
    policy = ThrottlePolicy(account_after=5, base_seconds=1, max_seconds=900)
    assert [policy.delay(n, 5) for n in range(1, 10)] == [0, 0, 0, 0, 0, 1, 2, 4, 8]
    assert policy.delay(10_000, 5) == 900
