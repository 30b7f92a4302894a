"""Exact search: single sessions, chains and small unordered sets.

A schedule is a tuple of grid indices, one start per session in input order.  All
schedules are ranked by the key ``(total cost, largest delegation burden, starts)``
(the starts compared session by session in input order), so "the best schedule" and
"the K next-best" are well defined, ties included.

* one session: every grid start is priced at once and sorted;
* otherwise, for every order of the sessions allowed by ``after`` (one for a chain, at
  most 24 for four unordered sessions), a dynamic programme over the grid gives the
  least total cost; the tie-breaks are resolved exactly by a second pass over the
  slots that lie on some cost-optimal schedule, carrying for each distinct vector of
  delegation burdens the earliest starts that reach it;
* the K next-best schedules come from Lawler's partitioning of the solution space,
  with the same exact search as the oracle for each part.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .model import Problem
from .prices import INF, CostModel

__all__ = ["Candidate", "Instance", "Restriction", "SequenceSearch", "lawler", "single_session_ranking"]

#: per session: (fixed start or None, excluded starts)
Restriction = tuple[tuple[int | None, frozenset[int]], ...]

LABEL_CAP = 20_000  # distinct burden vectors kept per slot before the tie-break goes heuristic


@dataclass(frozen=True, order=True)
class Candidate:
    """One whole schedule; ordered by its ranking key."""

    total: int
    max_deleg: int
    starts: tuple[int, ...]  # grid indices, input order
    exact_tie_break: bool = field(default=True, compare=False)

    @property
    def key(self) -> tuple[int, int, tuple[int, ...]]:
        return (self.total, self.max_deleg, self.starts)


class Instance:
    """A problem's sessions priced on its grid, with the pairwise separations."""

    def __init__(self, problem: Problem, cost_model: CostModel | None = None) -> None:
        self.problem = problem
        self.cm = cost_model or CostModel(problem)
        sessions = problem.sessions
        self.n = len(sessions)
        self.index = {s.id: i for i, s in enumerate(sessions)}
        self.S = self.cm.n_starts
        self.cost: list[np.ndarray] = []
        self.deleg: list[np.ndarray] = []
        self.blocked: list[np.ndarray] = []
        for s in sessions:
            c, d, b = self.cm.session_tables(s.participants, s.duration_minutes)
            self.cost.append(c)
            self.deleg.append(d)
            self.blocked.append(b)
        self.duration = [s.duration_minutes for s in sessions]
        self.pred: list[int | None] = [None if s.after is None else self.index[s.after] for s in sessions]
        members = [set(s.participants) for s in sessions]
        gap, g = problem.min_gap_minutes, problem.grid_minutes
        self.sep = [[0] * self.n for _ in range(self.n)]
        for i in range(self.n):
            for j in range(self.n):
                if i != j and (members[i] & members[j] or self.pred[j] == i or self.pred[i] == j):
                    self.sep[i][j] = gap
        # minimal distance in grid steps from the start of i to the start of a later j
        self.steps = [[-(-(self.duration[i] + self.sep[i][j]) // g) for j in range(self.n)]
                      for i in range(self.n)]

    # ------------------------------------------------------------------ helpers
    def no_restriction(self) -> Restriction:
        return tuple((None, frozenset()) for _ in range(self.n))

    def restricted_costs(self, r: Restriction) -> list[np.ndarray]:
        out = []
        for i, (fixed, excluded) in enumerate(r):
            c = self.cost[i]
            if fixed is not None:
                c2 = np.full_like(c, INF)
                if 0 <= fixed < self.S:
                    c2[fixed] = c[fixed]
                c = c2
            elif excluded:
                c = c.copy()
                c[list(excluded)] = INF
            out.append(c)
        return out

    def deleg_vector(self, starts: Sequence[int]) -> np.ndarray:
        return sum((self.deleg[i][:, t] for i, t in enumerate(starts)),
                   np.zeros(len(self.cm.delegations), dtype=np.int64))

    def candidate(self, starts: Sequence[int], exact: bool = True) -> Candidate:
        total = int(sum(int(self.cost[i][t]) for i, t in enumerate(starts)))
        vec = self.deleg_vector(starts)
        return Candidate(total, int(vec.max()) if len(vec) else 0, tuple(int(t) for t in starts), exact)

    def feasible(self, starts: Sequence[int]) -> bool:
        """Every hard constraint, checked directly (used by tests and the solver path)."""
        g, g0 = self.cm.grid, self.cm.g0
        for i, t in enumerate(starts):
            if not 0 <= t < self.S or self.cost[i][t] >= INF:
                return False
        for i in range(self.n):
            for j in range(self.n):
                if i == j:
                    continue
                si, sj = g0 + starts[i] * g, g0 + starts[j] * g
                if self.pred[j] == i and sj < si + self.duration[i] + self.sep[i][j]:
                    return False
                if si <= sj and sj < si + self.duration[i] + self.sep[i][j]:
                    return False
        return True

    def linear_extensions(self, limit: int) -> list[tuple[int, ...]] | None:
        """Orders of the sessions that respect ``after``; None when more than ``limit``."""
        out: list[tuple[int, ...]] = []
        children: dict[int | None, list[int]] = {}
        for j, p in enumerate(self.pred):
            children.setdefault(p, []).append(j)

        def rec(prefix: list[int], ready: list[int]) -> bool:
            if len(prefix) == self.n:
                out.append(tuple(prefix))
                return len(out) <= limit
            for j in sorted(ready):
                rest = [x for x in ready if x != j] + children.get(j, [])
                prefix.append(j)
                ok = rec(prefix, rest)
                prefix.pop()
                if not ok:
                    return False
            return True

        if not rec([], list(children.get(None, []))):
            return None
        return out

    def dp_exact_for(self, order: Sequence[int]) -> bool:
        """True when the separations of consecutive sessions imply all the others, so
        that a DP over consecutive pairs sees exactly the feasible schedules."""
        for a in range(len(order)):
            acc = 0
            for c in range(a + 1, len(order)):
                acc += self.steps[order[c - 1]][order[c]]
                if acc < self.steps[order[a]][order[c]]:
                    return False
        return True


# ---------------------------------------------------------------------- one session

def single_session_ranking(inst: Instance, costs: Sequence[np.ndarray] | None = None) -> Iterator[Candidate]:
    """All feasible starts of the only session, best first."""
    c = (costs or inst.cost)[0]
    ok = np.flatnonzero(c < INF)
    if ok.size == 0:
        return
    maxd = inst.deleg[0][:, ok].max(axis=0) if inst.deleg[0].shape[0] else np.zeros(ok.size, np.int64)
    order = np.lexsort((ok, maxd, c[ok]))
    for k in order:
        yield Candidate(int(c[ok[k]]), int(maxd[k]), (int(ok[k]),))


# ---------------------------------------------------------------------- sequences

def _shift_right(a: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(a, INF)
    if k < a.size:
        out[k:] = a[:a.size - k]
    return out


def _shift_left(a: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(a, INF)
    if k < a.size:
        out[:a.size - k] = a[k:]
    return out


class SequenceSearch:
    """Exact best schedule over a fixed set of session orders (see module doc)."""

    def __init__(self, inst: Instance, orders: Sequence[tuple[int, ...]]) -> None:
        self.inst = inst
        self.orders = list(orders)

    def _forward(self, order: tuple[int, ...], costs: Sequence[np.ndarray]) -> list[np.ndarray]:
        inst = self.inst
        f = costs[order[0]]
        fs = [f]
        for k in range(1, len(order)):
            step = inst.steps[order[k - 1]][order[k]]
            f = np.minimum(_shift_right(np.minimum.accumulate(f), step) + costs[order[k]], INF)
            fs.append(f)
        return fs

    def _backward(self, order: tuple[int, ...], costs: Sequence[np.ndarray]) -> list[np.ndarray]:
        inst = self.inst
        n = len(order)
        b = costs[order[-1]]
        bs = [b]
        for k in range(n - 2, -1, -1):
            step = inst.steps[order[k]][order[k + 1]]
            suffix_min = np.minimum.accumulate(b[::-1])[::-1]
            b = np.minimum(_shift_left(suffix_min, step) + costs[order[k]], INF)
            bs.append(b)
        bs.reverse()
        return bs

    def best(self, costs: Sequence[np.ndarray]) -> Candidate | None:
        inst = self.inst
        forwards = []
        best_total = INF
        for order in self.orders:
            fs = self._forward(order, costs)
            t = int(fs[-1].min())
            forwards.append((order, fs, t))
            best_total = min(best_total, t)
        if best_total >= INF:
            return None
        total = best_total
        plans = []
        upper = INF
        for order, fs, t in forwards:
            if t != total:
                continue
            bs = self._backward(order, costs)
            optimal = [(fs[k] + bs[k] - costs[order[k]] == total) & (fs[k] < INF) for k in range(len(order))]
            # a cost-optimal schedule (earliest at each step) bounds the fairness term
            starts = [0] * inst.n
            tp = int(np.flatnonzero(optimal[0])[0])
            starts[order[0]] = tp
            for k in range(1, len(order)):
                step = inst.steps[order[k - 1]][order[k]]
                need = total - int(fs[k - 1][tp])
                cand = np.flatnonzero(bs[k][tp + step:] == need)
                tp = tp + step + int(cand[0])
                starts[order[k]] = tp
            upper = min(upper, int(inst.deleg_vector(starts).max()))
            # a lower bound on this order's best key: per delegation, the least burden of
            # each session over its cost-optimal starts; per session, its earliest one
            low_vec = sum(inst.deleg[order[k]][:, optimal[k]].min(axis=1) for k in range(len(order)))
            low_starts = [0] * inst.n
            for k in range(len(order)):
                low_starts[order[k]] = int(np.flatnonzero(optimal[k])[0])
            low = (int(np.max(low_vec)) if np.size(low_vec) else 0, tuple(low_starts))
            plans.append((low, order, fs, optimal))
        plans.sort(key=lambda p: p[0])
        best: tuple[int, tuple[int, ...]] | None = None
        exact = True
        for low, order, fs, optimal in plans:
            if best is not None and low >= best:
                continue  # this order cannot beat the best found so far
            found, ok = self._labels(order, fs, optimal, upper)
            exact &= ok
            if found is not None and (best is None or found < best):
                best = found
        assert best is not None
        return Candidate(total, best[0], best[1], exact)

    def _labels(self, order: tuple[int, ...], fs: list[np.ndarray], optimal: list[np.ndarray],
                upper: int) -> tuple[tuple[int, tuple[int, ...]] | None, bool]:
        """Least (max delegation burden, starts) over the cost-optimal schedules of one
        order: labels map each distinct burden vector to its earliest starts."""
        inst = self.inst
        exact = True
        blank = (-1,) * inst.n
        first = order[0]
        d0 = inst.deleg[first]
        prev: dict[int, dict[tuple[int, ...], tuple[int, ...]]] = {}
        for t in np.flatnonzero(optimal[0]).tolist():
            vec = tuple(d0[:, t].tolist())
            if max(vec, default=0) > upper:
                continue
            seed = list(blank)
            seed[first] = t
            prev[t] = {vec: tuple(seed)}
        for k in range(1, len(order)):
            sid = order[k]
            step = inst.steps[order[k - 1]][sid]
            f_prev = fs[k - 1]
            prefix_min = np.minimum.accumulate(f_prev)
            dk = inst.deleg[sid]
            prev_ts = sorted(prev)
            buckets: dict[int, dict[tuple[int, ...], tuple[int, ...]]] = {}
            j = 0
            cur: dict[int, dict[tuple[int, ...], tuple[int, ...]]] = {}
            for t in np.flatnonzero(optimal[k]).tolist():
                lim = t - step
                while j < len(prev_ts) and prev_ts[j] <= lim:
                    tp = prev_ts[j]
                    bucket = buckets.setdefault(int(f_prev[tp]), {})
                    for vec, st in prev[tp].items():
                        old = bucket.get(vec)
                        if old is None or st < old:
                            bucket[vec] = st
                    if len(bucket) > LABEL_CAP:
                        exact = False
                        keep = sorted(bucket.items(), key=lambda kv: (max(kv[0], default=0), kv[1]))[:LABEL_CAP]
                        buckets[int(f_prev[tp])] = bucket = dict(keep)
                    j += 1
                if lim < 0:
                    continue
                src = buckets.get(int(prefix_min[lim]))
                if not src:
                    continue
                add = dk[:, t].tolist()
                new: dict[tuple[int, ...], tuple[int, ...]] = {}
                for vec, st in src.items():
                    nv = tuple(a + b for a, b in zip(vec, add, strict=True))
                    if max(nv, default=0) > upper:
                        continue
                    s2 = list(st)
                    s2[sid] = t
                    new[nv] = tuple(s2)
                if new:
                    cur[t] = new
            prev = cur
        best: tuple[int, tuple[int, ...]] | None = None
        for labels in prev.values():
            for vec, st in labels.items():
                cand = (max(vec, default=0), st)
                if best is None or cand < best:
                    best = cand
        return best, exact


# ---------------------------------------------------------------------- K-best

def lawler(inst: Instance, oracle: Callable[[Restriction], Candidate | None], k: int) -> list[Candidate]:
    """The best schedule and the ``k`` next-best (distinct), by Lawler's partitioning:
    each solution x of a part P splits P minus x into parts where the first j-1
    sessions keep x's starts and session j avoids x's start."""
    root = inst.no_restriction()
    first = oracle(root)
    if first is None:
        return []
    counter = itertools.count()
    heap: list[tuple[tuple[int, int, tuple[int, ...]], int, Candidate, Restriction]] = [
        (first.key, next(counter), first, root)]
    out: list[Candidate] = []
    while heap and len(out) < k + 1:
        _, _, cand, r = heapq.heappop(heap)
        out.append(cand)
        if len(out) == k + 1:
            break
        for j in range(inst.n):
            parts = list(r)
            for i in range(j):
                parts[i] = (cand.starts[i], frozenset())
            fixed, excluded = parts[j]
            if fixed is not None:  # already pinned to cand's start: this part is empty
                continue
            parts[j] = (None, excluded | {cand.starts[j]})
            sub = tuple(parts)
            got = oracle(sub)
            if got is not None:
                heapq.heappush(heap, (got.key, next(counter), got, sub))
    return out
