"""The access policy: one table of role x action x session access.

Every HTTP route and every Socket.IO event names one ``Action``; the guard in the
transport layer asks ``decide`` and nothing else. Per-session roles are data: a
``CHAIR`` cell means "allowed if this membership chairs the session" (a session's
named chairs, or the secretariat when it names none); an ``INVITED`` cell means
"allowed if the membership is on the session's invitee list".
"""

from __future__ import annotations

from enum import StrEnum

from server.access.roles import Access, Role


class Action(StrEnum):
    # Person scope: one's own account and login sessions
    SELF = "self"
    # Visit scope (no session access applies)
    VISIT_VIEW = "visit.view"
    PARTICIPANTS_VIEW = "participants.view"
    VISIT_MANAGE = "visit.manage"  # invitations, roles, agenda edits
    AUDIT_VIEW = "audit.view"
    BOOTHS_VIEW = "booths.view"  # the visit's interpretation booths and who staffs them
    BOOTHS_MANAGE = "booths.manage"  # set up booths, assign interpreters, hand over
    # The evidence room (docs/evidence.md). Cells say who may ask at all; the evidence
    # service then applies what the data decides (holding a key, being the uploader,
    # the document's session, "who may receive a document").
    DEVICES_MANAGE = "devices.manage"  # one's own devices, statements, recovery, device links
    EVIDENCE_VIEW = "evidence.view"  # keys, documents, downloads (with a key), pending shares
    EVIDENCE_UPLOAD = "evidence.upload"  # upload a document (version), its chunks and keys
    EVIDENCE_SHARE = "evidence.share"  # re-wrap a held key for an entitled late recipient
    EVIDENCE_RECEIVE = "evidence.receive"  # a recipient of documents without a grant (data: no route)
    EVIDENCE_GRANT = "evidence.grant"  # make anyone else a recipient (data: no route)
    EVIDENCE_AUDIT = "evidence.audit"  # a document's audit trail (the uploader's delegation only)
    # Session scope
    SESSION_VIEW = "session.view"
    SESSION_ENTER = "session.enter"
    CHAT_SEND = "chat.send"
    FLOOR_REQUEST = "floor.request"
    FLOOR_CHAIR = "floor.chair"  # give / end the floor
    ITEM_MOVE = "item.move"
    LOBBY_DECIDE = "lobby.decide"
    SESSION_MANAGE = "session.manage"  # chair and access changes


