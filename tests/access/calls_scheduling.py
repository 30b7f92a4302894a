"""How the policy matrix calls this domain's routes (merged into test_policy_matrix).

Scheduler runs in the matrix schedule only the world's open session: the shared matrix
visit gathers hundreds of fresh sessions, which stay where they are (as fixed blocks).
Each ``{run_id}`` is a fresh run, so an acceptance never meets an accepted or stale one.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from server.core.clock import utcnow
from server.scheduling import problem as problems
from server.scheduling import service
from server.visits.models import Visit

Body = Callable[[Any, Any], Any]


def _no_body(env: Any, session: Any) -> None:
    return None


def _no_holidays_form(env: Any, session: Any) -> dict[str, Any]:
    # The page form with one field: the actor's (empty) holidays stay empty.
    return {"holidays": ""}


def _no_holidays(env: Any, session: Any) -> dict[str, Any]:
    return {"holidays": []}


def _import(env: Any, session: Any) -> dict[str, Any]:
    return {"participants": [{"id": env.world.members["expert2"].membership_id, "holidays": []}]}


def _import_form(env: Any, session: Any) -> dict[str, Any]:
    return {"data": json.dumps(_import(env, session))}


def _run(env: Any, session: Any) -> dict[str, Any]:
    return {"session_ids": [env.world.sessions["open"]], "alternatives": 1, "keep_order": True}


def _best(env: Any, session: Any) -> dict[str, Any]:
    return {"index": 0}


# (method, path) -> body builder (env, session) -> JSON body or None
ROUTE_CALLS: dict[tuple[str, str], Body] = {
    # The visit page's agenda list (server/visits/http.py), refreshed live by visit.js.
    ("GET", "/visits/{visit_id}/agenda-fragment"): _no_body,
    ("GET", "/visits/{visit_id}/availability"): _no_body,
    ("POST", "/visits/{visit_id}/availability"): _no_holidays_form,
    ("GET", "/visits/{visit_id}/participants/{membership_id}/availability"): _no_body,
    ("POST", "/visits/{visit_id}/participants/{membership_id}/availability"): _no_holidays_form,
    ("GET", "/api/visits/{visit_id}/availability"): _no_body,
    ("PUT", "/api/visits/{visit_id}/availability"): _no_holidays,
    ("GET", "/api/visits/{visit_id}/participants/{membership_id}/availability"): _no_body,
    ("PUT", "/api/visits/{visit_id}/participants/{membership_id}/availability"): _no_holidays,
    ("POST", "/api/visits/{visit_id}/availability/import"): _import,
    ("POST", "/visits/{visit_id}/availability/import"): _import_form,
    ("GET", "/visits/{visit_id}/schedule"): _no_body,
    ("POST", "/visits/{visit_id}/schedule"): _run,
    ("GET", "/visits/{visit_id}/schedule/runs/{run_id}"): _no_body,
    ("POST", "/visits/{visit_id}/schedule/runs/{run_id}/accept"): _best,
    ("POST", "/api/visits/{visit_id}/schedule/runs"): _run,
    ("GET", "/api/visits/{visit_id}/schedule/runs/{run_id}"): _no_body,
    ("POST", "/api/visits/{visit_id}/schedule/runs/{run_id}/accept"): _best,
}
# (method, path) of routes with action=None (they check what they need themselves)
PUBLIC_ROUTES: set[tuple[str, str]] = set()


async def _fresh_run(env: Any, key: str, session: Any) -> str:
    """A new run of the world's visit (its open session only), not accepted."""
    async with env.sessions() as db:
        visit = await db.get(Visit, env.world.visit_id)
        assert visit is not None
        agenda = await problems.agenda_sessions(db, visit.id)
        first, last = problems.default_window(agenda, visit.timezone, utcnow().date())
        start, end = problems.window_from_dates(first, last, visit.timezone)
        options = problems.RunOptions(start, end, keep_order=True, session_ids=(env.world.sessions["open"],),
                                      alternatives=1)
        run = await service.run_scheduler(db, visit, options,
                                          actor_person_id=env.world.members["secretariat"].person_id)
        return run.id


# placeholder name -> async (env, actor key, session) -> value for the URL
PLACEHOLDERS: dict[str, Callable[[Any, str, Any], Awaitable[str]]] = {"run_id": _fresh_run}
