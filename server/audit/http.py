"""The audit log over HTTP: a visit's latest entries for the secretariat."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.access.guard import VisitScope
from server.access.policy import Action
from server.audit import service as audit
from server.audit.models import AuditEntry
from server.core.clock import iso_z
from server.web.keys import SESSIONS
from server.web.routing import RouteTable

routes = RouteTable()


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    # ``seq`` counts within ``chain`` (the visit's own chain, or "legacy" for entries
    # written before per-visit chains).
    return {
        "chain": entry.chain,
        "seq": entry.seq,
        "at": iso_z(entry.at),
        "action": entry.action,
        "actor": entry.actor_person_id,
        "subject": entry.subject,
        "data": entry.data,
        "hash": entry.hash,
    }


@routes.get("/api/visits/{visit_id}/audit", action=Action.AUDIT_VIEW)
async def visit_audit_api(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    """The visit's latest 500 entries, newest first."""
    async with request.app[SESSIONS]() as db:
        entries = await audit.visit_entries(db, scope.visit.id)
    return web.json_response({"entries": [entry_json(e) for e in entries]})
