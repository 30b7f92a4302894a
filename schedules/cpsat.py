"""Larger unordered agendas: OR-Tools CP-SAT on a time-indexed model.

One Boolean per (session, feasible grid start); the sessions' intervals never
overlap, sessions sharing a participant keep ``min_gap_minutes`` apart (a no-overlap
per participant over intervals stretched by the gap) and ``after`` pairs are ordered
with the gap.  The ranking key is optimised lexicographically in stages: the total
cost, then the largest delegation burden with the total fixed, then the starts in
input order.  ``proven`` is true only when CP-SAT proved every stage of the best
schedule optimal.  The K next-best schedules are found by solving again with the
schedules already found forbidden.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

from .engine import Candidate, Instance
from .prices import INF

__all__ = ["solve_cpsat"]

_DEBUG = bool(os.environ.get("SCHEDULES_DEBUG"))


class _Model:
    def __init__(self, inst: Instance, forbidden: list[tuple[int, ...]], allowed: list[np.ndarray]) -> None:
        from ortools.sat.python import cp_model

        self.cp = cp_model
        g = inst.cm.grid
        gap = inst.problem.min_gap_minutes
        m = self.model = cp_model.CpModel()
        self.xs: list[dict[int, Any]] = []
        self.starts = []
        for i in range(inst.n):
            ts = np.flatnonzero(allowed[i]).tolist()
            x = {t: m.new_bool_var(f"x{i}_{t}") for t in ts}
            m.add_exactly_one(x.values())
            st = m.new_int_var_from_domain(cp_model.Domain.from_values(ts), f"s{i}")
            m.add(st == sum(t * v for t, v in x.items()))
            self.xs.append(x)
            self.starts.append(st)
        m.add_no_overlap([m.new_fixed_size_interval_var(g * self.starts[i], inst.duration[i], f"iv{i}")
                          for i in range(inst.n)])
        # the same as time-indexed cliques: sessions start on grid points, so two slots
        # overlap iff one covers the other's start; these give a strong LP relaxation
        groups: dict[frozenset[int], int] = {frozenset(range(inst.n)): 0}
        if gap > 0:
            for pid in {pid for s in inst.problem.sessions for pid in s.participants}:
                members = frozenset(i for i, s in enumerate(inst.problem.sessions) if pid in s.participants)
                if len(members) > 1:
                    groups[members] = gap
            sets = [k for k, v in groups.items() if v]
            for k in sets:  # a group inside a larger one adds nothing
                if any(k < other for other in sets):
                    del groups[k]
        for members, pad in groups.items():
            cover: dict[int, list[Any]] = {}
            for i in members:
                reach = -(-(inst.duration[i] + pad) // g)  # grid points covered from the start
                for t, v in self.xs[i].items():
                    for tau in range(t, min(t + reach, inst.S)):
                        cover.setdefault(tau, []).append(v)
            for vs in cover.values():
                if len(vs) > 1:
                    m.add_at_most_one(vs)
            if pad and len(members) > 1:
                m.add_no_overlap([m.new_fixed_size_interval_var(g * self.starts[i], inst.duration[i] + pad,
                                                                f"pad{i}") for i in sorted(members)])
        for j, p in enumerate(inst.pred):
            if p is not None:
                m.add(g * self.starts[j] >= g * self.starts[p] + inst.duration[p] + inst.sep[p][j])
        for sched in forbidden:
            if all(t in self.xs[i] for i, t in enumerate(sched)):
                m.add_bool_or([self.xs[i][t].Not() for i, t in enumerate(sched)])
        self.total = sum(int(inst.cost[i][t]) * v for i in range(inst.n) for t, v in self.xs[i].items())
        top = sum(int(inst.cost[i][allowed[i]].max()) for i in range(inst.n))
        self.max_deleg = m.new_int_var(0, max(top, 0), "max_deleg")
        for d in range(len(inst.cm.delegations)):
            terms = [int(inst.deleg[i][d, t]) * v for i in range(inst.n) for t, v in self.xs[i].items()
                     if inst.deleg[i][d, t]]
            if terms:
                m.add(self.max_deleg >= sum(terms))

    def solve(self, objective: Any, hint: list[int] | None, seconds: float, workers: int,
              ) -> tuple[str, list[int] | None, int | None]:
        cp = self.cp
        self.model.minimize(objective)
        self.model.clear_hints()  # type: ignore[no-untyped-call]  # ortools leaves clear_hints unannotated
        if hint is not None:
            for i, (st, v) in enumerate(zip(self.starts, hint, strict=True)):
                self.model.add_hint(st, v)
                for t, x in self.xs[i].items():
                    self.model.add_hint(x, t == v)
        solver = cp.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, seconds)
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = 1
        status = solver.solve(self.model)
        if _DEBUG:
            print("cp-sat stage", solver.status_name(status), round(solver.wall_time, 2), solver.objective_value,
                  solver.best_objective_bound, file=sys.stderr)
        if status in (cp.OPTIMAL, cp.FEASIBLE):
            return ("optimal" if status == cp.OPTIMAL else "feasible",
                    [int(solver.value(s)) for s in self.starts], round(solver.objective_value))
        return ("infeasible" if status == cp.INFEASIBLE else "unknown"), None, None


def _greedy(inst: Instance) -> int | None:
    """Total cost of a quick feasible schedule (sessions placed one by one, cheapest
    compatible start first), or None."""
    order: list[int] = []
    ready = [i for i in range(inst.n) if inst.pred[i] is None]
    while ready:
        ready.sort(key=lambda i: -inst.duration[i])
        i = ready.pop(0)
        order.append(i)
        ready += [j for j in range(inst.n) if inst.pred[j] == i]
    starts = [-1] * inst.n
    S = inst.S
    total = 0
    for i in order:
        ok = inst.cost[i] < INF
        t_idx = np.arange(S)
        p = inst.pred[i]
        if p is not None:
            ok &= t_idx >= starts[p] + inst.steps[p][i]
        for j in range(inst.n):
            if starts[j] >= 0 and j != i:
                # i must start at least steps[j][i] after j, or end (with its separation) before j
                ok &= (t_idx >= starts[j] + inst.steps[j][i]) | (t_idx + inst.steps[i][j] <= starts[j])
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            return None
        t = int(cand[np.argmin(inst.cost[i][cand])])
        starts[i] = t
        total += int(inst.cost[i][t])
    return total if inst.feasible(starts) else None


def solve_cpsat(inst: Instance, k: int, time_limit: float, workers: int = 2,
                ) -> tuple[list[Candidate], bool]:
    """The best schedule and up to ``k`` next-best; and whether the best is proven.

    Each session's starts are first limited to those costing at most ``delta`` more
    than its cheapest: a schedule of total cost T can only use such starts when
    T <= (sum of the cheapest) + delta, so an optimum found within the limit, at or
    under that bound, is the optimum; otherwise the limit is widened and the search
    repeated.  The bound comes from a greedy schedule, so the first try usually holds.
    """
    deadline = time.monotonic() + time_limit

    def left() -> float:
        return deadline - time.monotonic()

    finite = [inst.cost[i] < INF for i in range(inst.n)]
    if any(not f.any() for f in finite):
        return [], True
    mins = [int(inst.cost[i][finite[i]].min()) for i in range(inst.n)]
    lower = sum(mins)
    greedy = _greedy(inst)
    found: list[Candidate] = []
    proven_first = True
    span = inst.S + 1
    for rnd in range(k + 1):
        if rnd and left() <= 0:
            break
        forbidden = [c.starts for c in found]
        proven = True
        if rnd == 0 and greedy is not None:
            delta = greedy - lower
        elif found:
            delta = found[-1].total - lower + 60
        else:
            delta = max(lower // 4, 60)
        while True:
            allowed = [finite[i] & (inst.cost[i] <= mins[i] + delta) for i in range(inst.n)]
            full = all(bool((a == f).all()) for a, f in zip(allowed, finite, strict=True))
            mdl = _Model(inst, forbidden, allowed)
            status, hint, total = mdl.solve(mdl.total, None, left(), workers)
            if hint is not None:
                assert total is not None
                if total <= lower + delta or full:
                    break
                delta = total - lower  # the optimum costs at most this: now it lies within
                continue
            if status != "infeasible" or full:
                break
            delta = delta * 2 + 60
        if hint is None:
            if status != "infeasible":
                proven = False
            if rnd == 0:
                proven_first = proven
            break
        proven &= status == "optimal"
        mdl = _Model(inst, forbidden, allowed)
        mdl.model.add(mdl.total == total)
        status, h2, worst = mdl.solve(mdl.max_deleg, hint, left(), workers)
        if h2 is not None:
            hint = h2
            proven &= status == "optimal"
            mdl = _Model(inst, forbidden, allowed)
            mdl.model.add(mdl.total == total)
            mdl.model.add(mdl.max_deleg == worst)
            if span ** inst.n < 2 ** 62:
                weights = [span ** (inst.n - 1 - i) for i in range(inst.n)]
                status, h3, _ = mdl.solve(sum(w * s for w, s in zip(weights, mdl.starts, strict=True)), hint, left(), workers)
                if h3 is not None:
                    hint = h3
                proven &= status == "optimal"
            else:
                for i in range(inst.n):
                    status, h3, _ = mdl.solve(mdl.starts[i], hint, left(), workers)
                    if h3 is None:
                        proven = False
                        break
                    hint = h3
                    proven &= status == "optimal"
                    mdl.model.add(mdl.starts[i] == hint[i])
        else:
            proven = False
        if rnd == 0:
            proven_first = proven
        found.append(inst.candidate(hint, exact=proven))
    return found, proven_first
