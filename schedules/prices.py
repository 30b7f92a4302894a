"""The cost model: minute prices per participant and per-slot costs.

For every participant each UTC minute of the window gets a price from the
participant's local wall-clock time at that minute (the zone's UTC offset is taken
minute by minute, so daylight-saving changes and 30/45-minute offsets are exact):
0 inside working hours, ``night_weight`` inside the night band, 1 otherwise.  A
public holiday, or a weekday missing from ``working_hours``, has no working hours.

Implementation: per zone, the local minute of every UTC minute of the window (one
array); per participant profile (zone, working hours, holidays) a table of minute
*kinds* for each local day (working, night, before/after/between working hours,
holiday, day without working hours), gathered through those local minutes; the
prices' prefix sums then give the cost of any slot in O(1).  Participants with the
same profile share the arrays.

Prices are constant between breakpoints (local midnights, working-hour and night
boundaries, offset changes); when all of them, the grid, the durations and the window
start are multiples of some ``unit`` (15 minutes, typically), the arrays hold one
entry per unit instead of per minute, which is exact and ``unit`` times smaller.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np

from .model import Participant, Problem, epoch_minutes
from .zones import offset_segments

__all__ = [
    "INF",
    "KIND_AFTER",
    "KIND_BEFORE",
    "KIND_BETWEEN",
    "KIND_HOLIDAY",
    "KIND_NIGHT",
    "KIND_OFFDAY",
    "KIND_WORK",
    "N_KINDS",
    "CostModel",
    "minute_kinds",
]

INF = 1 << 60  # "infeasible" sentinel in int64 cost arrays
_EPOCH_DAY = date(1970, 1, 1)

# kinds of local minutes; KIND_OFFDAY + weekday for days without working hours
KIND_WORK, KIND_NIGHT, KIND_BEFORE, KIND_AFTER, KIND_BETWEEN, KIND_HOLIDAY, KIND_OFFDAY = range(7)
N_KINDS = KIND_OFFDAY + 7


def night_row(problem: Problem) -> np.ndarray:
    t = np.zeros(1440, dtype=bool)
    ns, ne = problem.night_start, problem.night_end
    if ns < ne:
        t[ns:ne] = True
    elif ns > ne:
        t[ns:] = True
        t[:ne] = True
    return t


def _week_rows(p: Participant, night: np.ndarray) -> np.ndarray:
    """(8, 1440) kinds: rows 0-6 the weekdays, row 7 a public holiday."""
    rows = np.empty((8, 1440), dtype=np.int8)
    for d in range(7):
        spans = p.working_hours.get(d, ())
        row = rows[d]
        if not spans:
            row[:] = KIND_OFFDAY + d
        else:
            row[:] = KIND_BETWEEN
            row[:spans[0][0]] = KIND_BEFORE
            row[spans[-1][1]:] = KIND_AFTER
            for a, b in spans:
                row[a:b] = KIND_WORK
    rows[7] = KIND_HOLIDAY
    rows[(rows != KIND_WORK) & night[None, :]] = KIND_NIGHT
    return rows


def minute_kinds(p: Participant, problem: Problem, local: np.ndarray, night: np.ndarray | None = None) -> np.ndarray:
    """Kind of each minute for participant ``p``, given the local epoch minutes."""
    day0 = int(local[0] // 1440) if local.size else 0
    day1 = int(local[-1] // 1440) if local.size else 0
    days = np.arange(day0, day1 + 1, dtype=np.int64)
    row_of_day = (days + 3) % 7  # 1970-01-01 was a Thursday
    if p.holidays:
        hol = {(h - _EPOCH_DAY).days for h in p.holidays}
        for k, d in enumerate(days.tolist()):
            if d in hol:
                row_of_day[k] = 7
    table = _week_rows(p, night_row(problem) if night is None else night)[row_of_day].ravel()
    kinds: np.ndarray = table[local - day0 * 1440]
    return kinds


class CostModel:
    """Prices and slot costs of one problem over its window and grid."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.w0 = epoch_minutes(problem.window_start)
        self.w1 = epoch_minutes(problem.window_end)
        self.minutes = self.w1 - self.w0
        g = problem.grid_minutes
        self.grid = g
        self.g0 = -(-self.w0 // g) * g  # first grid point (UTC-midnight aligned) in the window
        self.n_starts = max(0, (self.w1 - 1 - self.g0) // g + 1) if self.g0 < self.w1 else 0
        self.participants = {p.id: p for p in problem.participants}
        self.delegations: list[str] = []
        for p in problem.participants:
            if p.delegation not in self.delegations:
                self.delegations.append(p.delegation)
        self.deleg_index = {d: i for i, d in enumerate(self.delegations)}
        w = problem.night_weight
        self._used = {pid for s in problem.sessions for pid in s.participants}
        self._segments = {z: offset_segments(z, self.w0, self.w1)
                          for z in dict.fromkeys(self.participants[pid].timezone
                                                 for s in problem.sessions for pid in s.participants)}
        self.unit = u = self._unit()
        self.blocks = -(-self.minutes // u)
        self._price_of_kind = np.array([0, w] + [1] * (N_KINDS - 2), dtype=np.int64) * u
        self._night = night_row(problem)
        self._local: dict[str, np.ndarray] = {}
        self._by_profile: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        self.kinds: dict[str, np.ndarray] = {}
        self.prefix: dict[str, np.ndarray] = {}
        for p in problem.participants:
            if p.id in self._used:
                self.kinds[p.id], self.prefix[p.id] = self._profile(p)

    def _unit(self) -> int:
        """Largest block length (minutes) within which no price can change."""
        pr = self.problem
        values = [1440, self.grid, self.w0, pr.night_start, pr.night_end]
        values += [s.duration_minutes for s in pr.sessions]
        for p in pr.participants:
            if p.id not in self._used:
                continue
            for spans in p.working_hours.values():
                for a, b in spans:
                    values += [a, b]
        for segs in self._segments.values():
            for k, (a, _, off) in enumerate(segs):
                values += [off] if k == 0 else [a, off]
        return math.gcd(*values) or 1

    def local(self, zone: str) -> np.ndarray:
        """Local epoch minute at the start of every block of the window, in ``zone``."""
        arr = self._local.get(zone)
        if arr is None:
            u = self.unit
            offs = np.empty(self.blocks, dtype=np.int64)
            for a, b, off in self._segments[zone]:
                offs[-(-(a - self.w0) // u):-(-(b - self.w0) // u)] = off
            arr = self._local[zone] = np.arange(self.w0, self.w0 + self.blocks * u, u, dtype=np.int64) + offs
        return arr

    def _profile(self, p: Participant) -> tuple[np.ndarray, np.ndarray]:
        key = p.profile_key()
        got = self._by_profile.get(key)
        if got is None:
            kinds = minute_kinds(p, self.problem, self.local(p.timezone), self._night)
            prefix = np.zeros(self.blocks + 1, dtype=np.int64)
            np.cumsum(self._price_of_kind[kinds], out=prefix[1:])
            got = self._by_profile[key] = (kinds, prefix)
        return got

    def burden(self, pid: str, start: int, end: int) -> int:
        """Weighted minutes of participant ``pid`` in UTC epoch minutes [start, end)."""
        f, u = self.prefix[pid], self.unit
        return int(f[(end - self.w0) // u] - f[(start - self.w0) // u])

    def kind_counts(self, pid: str, start: int, end: int) -> np.ndarray:
        """Minutes of each kind in UTC epoch minutes [start, end) (block-aligned)."""
        u = self.unit
        return np.bincount(self.kinds[pid][(start - self.w0) // u:(end - self.w0) // u], minlength=N_KINDS) * u

    # -- grid --------------------------------------------------------------------
    def start_minute(self, t: int) -> int:
        return self.g0 + t * self.grid

    def valid_count(self, duration: int) -> int:
        """Number of grid starts t = 0.. at which a session of ``duration`` fits."""
        if self.n_starts == 0:
            return 0
        last = self.w1 - duration
        if last < self.g0:
            return 0
        return min(self.n_starts, (last - self.g0) // self.grid + 1)

    def session_tables(self, members: tuple[str, ...], duration: int,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(cost, deleg, blocked) over all grid starts: ``cost`` int64 with INF where
        the slot leaves the window or meets an unavailable interval; ``deleg`` the
        per-delegation burden (rows = delegations); ``blocked`` marks starts excluded
        by unavailability."""
        s = self.n_starts
        deleg = np.zeros((len(self.delegations), s), dtype=np.int64)
        cost = np.full(s, INF, dtype=np.int64)
        blocked = np.zeros(s, dtype=bool)
        k = self.valid_count(duration)
        if k == 0:
            return cost, deleg, blocked
        u = self.unit
        idx = (self.g0 - self.w0) // u + np.arange(k, dtype=np.int64) * (self.grid // u)
        groups: dict[tuple[int, int], list[Any]] = {}  # same delegation and prices: priced once
        for pid in members:
            d = self.deleg_index[self.participants[pid].delegation]
            f = self.prefix[pid]
            groups.setdefault((d, id(f)), [f, 0])[1] += 1
        for (d, _), (f, count) in groups.items():
            slot = f[idx + duration // u] - f[idx]
            deleg[d, :k] += slot if count == 1 else slot * count
        cost[:k] = deleg[:, :k].sum(axis=0)
        for pid in members:
            for iv in self.participants[pid].unavailable:
                u0, u1 = iv.start_min, iv.end_min
                # start s is blocked iff s < u1 and s + duration > u0
                lo = max(0, -(-(u0 - duration + 1 - self.g0) // self.grid))
                hi = min(k, -(-(u1 - self.g0) // self.grid))
                if lo < hi:
                    blocked[lo:hi] = True
        cost[:k][blocked[:k]] = INF
        return cost, deleg, blocked
