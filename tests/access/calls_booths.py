"""How the policy matrix calls the booth routes (merged into test_policy_matrix).

Each ``{booth_id}`` is a fresh English booth staffed by the world's two interpreters
(earlier booths of the matrix visit are removed first), so a hand-over always has
someone to hand over to. Creations use languages no fresh booth takes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count
from typing import Any

from sqlalchemy import delete

from server.booths import service as booths
from server.booths.models import Booth

Body = Callable[[Any, Any], Any]
_LANGUAGES = ("de", "it", "ja", "ko", "sw", "id", "tr", "pl", "nl", "hi")
_next = count()


def _no_body(env: Any, session: Any) -> None:
    return None


def _new_booth(env: Any, session: Any) -> dict[str, Any]:
    return {"language": _LANGUAGES[next(_next) % len(_LANGUAGES)], "interpreters": []}


def _same_language(env: Any, session: Any) -> dict[str, Any]:
    return {"language": "en"}


def _same_interpreters(env: Any, session: Any) -> dict[str, Any]:
    members = env.world.members
    return {"language": "en", "interpreters": [members["interpreter"].membership_id,
                                               members["interpreter2"].membership_id]}


# (method, path) -> body builder (env, session) -> JSON body or None
ROUTE_CALLS: dict[tuple[str, str], Body] = {
    ("GET", "/api/visits/{visit_id}/booths"): _no_body,
    ("POST", "/api/visits/{visit_id}/booths"): _new_booth,
    ("PATCH", "/api/visits/{visit_id}/booths/{booth_id}"): _same_language,
    ("DELETE", "/api/visits/{visit_id}/booths/{booth_id}"): _no_body,
    ("POST", "/api/visits/{visit_id}/booths/{booth_id}/handover"): _no_body,
    ("GET", "/visits/{visit_id}/booths"): _no_body,
    ("POST", "/visits/{visit_id}/booths"): _new_booth,
    ("POST", "/visits/{visit_id}/booths/{booth_id}"): _same_interpreters,
    ("POST", "/visits/{visit_id}/booths/{booth_id}/handover"): _no_body,
    ("POST", "/visits/{visit_id}/booths/{booth_id}/delete"): _no_body,
}
# (method, path) of routes with action=None (they check what they need themselves)
PUBLIC_ROUTES: set[tuple[str, str]] = set()


async def _fresh_booth(env: Any, key: str, session: Any) -> str:
    members = env.world.members
    async with env.sessions() as db:
        await db.execute(delete(Booth).where(Booth.visit_id == env.world.visit_id))
        booth = await booths.create_booth(
            db, env.world.visit_id, "en",
            [members["interpreter"].membership_id, members["interpreter2"].membership_id],
            actor_person_id=members["secretariat"].person_id,
        )
        await db.commit()
        return booth.id


# placeholder name -> async (env, actor key, session) -> value for the URL
PLACEHOLDERS: dict[str, Callable[[Any, str, Any], Awaitable[str]]] = {"booth_id": _fresh_booth}
