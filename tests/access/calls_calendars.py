"""How the policy matrix calls this domain's routes (merged into test_policy_matrix)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def _no_body(env: Any, session: Any) -> None:
    return None


def _dry_run(env: Any, session: Any) -> dict[str, Any]:
    # The matrix server has SMTP off, where a real send is a 409 by design; a dry run
    # goes through the same guard, composes and checks the same message, and answers 200.
    # The real send path is tested in tests/mail against an SMTP sink.
    return {"membership_id": env.world.members["expert2"].membership_id, "dry_run": True}


# (method, path) -> body builder (env, session) -> JSON body or None
ROUTE_CALLS: dict[tuple[str, str], Callable[[Any, Any], Any]] = {
    ("GET", "/visits/{visit_id}/calendar.ics"): _no_body,
    ("GET", "/visits/{visit_id}/calendar"): _no_body,
    ("POST", "/visits/{visit_id}/calendar/new"): _no_body,
    ("POST", "/visits/{visit_id}/calendar/revoke"): _no_body,
    ("GET", "/api/visits/{visit_id}/calendar-feed"): _no_body,
    ("POST", "/api/visits/{visit_id}/calendar-feed"): _no_body,
    ("POST", "/api/visits/{visit_id}/calendar-feed/revoke"): _no_body,
    # Without ?membership_id= the text is composed for the caller (who may attend).
    ("GET", "/api/sessions/{session_id}/invitation-email"): _no_body,
    ("GET", "/sessions/{session_id}/invitation-email"): _no_body,
    ("POST", "/api/sessions/{session_id}/invitation-email/send"): _dry_run,
}
# (method, path) of routes with action=None (they check what they need themselves)
PUBLIC_ROUTES: set[tuple[str, str]] = {("GET", "/calendar/{token}.ics")}
# placeholder name -> async (env, actor key, session) -> value for the URL
PLACEHOLDERS: dict[str, Callable[[Any, str, Any], Awaitable[str]]] = {}
