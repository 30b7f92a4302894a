"""Plain-words explanations: who pays for a slot, and how."""

from __future__ import annotations

from datetime import timedelta

from .model import Participant, Session, from_epoch_minutes
from .prices import KIND_AFTER, KIND_BEFORE, KIND_BETWEEN, KIND_HOLIDAY, KIND_NIGHT, KIND_OFFDAY, KIND_WORK, CostModel
from .zones import load_zone

__all__ = ["delegation_label", "explain_session", "local_iso"]

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def delegation_label(name: str) -> str:
    low = name.lower()
    if "delegation" in low or low in {"secretariat", "unodc", "unodc secretariat"}:
        return name
    return f"{name} delegation"


def local_iso(zone: str, minute: int) -> str:
    """ISO-8601 local time with offset, e.g. 2027-03-25T07:30:00-05:00."""
    return from_epoch_minutes(minute).astimezone(load_zone(zone)).isoformat()


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _describe(cm: CostModel, p: Participant, start: int, end: int) -> str | None:
    """One participant's pain in a slot, or None when it is all in working hours."""
    counts = cm.kind_counts(p.id, start, end)
    if counts[KIND_WORK] == end - start:
        return None
    parts: list[str] = []
    for kind, phrase in ((KIND_BEFORE, "before working hours"), (KIND_AFTER, "after working hours"),
                         (KIND_BETWEEN, "between working hours"), (KIND_HOLIDAY, "on a public holiday")):
        if counts[kind]:
            parts.append(f"{counts[kind]} minutes {phrase}")
    for d in range(7):
        if counts[KIND_OFFDAY + d]:
            parts.append(f"{counts[KIND_OFFDAY + d]} minutes on {_DAY_NAMES[d]}, a day without working hours")
    if counts[KIND_NIGHT]:
        weight = cm.problem.night_weight
        parts.append(f"{counts[KIND_NIGHT]} minutes at night" + (f" (counted {weight} times)" if weight != 1 else ""))
    zone = load_zone(p.timezone)
    ls = from_epoch_minutes(start).astimezone(zone)
    le = from_epoch_minutes(end).astimezone(zone)
    span = f"{ls:%H:%M}-{le:%H:%M}"
    if le.date() != ls.date() and not (le.hour == 0 and le.minute == 0 and le.date() == ls.date() + timedelta(days=1)):
        span += " (next day)" if le.date() == ls.date() + timedelta(days=1) else f" ({le:%a %d %b})"
    return f"{span}, {_join(parts)} ({ls:%a %d %b}, {p.timezone})"


def explain_session(cm: CostModel, session: Session, start: int) -> list[str]:
    """Lines such as "Colombia delegation: 07:30-09:00, 90 minutes before working
    hours (Thu 25 Mar, America/Bogota)", heaviest delegation first; then who is
    wholly inside working hours."""
    end = start + session.duration_minutes
    by_deleg: dict[str, list[tuple[str, str]]] = {}
    burden: dict[str, int] = {}
    fine: list[str] = []
    cache: dict[object, str | None] = {}
    for pid in session.participants:
        p = cm.participants[pid]
        burden[p.delegation] = burden.get(p.delegation, 0) + cm.burden(pid, start, end)
        key = p.profile_key()
        if key not in cache:
            cache[key] = _describe(cm, p, start, end)
        text = cache[key]
        by_deleg.setdefault(p.delegation, [])
        if text is not None:
            by_deleg[p.delegation].append((pid, text))
    order = sorted(by_deleg, key=lambda d: -burden[d])
    lines: list[str] = []
    for d in order:
        items = by_deleg[d]
        if not items:
            fine.append(d)
            continue
        texts: dict[str, list[str]] = {}
        for pid, text in items:
            texts.setdefault(text, []).append(pid)
        members = [pid for pid in session.participants if cm.participants[pid].delegation == d]
        for text, pids in texts.items():
            who = delegation_label(d)
            if len(texts) > 1 or len(pids) != len(members):
                who += f" ({', '.join(pids)})"
            lines.append(f"{who}: {text}")
    if fine:
        lines.append("Within working hours: " + ", ".join(fine))
    return lines
