"""What the scheduling pages show: proposals side by side, in the viewer's zone, with the
per-delegation burden as bars drawn server-side (SVG geometry as attributes: the CSP
allows no inline styles)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from server.agenda.models import AgendaSession
from server.core.times import LocalTime, local
from server.scheduling import service
from server.scheduling.models import ScheduleRun

CHART_WIDTH = 340
LABEL_WIDTH = 130
BAR_SPACE = 150
ROW_HEIGHT = 24
LABEL_CHARS = 20


@dataclass(frozen=True)
class Bar:
    label: str  # shortened to fit
    name: str  # the delegation's full name
    value: int
    y: int
    width: int
    text_y: int
    value_x: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    label_width: int
    bars: list[Bar]
    summary: str  # the same numbers in words, for screen readers


@dataclass(frozen=True)
class PlacedView:
    id: str
    title: str
    start: LocalTime
    end: LocalTime
    moved: bool
    cost: int
    explanation: list[str]


@dataclass(frozen=True)
class ProposalView:
    index: int
    total_cost: int
    sessions: list[PlacedView]
    chart: Chart
    accepted: bool
    max_burden: int
    moved: int = 0


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _humanise(lines: list[str], names: dict[str, str]) -> list[str]:
    """The engine names participants by id (membership ids here): use their names."""
    out = []
    for line in lines:
        for pid, name in names.items():
            if pid in line:
                line = line.replace(pid, name)
        out.append(line)
    return out


def chart(burden: dict[str, int], order: list[str], scale: int) -> Chart:
    bars = []
    for i, name in enumerate(order):
        value = int(burden.get(name, 0))
        width = round(BAR_SPACE * value / scale) if scale else 0
        label = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
        y = i * ROW_HEIGHT
        bars.append(Bar(label, name, value, y + 4, max(width, 1 if value else 0), y + 16,
                        LABEL_WIDTH + max(width, 0) + 6))
    summary = ", ".join(f"{b.name} {b.value}" for b in bars)
    return Chart(CHART_WIDTH, max(ROW_HEIGHT, ROW_HEIGHT * len(bars)), LABEL_WIDTH, bars, summary)


def proposal_views(
    run: ScheduleRun, agenda: list[AgendaSession], zone: str
) -> list[ProposalView]:
    """The best proposal then the alternatives, every time in ``zone``."""
    found = service.proposals(run)
    titles = {s["id"]: s.get("title", s["id"]) for s in run.problem.get("sessions", [])}
    names = {p["id"]: p.get("name", p["id"]) for p in run.problem.get("participants", [])}
    current = {s.id: (s.start_utc, s.end_utc) for s in agenda}
    order = sorted({d for p in found for d in p["delegation_burden"]})
    scale = max([v for p in found for v in p["delegation_burden"].values()] + [0])
    views = []
    for p in found:
        placed = []
        for s in p["sessions"]:
            start, end = _instant(s["start_utc"]), _instant(s["end_utc"])
            placed.append(PlacedView(
                s["id"], titles.get(s["id"], s["id"]), local(start, zone), local(end, zone),
                current.get(s["id"]) != (start, end), int(s["cost"]),
                _humanise(list(s.get("explanation", [])), names),
            ))
        burden = {k: int(v) for k, v in p["delegation_burden"].items()}
        views.append(ProposalView(
            index=p["index"], total_cost=int(p["total_cost"]), sessions=placed,
            chart=chart(burden, order, scale), accepted=run.accepted_index == p["index"] and run.accepted_at is not None,
            max_burden=max(burden.values(), default=0), moved=sum(1 for x in placed if x.moved),
        ))
    return views


def run_summary(run: ScheduleRun, zone: str) -> dict[str, Any]:
    window = run.problem.get("window", {})
    return {
        "id": run.id,
        "created": local(run.created_at, zone),
        "window_start": local(_instant(window["start"]), zone) if window.get("start") else None,
        "window_end": local(_instant(window["end"]), zone) if window.get("end") else None,
        "sessions": len(run.problem.get("sessions", [])),
        "total_cost": run.result.get("total_cost"),
        "infeasible": run.result.get("infeasible"),
        "accepted": run.accepted_at is not None,
        "accepted_index": run.accepted_index,
        "method": run.result.get("method", ""),
        "proven_optimal": run.result.get("proven_optimal", True),
        "notes": run.result.get("notes", []),
        "keep_order": run.problem.get("parley", {}).get("keep_order", False),
        "fixed": len(run.problem.get("parley", {}).get("fixed", [])),
    }
