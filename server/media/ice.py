"""The ICE servers a browser is given, with short-lived TURN credentials.

With ``PARLEY_TURN_SECRET`` (coturn's ``use-auth-secret`` / ``static-auth-secret``), each
TURN entry carries a credential made for one participant that expires: the username is
``<expiry unix time>:<participant>`` and the credential is the base64 HMAC-SHA1 of the
username under the shared secret (the "TURN REST API" scheme coturn implements). No
static TURN password is ever sent to every browser.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from server.config import IceServer

TURN_CREDENTIAL_LIFETIME = timedelta(hours=12)


def turn_credential(secret: str, participant: str, now: datetime, lifetime: timedelta = TURN_CREDENTIAL_LIFETIME) -> tuple[str, str]:
    """(username, credential) for one participant, valid until ``now + lifetime``."""
    expires = int((now + lifetime).timestamp())
    username = f"{expires}:{participant}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for(
    servers: tuple[IceServer, ...], turn_secret: str | None, participant: str, now: datetime
) -> list[dict[str, Any]]:
    """The RTCIceServer list for one participant's browser."""
    out: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.is_turn and turn_secret is not None:
            entry["username"], entry["credential"] = turn_credential(turn_secret, participant, now)
        elif server.username is not None and server.credential is not None:
            entry["username"], entry["credential"] = server.username, server.credential
        out.append(entry)
    return out
