"""A deliberately naive reference: brute-force search with per-minute zone lookups.

It shares nothing with the engine but the input model and the zone loader: every
minute's price comes from ``datetime.astimezone`` on the participant's zone, and
every combination of grid starts is tried.  Only for small instances: the property
tests compare the engine with it, and the benchmark measures how much faster the
engine is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .model import Problem, epoch_minutes
from .zones import load_zone

__all__ = ["Ranked", "brute_force", "minute_price", "slot_burdens"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: (total cost, largest delegation burden, starts in UTC epoch minutes, input order)
Ranked = tuple[int, int, tuple[int, ...]]


def minute_price(problem: Problem, pid: str, minute: int) -> int:
    """Price of UTC epoch minute ``minute`` for participant ``pid``."""
    p = problem.participant_by_id[pid]
    local = (_EPOCH + timedelta(minutes=minute)).astimezone(load_zone(p.timezone))
    tod = local.hour * 60 + local.minute
    working = local.date() not in p.holidays and any(
        a <= tod < b for a, b in p.working_hours.get(local.weekday(), ()))
    if working:
        return 0
    ns, ne = problem.night_start, problem.night_end
    night = ns <= tod < ne if ns < ne else (tod >= ns or tod < ne) if ns > ne else False
    return problem.night_weight if night else 1


def slot_burdens(problem: Problem, members: tuple[str, ...], start: int, duration: int,
                 cache: dict[tuple[str, int], int] | None = None) -> dict[str, int]:
    cache = {} if cache is None else cache
    out = {}
    for pid in members:
        total = 0
        for m in range(start, start + duration):
            key = (pid, m)
            v = cache.get(key)
            if v is None:
                v = cache[key] = minute_price(problem, pid, m)
            total += v
        out[pid] = total
    return out


def brute_force(problem: Problem, limit: int | None = None) -> list[Ranked]:
    """Every feasible schedule's ranking key, best first (at most ``limit`` kept)."""
    w0, w1 = epoch_minutes(problem.window_start), epoch_minutes(problem.window_end)
    g, gap = problem.grid_minutes, problem.min_gap_minutes
    parts = problem.participant_by_id
    sessions = problem.sessions
    grid = list(range(-(-w0 // g) * g, w1, g))
    cache: dict[tuple[str, int], int] = {}
    options: list[list[tuple[int, int, dict[str, int]]]] = []
    for s in sessions:
        opts = []
        for start in grid:
            end = start + s.duration_minutes
            if end > w1:
                break
            if any(iv.start_min < end and start < iv.end_min
                   for pid in s.participants for iv in parts[pid].unavailable):
                continue
            burdens = slot_burdens(problem, s.participants, start, s.duration_minutes, cache)
            per_deleg: dict[str, int] = {}
            for pid, b in burdens.items():
                per_deleg[parts[pid].delegation] = per_deleg.get(parts[pid].delegation, 0) + b
            opts.append((start, sum(burdens.values()), per_deleg))
        options.append(opts)
    ids = {s.id: i for i, s in enumerate(sessions)}
    sep = [[gap if (set(a.participants) & set(b.participants) or b.after == a.id or a.after == b.id) else 0
            for b in sessions] for a in sessions]
    out: list[Ranked] = []
    chosen: list[int] = []

    def compatible(j: int, sj: int) -> bool:
        ej = sj + sessions[j].duration_minutes
        after_j = sessions[j].after
        for i, si in enumerate(chosen):
            ei = si + sessions[i].duration_minutes
            if not (sj >= ei + sep[i][j] or si >= ej + sep[i][j]):
                return False
            if after_j is not None and ids[after_j] == i and sj < ei + gap:
                return False
            after_i = sessions[i].after
            if after_i is not None and ids[after_i] == j and si < ej + gap:
                return False
        return True

    picks: list[tuple[int, int, dict[str, int]]] = []

    def rec(j: int) -> None:
        if j == len(sessions):
            deleg: dict[str, int] = {}
            for _, _, pd in picks:
                for d, b in pd.items():
                    deleg[d] = deleg.get(d, 0) + b
            out.append((sum(c for _, c, _ in picks), max(deleg.values(), default=0),
                        tuple(chosen)))
            return
        for opt in options[j]:
            if compatible(j, opt[0]):
                chosen.append(opt[0])
                picks.append(opt)
                rec(j + 1)
                picks.pop()
                chosen.pop()

    rec(0)
    out.sort()
    return out if limit is None else out[:limit]
