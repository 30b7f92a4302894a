"""The demo visit: a realistic three-day virtual country visit.

Colombia is under review by Kenya and Indonesia; the secretariat sits in Vienna.
The agenda is placed in the future on the days around the next daylight-saving
change in Vienna, so the change is visible in everyone's agenda.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

SLUG = "demo-colombia-cycle2"
VISIT = {
    "title": "Country visit to Colombia, second review cycle",
    "state_under_review": "Colombia",
    "reviewing_states": ["Kenya", "Indonesia"],
    "cycle": "second",
    "timezone": "Europe/Vienna",
}

DELEGATIONS = [
    ("UNODC secretariat", "secretariat"),
    ("Colombia", "state_under_review"),
    ("Kenya", "reviewing_state"),
    ("Indonesia", "reviewing_state"),
    ("Interpreters", "interpreters"),
    ("Civil society and private sector", "stakeholders"),
    ("Observers", "observers"),
]


@dataclass(frozen=True)
class DemoPerson:
    key: str
    name: str
    email: str
    role: str
    delegation: str
    timezone: str
    languages: tuple[str, ...]
    working_hours: dict[str, list[list[str]]] = field(default_factory=dict)


PEOPLE = [
    DemoPerson("sec-1", "Anna Berger", "anna.berger@example.org", "secretariat", "UNODC secretariat", "Europe/Vienna", ("en", "fr")),
    DemoPerson("sec-2", "Tomás Ruiz", "tomas.ruiz@example.org", "secretariat", "UNODC secretariat", "Europe/Vienna", ("es", "en")),
    DemoPerson("exp-ke-1", "Wanjiru Kamau", "w.kamau@example.ke", "expert", "Kenya", "Africa/Nairobi", ("en",)),
    DemoPerson("exp-ke-2", "David Otieno", "d.otieno@example.ke", "expert", "Kenya", "Africa/Nairobi", ("en",)),
    DemoPerson("exp-id-1", "Siti Rahmawati", "s.rahmawati@example.id", "expert", "Indonesia", "Asia/Jakarta", ("en",)),
    DemoPerson("exp-id-2", "Made Wirawan", "m.wirawan@example.id", "expert", "Indonesia", "Asia/Makassar", ("en",)),
    DemoPerson("del-co-1", "Laura Gómez", "l.gomez@example.gov.co", "delegate", "Colombia", "America/Bogota", ("es", "en")),
    DemoPerson("del-co-2", "Andrés Restrepo", "a.restrepo@example.gov.co", "delegate", "Colombia", "America/Bogota", ("es",)),
    DemoPerson("del-co-3", "Camila Duarte", "c.duarte@example.gov.co", "delegate", "Colombia", "America/New_York", ("es", "en")),
    DemoPerson("int-es-1", "Marie Laurent", "m.laurent@example.org", "interpreter", "Interpreters", "Europe/Madrid", ("es", "en", "fr")),
    DemoPerson("int-es-2", "Jorge Salinas", "j.salinas@example.org", "interpreter", "Interpreters", "America/Mexico_City", ("es", "en")),
    DemoPerson("int-en-1", "Amina Yusuf", "a.yusuf@example.org", "interpreter", "Interpreters", "Africa/Nairobi", ("en", "es", "ar")),
    DemoPerson("stk-1", "Paula Ortiz", "p.ortiz@example.org", "stakeholder", "Civil society and private sector", "America/Bogota", ("es",)),
    DemoPerson("stk-2", "Ricardo Méndez", "r.mendez@example.com", "stakeholder", "Civil society and private sector", "America/Bogota", ("es", "en")),
    DemoPerson("obs-1", "Hélène Dubois", "h.dubois@example.org", "observer", "Observers", "Europe/Paris", ("fr", "en")),
]


# Interpretation booths: language (BCP 47) -> interpreters in order (the first is active).
BOOTHS: list[tuple[str, tuple[str, ...]]] = [
    ("en", ("int-en-1",)),
    ("es", ("int-es-1", "int-es-2")),
]


@dataclass(frozen=True)
class DemoSession:
    key: str
    title: str
    day: int  # 0, 1, 2: the three meeting days
    start_utc: time
    minutes: int
    access: str
    articles: tuple[str, ...]
    items: tuple[str, ...]
    requires_admission: bool = False
    invitees: tuple[str, ...] = ()  # stakeholders invited to this session


SESSIONS = [
    DemoSession("opening", "Opening and overview of the review", 0, time(12, 0), 90, "open", (),
                ("Welcome by the secretariat", "Presentation of the national anti-corruption framework", "Programme of the visit")),
    DemoSession("ch2-prevent", "Chapter II: preventive anti-corruption bodies and policies", 0, time(14, 0), 120, "open",
                ("5", "6", "7"), ("Article 5: preventive policies", "Article 6: preventive bodies", "Article 7: public sector")),
    DemoSession("ch5-recovery", "Chapter V: asset recovery, closed dialogue", 1, time(12, 0), 120, "closed",
                ("51", "52", "53", "54", "55", "57"),
                ("Article 52: prevention and detection of transfers of proceeds of crime", "Article 54: mechanisms for recovery through international cooperation in confiscation", "Article 57: return and disposal of assets"),
                requires_admission=True),
    DemoSession("civil-society", "Dialogue with civil society", 1, time(14, 30), 90, "stakeholder", ("10", "13"),
                ("Article 13: participation of society", "Access to information"), requires_admission=True, invitees=("stk-1",)),
    DemoSession("private-sector", "Dialogue with the private sector", 2, time(12, 0), 75, "stakeholder", ("12",),
                ("Article 12: private sector", "Beneficial ownership transparency"), requires_admission=True, invitees=("stk-2",)),
    DemoSession("ch2-procure", "Chapter II: public procurement and public finances", 2, time(13, 30), 90, "open", ("9",),
                ("Article 9: public procurement", "Management of public finances")),
    DemoSession("wrap-up", "Wrap-up: follow-up requests and next steps", 2, time(15, 15), 60, "closed", (),
                ("Follow-up requests", "Timeline for the draft country report"), requires_admission=True),
]


def next_transition(zone: str, after: datetime) -> datetime:
    """The first instant after ``after`` when the zone's UTC offset changes (hourly scan,
    then minute refinement; zoneinfo exposes no transition list)."""
    tz = ZoneInfo(zone)
    probe = after.replace(minute=0, second=0, microsecond=0)
    offset = probe.astimezone(tz).utcoffset()
    for _ in range(24 * 400):
        nxt = probe + timedelta(hours=1)
        if nxt.astimezone(tz).utcoffset() != offset:
            lo = probe
            while nxt - lo > timedelta(minutes=1):
                mid = lo + (nxt - lo) / 2
                if mid.astimezone(tz).utcoffset() == offset:
                    lo = mid
                else:
                    nxt = mid
            return nxt.replace(second=0, microsecond=0)
        probe = nxt
    raise ValueError(f"{zone} has no offset change within 400 days")


def meeting_days(now: datetime) -> list[date]:
    """Thursday and Friday before Vienna's next offset change (at least two weeks away)
    and the Monday after it."""
    change = next_transition(str(VISIT["timezone"]), now + timedelta(days=14))
    change_day = change.date()
    thursday = change_day - timedelta(days=(change_day.weekday() - 3) % 7 or 7)
    friday = thursday + timedelta(days=1)
    monday = change_day + timedelta(days=(7 - change_day.weekday()) % 7 or 7)
    return [thursday, friday, monday]


def session_times(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    days = meeting_days(now)
    out = {}
    for s in SESSIONS:
        start = datetime.combine(days[s.day], s.start_utc, tzinfo=UTC)
        out[s.key] = (start, start + timedelta(minutes=s.minutes))
    return out
