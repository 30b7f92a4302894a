"""The evidence room's page: ``/visits/{visit}/evidence``.

The page is a shell: everything it shows about documents is fetched and decrypted in
the browser (client_web/js/evidence_room.js) from the API of docs/evidence.md. The
server renders only who is looking, the sessions they may see, and the page's words in
their language (the script has no catalogue of its own).
"""

from __future__ import annotations

from aiohttp import web

from server.access.guard import VisitScope
from server.access.policy import Action, decide
from server.agenda import service as agenda
from server.core.i18n import pick_language
from server.people.models import Person
from server.web.keys import SESSIONS, SETTINGS
from server.web.routing import RouteTable
from server.web.templating import render

routes = RouteTable()


@routes.get("/visits/{visit_id}/evidence", action=Action.EVIDENCE_VIEW, page=True)
async def evidence_page(request: web.Request, scope: VisitScope) -> web.StreamResponse:
    async with request.app[SESSIONS]() as db:
        sessions = await agenda.agenda(db, scope.actor, scope.visit, scope.actor.timezone)
        person = await db.get(Person, scope.actor.person_id)
    lang = pick_language(person.languages if person else None, request.app[SETTINGS].default_language)
    actor = scope.actor
    return render(
        request,
        "evidence.html",
        {
            "visit": scope.visit,
            "actor": actor,
            "page": {
                "visit": scope.visit.id,
                "lang": lang,
                "me": {
                    "person": actor.person_id, "membership": actor.membership_id, "name": actor.name,
                    "role": str(actor.role), "delegation": actor.delegation,
                },
                # Controls follow the policy's answers, never raw role names.
                "may": {
                    "upload": decide(Action.EVIDENCE_UPLOAD, actor.role),
                    "manage": decide(Action.EVIDENCE_GRANT, actor.role),
                    "audit": decide(Action.EVIDENCE_AUDIT, actor.role),
                },
                "sessions": [
                    {
                        "id": s.session.id, "title": s.session.title, "access": str(s.session.access),
                        "items": [{"id": i.id, "title": i.title} for i in s.items],
                    }
                    for s in sessions
                ],
            },
        },
        lang=lang,
    )
