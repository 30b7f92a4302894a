"""Entry point: :func:`solve` a :class:`~schedules.model.Problem` into a :class:`Result`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from .engine import Candidate, Instance, SequenceSearch, lawler, single_session_ranking
from .explain import explain_session, local_iso
from .model import Problem, format_utc
from .prices import INF

__all__ = ["MAX_EXACT_ORDERS", "PlacedSession", "Result", "Schedule", "solve"]

#: unordered sets whose orders allowed by ``after`` number at most this are solved
#: exactly by dynamic programming (4 unordered sessions have 24 orders, 5 have 120)
MAX_EXACT_ORDERS = 120


@dataclass(frozen=True)
class PlacedSession:
    id: str
    start: int  # UTC epoch minutes
    end: int
    cost: int
    burden: dict[str, int]
    local: dict[str, dict[str, str]] = field(default_factory=dict)
    explanation: list[str] = field(default_factory=list)

    def to_json(self, full: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "start_utc": format_utc(self.start),
                               "end_utc": format_utc(self.end), "cost": self.cost,
                               "burden": dict(self.burden)}
        if full:
            out["local"] = {k: dict(v) for k, v in self.local.items()}
            out["explanation"] = list(self.explanation)
        return out


@dataclass(frozen=True)
class Schedule:
    sessions: list[PlacedSession]
    total_cost: int
    delegation_burden: dict[str, int]

    def to_json(self, full: bool = False) -> dict[str, Any]:
        return {"sessions": [s.to_json(full) for s in self.sessions], "total_cost": self.total_cost,
                "delegation_burden": dict(self.delegation_burden)}


@dataclass(frozen=True)
class Result:
    sessions: list[PlacedSession]
    total_cost: int | None
    delegation_burden: dict[str, int]
    proven_optimal: bool
    method: str
    alternatives: list[Schedule] = field(default_factory=list)
    infeasible: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sessions": [s.to_json(True) for s in self.sessions],
            "total_cost": self.total_cost,
            "delegation_burden": dict(self.delegation_burden),
            "proven_optimal": self.proven_optimal,
            "method": self.method,
            "alternatives": [a.to_json() for a in self.alternatives],
        }
        if self.infeasible is not None:
            out["infeasible"] = list(self.infeasible)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


# ---------------------------------------------------------------------- solving

def _search(inst: Instance, k: int, time_limit: float, max_orders: int,
            ) -> tuple[list[Candidate], bool, str]:
    if inst.n == 1:
        return list(itertools.islice(single_session_ranking(inst), k + 1)), True, "enumeration"
    orders = inst.linear_extensions(max_orders)
    if orders is not None and all(inst.dp_exact_for(o) for o in orders):
        search = SequenceSearch(inst, orders)
        method = "dynamic programming (chain)" if len(orders) == 1 else \
            f"dynamic programming over {len(orders)} session orders"
        return lawler(inst, lambda r: search.best(inst.restricted_costs(r)), k), True, method
    from .cpsat import solve_cpsat

    cands, proven = solve_cpsat(inst, k, time_limit)
    return cands, proven, "CP-SAT (OR-Tools)"


def _schedule(inst: Instance, cand: Candidate, full: bool) -> tuple[list[PlacedSession], dict[str, int]]:
    cm = inst.cm
    placed = []
    deleg = {d: 0 for d in cm.delegations
             if any(cm.participants[pid].delegation == d for s in inst.problem.sessions for pid in s.participants)}
    for i, s in enumerate(inst.problem.sessions):
        start = cm.start_minute(cand.starts[i])
        end = start + s.duration_minutes
        burden = {pid: cm.burden(pid, start, end) for pid in s.participants}
        for pid, b in burden.items():
            deleg[cm.participants[pid].delegation] += b
        local = {}
        explanation: list[str] = []
        if full:
            local = {pid: {"timezone": cm.participants[pid].timezone,
                           "start": local_iso(cm.participants[pid].timezone, start),
                           "end": local_iso(cm.participants[pid].timezone, end)}
                     for pid in s.participants}
            explanation = explain_session(cm, s, start)
        placed.append(PlacedSession(s.id, start, end, int(inst.cost[i][cand.starts[i]]), burden,
                                    local, explanation))
    return placed, deleg


def solve(problem: Problem, alternatives: int = 0, *, time_limit: float = 30.0,
          max_orders: int = MAX_EXACT_ORDERS) -> Result:
    """The best schedule (total cost, then the largest delegation burden, then the
    earliest starts in input order) and the ``alternatives`` next-best ones."""
    if alternatives < 0:
        raise ValueError("alternatives must not be negative")
    inst = Instance(problem)
    cands, proven, method = _search(inst, alternatives, time_limit, max_orders)
    if not cands:
        return Result([], None, {}, proven, method, [], diagnose(inst, time_limit))
    best = cands[0]
    sessions, deleg = _schedule(inst, best, full=True)
    alts = []
    for c in cands[1:]:
        s, d = _schedule(inst, c, full=False)
        alts.append(Schedule(s, c.total, d))
    notes = []
    if not best.exact_tie_break and proven:
        notes.append("the total cost is optimal; among equally cheap schedules the fairest was "
                     "chosen from a capped set of candidates")
    if not proven:
        notes.append(f"{method} stopped at its time limit ({time_limit:g} s): the schedule is the best "
                     "found, not proven optimal")
    return Result(sessions, best.total, deleg, proven, method, alts, None, notes)


# ---------------------------------------------------------------------- infeasibility

def _subproblem(problem: Problem, ids: list[str]) -> Problem:
    keep = set(ids)
    sessions = tuple(replace(s, after=s.after if s.after in keep else None)
                     for s in problem.sessions if s.id in keep)
    return replace(problem, sessions=sessions)


def _feasible(problem: Problem, ids: list[str], time_limit: float) -> bool:
    inst = Instance(_subproblem(problem, ids))
    cands, _, _ = _search(inst, 0, time_limit, MAX_EXACT_ORDERS)
    return bool(cands)


def diagnose(inst: Instance, time_limit: float = 10.0) -> list[str]:
    """Which constraint leaves no feasible schedule, in plain words."""
    problem, cm = inst.problem, inst.cm
    window = cm.w1 - cm.g0 if cm.n_starts else 0
    msgs: list[str] = []
    for i, s in enumerate(problem.sessions):
        if cm.valid_count(s.duration_minutes) == 0:
            msgs.append(f"session '{s.id}': {s.duration_minutes} minutes do not fit in the window "
                        f"({max(window, 0)} minutes from its first grid point)")
            continue
        if (inst.cost[i] < INF).any():
            continue
        alone = []
        for pid in s.participants:
            _, _, blocked = cm.session_tables((pid,), s.duration_minutes)
            if blocked[:cm.valid_count(s.duration_minutes)].all():
                alone.append(pid)
        if alone:
            msgs.extend(f"session '{s.id}': participant '{pid}' is unavailable in every slot of the window"
                        for pid in alone)
        else:
            msgs.append(f"session '{s.id}': the unavailable times of participants "
                        f"{', '.join(repr(p) for p in s.participants)} together leave no slot in the window")
    if msgs:
        return msgs
    # chains of `after`, each on its own
    index = inst.index
    leaves = [s for s in problem.sessions if not any(t.after == s.id for t in problem.sessions)]
    for leaf in leaves:
        path = [leaf.id]
        nxt = problem.sessions[index[leaf.id]].after
        while nxt is not None:
            path.append(nxt)
            nxt = problem.sessions[index[nxt]].after
        path.reverse()
        if len(path) < 2:
            continue
        ids = [index[x] for x in path]
        steps = sum(inst.steps[a][b] for a, b in itertools.pairwise(ids))
        need = steps * cm.grid + inst.duration[ids[-1]]
        arrow = " → ".join(f"'{x}'" for x in path)
        if need > window:
            msgs.append(f"window too short for the chain {arrow}: it needs {need} minutes including "
                        f"gaps of {problem.min_gap_minutes} minutes, the window has {window}")
        elif not _feasible(problem, path, time_limit):
            msgs.append(f"chain {arrow}: the participants' unavailable times leave no room for it in the window")
    if msgs:
        return msgs
    total = sum(inst.duration)
    if total > window:
        return [f"window too short for all {inst.n} sessions: they need {total} minutes back to back, "
                f"the window has {window}"]
    for a, b in itertools.combinations(range(inst.n), 2):
        pair = [problem.sessions[a].id, problem.sessions[b].id]
        if not _feasible(problem, pair, time_limit):
            msgs.append(f"sessions '{pair[0]}' and '{pair[1]}' cannot both be placed: with the minimum gap of "
                        f"{problem.min_gap_minutes} minutes, the window and the unavailable times leave "
                        "no room for both")
    if msgs:
        return msgs
    return [f"the {inst.n} sessions cannot all be placed without overlapping (minimum gap "
            f"{problem.min_gap_minutes} minutes between sessions sharing a participant) within the window "
            "and around the participants' unavailable times"]