class Rule(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    CHAIR = "chair"
    INVITED = "invited"


VISIT_ACTIONS = frozenset(
    {
        Action.SELF,
        Action.VISIT_VIEW,
        Action.PARTICIPANTS_VIEW,
        Action.VISIT_MANAGE,
        Action.AUDIT_VIEW,
        Action.BOOTHS_VIEW,
        Action.BOOTHS_MANAGE,
        Action.DEVICES_MANAGE,
        Action.EVIDENCE_VIEW,
        Action.EVIDENCE_UPLOAD,
        Action.EVIDENCE_SHARE,
        Action.EVIDENCE_RECEIVE,
        Action.EVIDENCE_GRANT,
        Action.EVIDENCE_AUDIT,
    }
)

# One letter per cell keeps the tables below readable as tables.
A, D, C, I = Rule.ALLOW, Rule.DENY, Rule.CHAIR, Rule.INVITED  # noqa: E741
S, E, G, T, K, O = (  # noqa: E741
    Role.SECRETARIAT,
    Role.EXPERT,
    Role.DELEGATE,
    Role.INTERPRETER,
    Role.STAKEHOLDER,
    Role.OBSERVER,
)

# Visit-scope actions: role -> rule.
VISIT_POLICY: dict[Action, dict[Role, Rule]] = {
    #                        secretariat expert delegate interpreter stakeholder observer
    Action.SELF: {S: A, E: A, G: A, T: A, K: A, O: A},
    Action.VISIT_VIEW: {S: A, E: A, G: A, T: A, K: A, O: A},
    Action.PARTICIPANTS_VIEW: {S: A, E: A, G: A, T: A, K: D, O: A},
    Action.VISIT_MANAGE: {S: A, E: D, G: D, T: D, K: D, O: D},
    Action.AUDIT_VIEW: {S: A, E: D, G: D, T: D, K: D, O: D},
    Action.BOOTHS_VIEW: {S: A, E: A, G: A, T: A, K: A, O: A},
    Action.BOOTHS_MANAGE: {S: A, E: D, G: D, T: D, K: D, O: D},
    Action.DEVICES_MANAGE: {S: A, E: A, G: A, T: A, K: A, O: A},
    # Everyone may ask; what they get is what they hold keys to or may receive.
    Action.EVIDENCE_VIEW: {S: A, E: A, G: A, T: A, K: A, O: A},
    # The review team and the State under review upload; the others only receive.
    Action.EVIDENCE_UPLOAD: {S: A, E: A, G: A, T: D, K: D, O: D},
    # Any holder of a key may pass it on to someone entitled (EVIDENCE_GRANT for the rest).
    Action.EVIDENCE_SHARE: {S: A, E: A, G: A, T: A, K: A, O: A},
    # Who may receive a document (as far as its session admits them), and who may grant
    # it to anyone else (docs/evidence.md, "Who may receive a document").
    Action.EVIDENCE_RECEIVE: {S: A, E: A, G: A, T: D, K: D, O: D},
    Action.EVIDENCE_GRANT: {S: A, E: D, G: D, T: D, K: D, O: D},
    Action.EVIDENCE_AUDIT: {S: A, E: A, G: A, T: D, K: D, O: D},
}

_ENTER = {
    Access.OPEN: {S: A, E: A, G: A, T: A, K: A, O: A},
    # A stakeholder session admits its own stakeholders plus the review team.
    Access.STAKEHOLDER: {S: A, E: A, G: A, T: A, K: I, O: D},
    # A closed session admits no stakeholder and no observer.
    Access.CLOSED: {S: A, E: A, G: A, T: A, K: D, O: D},
}
_SPEAK = {
    # Interpreters voice others and observers listen: neither takes the floor.
    Access.OPEN: {S: A, E: A, G: A, T: D, K: A, O: D},
    Access.STAKEHOLDER: {S: A, E: A, G: A, T: D, K: I, O: D},
    Access.CLOSED: {S: A, E: A, G: A, T: D, K: D, O: D},
}
_CHAT = {
    Access.OPEN: {S: A, E: A, G: A, T: A, K: A, O: D},
    Access.STAKEHOLDER: {S: A, E: A, G: A, T: A, K: I, O: D},
    Access.CLOSED: {S: A, E: A, G: A, T: A, K: D, O: D},
}
_CHAIR_ONLY = {
    access: {S: C, E: C, G: C, T: D, K: D, O: D} for access in Access
}
_SECRETARIAT_ONLY = {access: {S: A, E: D, G: D, T: D, K: D, O: D} for access in Access}

# Session-scope actions: access -> role -> rule.
SESSION_POLICY: dict[Action, dict[Access, dict[Role, Rule]]] = {
    Action.SESSION_VIEW: _ENTER,
    Action.SESSION_ENTER: _ENTER,
    Action.CHAT_SEND: _CHAT,
    Action.FLOOR_REQUEST: _SPEAK,
    Action.FLOOR_CHAIR: _CHAIR_ONLY,
    Action.ITEM_MOVE: _CHAIR_ONLY,
    Action.LOBBY_DECIDE: _CHAIR_ONLY,
    Action.SESSION_MANAGE: _SECRETARIAT_ONLY,
}


def rule_for(action: Action, role: Role, access: Access | None) -> Rule:
    if action in VISIT_ACTIONS:
        return VISIT_POLICY[action][role]
    if access is None:
        raise ValueError(f"{action} needs a session access level")
    return SESSION_POLICY[action][access][role]


def decide(
    action: Action,
    role: Role,
    access: Access | None = None,
    *,
    is_chair: bool = False,
    is_invited: bool = False,
) -> bool:
    rule = rule_for(action, role, access)
    if rule is Rule.ALLOW:
        return True
    if rule is Rule.CHAIR:
        return is_chair
    if rule is Rule.INVITED:
        return is_invited
    return False
