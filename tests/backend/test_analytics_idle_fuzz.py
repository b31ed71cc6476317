"""Lazy sampling (``backend.changes``, ``Analytics._visits`` / ``_catch_up``) against the
eager oracle (``Analytics(..., every_cache=True)``), harder than
``tests/backend/test_analytics_idle.py``: random scripts over many seeds and intervals with
clock steps onto minute and hour boundaries, tiny and backward steps, idle stretches
longer than a round, the fine window and a day, reads of the lazy side only between ticks
(``series``, ``history_bytes``, ``catch_up``: they record missed ticks early), caches
deleted (``forget``) and created again with the same id, caches created after the first
tick, ``stats reset`` then idle, moves and hide / unhide while idle, bursts of caches
created and deleted (the turn's pace, ``Analytics._visits``).

Two divergences found here were fixed (the last section keeps their reproductions): an
idle cache could wait past a round for its turn when caches were created or deleted, and
the safety-net prune judged an idle cache by its last visit, not its last tick recorded.
"""

from __future__ import annotations

import math

import pytest

from backend.analytics import FINE_RETENTION_S, ROUND_S
from backend.control.models import Cache
from backend.dataplane import DataPlane
from tests.backend.test_analytics_idle import WINDOWS, Twin

# Windows of every tier, and a few that end just inside a point.
ALL_WINDOWS = (*WINDOWS, 0.5, 59, 61, 901, 3599, 3601, 86399, 7 * 86400)


class FuzzTwin(Twin):
    """``Twin`` with caches created and deleted (as ``DataPlane._cache_created`` and
    ``_cache_deleted`` do it, then ``forget`` on both samplers, as ``CacheDeleted`` does),
    clock steps set exactly, and reads of the lazy side only."""

    def __init__(self, caches: int, seed: int, interval_s: float = 1.0) -> None:
        super().__init__(caches, seed, interval_s)
        self.interval_s = interval_s
        self.known = set(self.ids)  # every id ever used: deleted ones must answer alike too
        self.created = caches

    def add(self, cache_id: str | None = None) -> str:
        if cache_id is None:
            cache_id = f"c{self.created}"
            self.created += 1
        assert cache_id not in self.ids
        cluster = self.random.randrange(2)
        for plane in self.planes:
            clusters = [c.name for c in plane.topology.clusters()]
            cache = Cache(cache_id, f"n-{cache_id}", "100mb", "local", clusters[cluster])
            plane.changes.note(plane.engine_for(cache))  # its engine first, then the record
            plane.caches[cache_id] = cache
        self.ids.append(cache_id)
        self.known.add(cache_id)
        return cache_id

    def delete(self, cache_id: str, forget: bool = True) -> None:
        self.hidden.pop(cache_id, None)
        for plane in self.planes:
            cache = plane.caches.pop(cache_id)
            engine = plane.peek_engine(cache)
            plane.stores[cache.cluster].drop(cache_id)
            if engine is not None:
                plane.changes.note(engine)
        self.ids.remove(cache_id)
        if forget:
            self.lazy.forget(cache_id)
            self.eager.forget(cache_id)

    def peek(self, cache_id: str) -> None:
        """Read the lazy side only (what the API and the benchmarks do between ticks)."""
        r = self.random
        how = r.random()
        if how < 0.7:
            self.lazy.series(cache_id, r.choice(ALL_WINDOWS))
        elif how < 0.9:
            self.lazy.history_bytes(cache_id)
        else:
            self.lazy.catch_up()

    def at(self, t: float) -> None:
        """A tick at exactly ``t`` (skipped by both if not after the last one)."""
        self.clock.t = t
        self.lazy.sample()
        self.eager.sample()

    def check(self, windows: tuple[float | None, ...] = ALL_WINDOWS) -> None:
        for cache_id in sorted(self.known):
            for window in windows:
                lazy = self.lazy.series(cache_id, window)
                eager = self.eager.series(cache_id, window)
                assert lazy == eager, (cache_id, window, self.clock.t)


def next_step(twin: FuzzTwin) -> float:
    """The next tick's time: mostly one interval on, sometimes onto (or a hair either side
    of) a minute or hour boundary, tiny, backwards, or a jump of an hour, a day, more."""
    r, t, interval = twin.random, twin.clock.t, twin.interval_s
    roll = r.random()
    if roll < 0.75:
        return t + interval
    choices = (
        lambda: t + 0.001,
        lambda: t,  # no move: skipped
        lambda: t - r.choice((0.001, 3.0, interval)),  # a step back: skipped
        lambda: (math.floor(t / 60) + 1) * 60.0,  # exactly the next minute
        lambda: (math.floor(t / 3600) + 1) * 3600.0,  # exactly the next hour
        lambda: (math.floor(t / 60) + 1) * 60.0 - 0.001,
        lambda: (math.floor(t / 3600) + 1) * 3600.0 + 0.001,
        lambda: t + 60.0,
        lambda: t + 3600.0,
        lambda: t + r.choice((59.999, 61.0, 901.0, 3599.0, 86_400.0, 86_401.0, 2 * 86_400.0)),
    )
    return r.choice(choices)()


def fuzz(twin: FuzzTwin, ticks: int, check_every: int, churn: bool) -> None:
    r = twin.random
    actions = (
        (0.45, twin.traffic),
        (0.08, lambda c: twin.connect(c, 1)),
        (0.08, lambda c: twin.connect(c, -1)),
        (0.04, twin.flush),
        (0.05, twin.reset),
        (0.04, twin.move),
        (0.04, twin.hide),
        (0.12, twin.unhide),
        (0.10, twin.peek),
    )
    round_ticks = max(1, round(ROUND_S / twin.interval_s))
    fine_ticks = max(1, round(FINE_RETENTION_S / twin.interval_s))
    busy = max(2, len(twin.ids) // 4)
    n = 0
    while n < ticks:
        for cache_id in list(twin.ids[:busy]):
            if r.random() < 0.5:
                continue
            twin.act(cache_id, actions)
        # Per tick, scaled to a round: a few creations and deletions a round (``churn``),
        # a couple of quiet caches woken a round, reads of the lazy side only.
        if churn and r.random() < 3 / round_ticks:
            roll = r.random()
            if roll < 0.4:  # a cache created after the first tick
                twin.add()
            elif roll < 0.8 and len(twin.ids) > 3:  # deleted, perhaps created again at once
                gone = r.choice(twin.ids)
                twin.delete(gone)
                if r.random() < 0.5:
                    twin.add(gone)
            elif roll < 0.9:  # one that was deleted comes back (same id)
                again = sorted(twin.known - set(twin.ids))
                if again:
                    twin.add(r.choice(again))
            elif roll < 0.95:  # many created at once
                for _ in range(r.randint(1, 2 * len(twin.ids))):
                    twin.add()
            else:  # many deleted at once
                for gone in r.sample(twin.ids, len(twin.ids) // 2):
                    twin.delete(gone)
        if r.random() < 2 / round_ticks:  # a quiet cache wakes up
            twin.traffic(r.choice(twin.ids))
        if r.random() < (1 / round_ticks if churn else 0.03):  # (a read catches up early)
            twin.peek(r.choice(sorted(twin.known)))
        if r.random() < 0.01:  # a long idle stretch: longer than a round or the fine window
            stretch = r.choice((round_ticks + 7, fine_ticks + 3))
            for _ in range(stretch):
                twin.tick(twin.interval_s)
                if r.random() < 0.002:
                    twin.peek(r.choice(sorted(twin.known)))
            n += stretch
        twin.at(next_step(twin))
        n += 1
        if n % check_every == 0:
            twin.check((None, 30, 3600, 86400))
    twin.check()


INTERVALS = (1.0, 2.5, 60.0, 0.1)
TICKS = {1.0: 4000, 2.5: 2000, 60.0: 1500, 0.1: 8000}


@pytest.mark.parametrize("seed", range(10))
def test_fuzz(seed: int) -> None:
    """A fixed set of caches, everything else random."""
    interval = INTERVALS[seed % len(INTERVALS)]
    twin = FuzzTwin(caches=10, seed=100 + seed, interval_s=interval)
    fuzz(twin, ticks=TICKS[interval], check_every=TICKS[interval] // 4, churn=False)


@pytest.mark.parametrize("seed", range(10))
def test_fuzz_with_caches_created_and_deleted(seed: int) -> None:
    """Caches created and deleted (then created again with the same id) as well."""
    interval = INTERVALS[seed % len(INTERVALS)]
    twin = FuzzTwin(caches=10, seed=200 + seed, interval_s=interval)
    fuzz(twin, ticks=TICKS[interval], check_every=TICKS[interval] // 4, churn=True)


# Found here, then fixed: while the turn's pace followed the number of caches only, caches
# created or deleted could leave an idle cache unvisited for up to ~2 rounds, past the ticks
# the Timeline keeps, and its oldest missed ticks were lost (fine rows, minute buckets).
# Now the least recently visited are visited first, and any whose last visit is a round
# old is visited whatever the pace (``Analytics._visits``). The tests below keep the
# scripts that found it.
@pytest.mark.parametrize("seed", range(10))
def test_fuzz_ring_churn(seed: int) -> None:
    """Idle caches only (nothing noted but creations and deletions), nothing read until
    the end (a read catches up, and would hide what this looks for), and caches created
    or deleted in bursts now and then: the turn's pace (``_visits``) follows the ring's
    length, so a burst can leave a cache unvisited for longer than the ticks the Timeline
    keeps."""
    interval = 2.5
    twin = FuzzTwin(caches=5, seed=seed, interval_s=interval)
    r = twin.random
    round_ticks = round(ROUND_S / interval)
    for cache_id in twin.ids:
        twin.traffic(cache_id)
    for _ in range(1500):
        if r.random() < 2 / round_ticks:
            if r.random() < 0.5 or len(twin.ids) < 4:
                for _ in range(r.randint(1, 2 * len(twin.ids))):
                    twin.add()
            else:
                for gone in r.sample(twin.ids, len(twin.ids) // 2):
                    twin.delete(gone)
        twin.tick(interval)
    twin.check((None, 3600))


@pytest.mark.parametrize("interval", [1.0, 60.0])
def test_idle_for_more_than_a_day(interval: float) -> None:
    """One busy minute, then a day and more of ticks with nothing noted: the minute tier's
    1 440 buckets fill and roll over, the hour tier fills, the fine window is idle rows;
    the lazy side is read now and then (so catches up in pieces), the eager never."""
    twin = FuzzTwin(caches=4, seed=7, interval_s=interval)
    for cache_id in twin.ids:
        twin.traffic(cache_id)
        twin.traffic(cache_id)
    twin.tick(interval)
    twin.reset(twin.ids[0])  # a stats reset, then idle
    twin.connect(twin.ids[1], 1)  # a connection stays open all along
    twin.tick(interval)
    day = 86_400
    step = interval if interval >= 60 else 37.0  # at 1 s: few ticks, each 37 s apart
    end = twin.clock.t + day + 2 * 3600
    n = 0
    while twin.clock.t < end:
        twin.tick(step)
        n += 1
        if n % 97 == 0:
            twin.peek(twin.ids[n % 4])
    twin.check()
    minutes = twin.eager.series(twin.ids[1], day)["samples"]
    assert len(minutes) == 1440 and minutes[-1]["curr_connections"] == 1
    hours = twin.eager.series(twin.ids[1], 30 * day)["samples"]
    assert len(hours) >= 26


def test_series_read_between_ticks_do_not_change_answers() -> None:
    """The lazy side read after every tick (``series`` of every tier, ``history_bytes``,
    ``catch_up``), for hidden, idle and busy caches, across minute and hour boundaries."""
    twin = FuzzTwin(caches=6, seed=21, interval_s=2.5)
    ids = twin.ids
    twin.traffic(ids[0])
    twin.tick(2.5)
    twin.hide(ids[1])
    for n in range(700):
        if n % 50 == 0:
            twin.traffic(ids[0])
        if n == 200:
            twin.unhide(ids[1])
        if n == 300:
            twin.move(ids[2])  # while idle
        if n == 400:
            twin.hide(ids[3])
        t = twin.clock.t
        target = t + 2.5 if n % 90 else (math.floor(t / 3600) + 1) * 3600.0
        twin.at(target)
        for cache_id in ids:
            twin.lazy.series(cache_id, ALL_WINDOWS[n % len(ALL_WINDOWS)])
        twin.lazy.history_bytes(ids[n % 6])
        if n % 7 == 0:
            twin.lazy.catch_up()
    twin.check()
    assert ids[3] in twin.hidden


def test_hide_unhide_across_minute_boundaries() -> None:
    """Hidden just before a minute ends, back just after; hidden over an hour boundary and
    a round; the cache never noted but by its hide and unhide."""
    twin = FuzzTwin(caches=3, seed=22)
    cache_id = twin.ids[0]
    twin.traffic(cache_id)
    twin.tick(1)
    for _ in range(5):
        minute = (math.floor(twin.clock.t / 60) + 1) * 60.0
        twin.at(minute - 0.5)
        twin.hide(cache_id)
        twin.at(minute)
        twin.at(minute + 0.001)
        twin.unhide(cache_id)
        twin.at(minute + 1)
        twin.check((None, 30, 3600))
    hour = (math.floor(twin.clock.t / 3600) + 1) * 3600.0
    twin.at(hour - 1)
    twin.hide(cache_id)
    for _ in range(ROUND_S + 50):
        twin.tick(1)
    twin.unhide(cache_id)
    twin.tick(1)
    twin.traffic(cache_id)
    twin.tick(1)
    twin.check()
    fine = twin.eager.series(cache_id)["samples"]
    assert 0 < len(fine) < FINE_RETENTION_S  # the hidden ticks have no point


def busy_then_idle(caches: int, seed: int, ticks: int) -> FuzzTwin:
    """A twin whose caches all served traffic, then stayed idle for ``ticks`` ticks."""
    twin = FuzzTwin(caches=caches, seed=seed)
    for cache_id in twin.ids:
        twin.traffic(cache_id)
    for _ in range(ticks):
        twin.tick(1)
    return twin


def test_deleted_and_created_again_with_the_same_id() -> None:
    """Deleted while idle, while hidden, right after a reset; created again with the same
    id at once, a tick later, many ticks later: a fresh history, the same on both sides.
    (Under 600 ticks in all: the Timeline still holds every tick.)"""
    twin = busy_then_idle(4, seed=23, ticks=101)
    a, b, c, _ = twin.ids
    twin.delete(a)  # idle for 100 ticks
    twin.add(a)  # at once
    twin.hide(b)
    twin.tick(1)
    twin.delete(b)  # hidden
    twin.tick(1)
    twin.add(b)  # a tick later
    twin.reset(c)
    twin.delete(c)
    for _ in range(250):
        twin.tick(1)
    recreated = twin.clock.t
    twin.add(c)  # many ticks later
    twin.traffic(c)
    late = twin.add()  # a new one, after the first tick
    for _ in range(200):
        twin.tick(1)
    twin.check()
    assert twin.eager.series(c)["samples"][0]["t"] > recreated  # a fresh history
    assert len(twin.eager.series(late)["samples"]) == 200


def test_reset_then_idle_and_moves_while_idle() -> None:
    """``stats reset`` then a long idle; a move of an idle cache (its new engine noted), a
    move then a reset in the same tick, two moves in a row, each followed by idle."""
    twin = FuzzTwin(caches=5, seed=24, interval_s=1.0)
    ids = twin.ids
    for cache_id in ids:
        twin.traffic(cache_id)
    twin.tick(1)
    twin.traffic(ids[0])
    twin.reset(ids[0])
    for _ in range(ROUND_S + 1):
        twin.tick(1)
    twin.move(ids[1])
    twin.tick(1)
    twin.move(ids[2])
    twin.reset(ids[2])
    twin.tick(1)
    twin.move(ids[3])
    twin.move(ids[3])
    for _ in range(FINE_RETENTION_S + 5):
        twin.tick(1)
    twin.check()
    assert twin.eager.series(ids[0])["samples"][-1]["cmd_set"] > 0  # offsets carried


# -- what the fuzz found: each cache visited at least once a round, whatever changes -------
def test_one_cache_created_does_not_delay_the_turn_of_an_idle_one() -> None:
    """One idle cache, visited by turn once a round (600 ticks). A second cache is created
    just before the first one's next turn: the first is still visited within a round of
    its last visit (with a pace-only turn it waited ~850 ticks, past the 641 to 768 the
    Timeline keeps, and its oldest missed ticks were lost)."""
    twin = FuzzTwin(caches=1, seed=31)
    track = twin.lazy._tracks  # filled at the first tick
    twin.tick(1)
    while twin.lazy._timeline.ticks < 2 * ROUND_S - 100:
        twin.tick(1)
    visited = track["c0"].next  # its last visit by turn, a round after the first sample
    assert ROUND_S - 5 < visited < ROUND_S + 5
    twin.add()
    visits = [visited]
    for _ in range(ROUND_S // 2 + 100):
        twin.tick(1)
        if track["c0"].next != visits[-1]:
            visits.append(track["c0"].next)
    assert len(visits) > 1 and visits[1] - visits[0] <= ROUND_S + 1, visits
    twin.lazy.catch_up()
    twin.check((None, 3600))


def test_a_cache_deleted_and_created_again_does_not_delay_the_turn_of_an_idle_one() -> None:
    """Four caches, one deleted and created again, one hidden then deleted and created a
    tick later, one deleted and created a round later (what
    ``test_deleted_and_created_again_with_the_same_id`` does in fewer ticks): the one never
    touched keeps its whole fine window (with a pace-only turn it waited 745 ticks and lost
    75 rows)."""
    twin = busy_then_idle(4, seed=23, ticks=101)
    a, b, c, idle = twin.ids
    twin.delete(a)
    twin.add(a)
    twin.hide(b)
    twin.tick(1)
    twin.delete(b)
    twin.tick(1)
    twin.add(b)
    twin.reset(c)
    twin.delete(c)
    for _ in range(ROUND_S + 10):
        twin.tick(1)
    twin.add(c)
    twin.add()
    for _ in range(200):
        twin.tick(1)
    assert len(twin.eager.series(idle)["samples"]) == FINE_RETENTION_S
    twin.check((None, 3600))


def test_caches_deleted_in_a_round_do_not_delay_the_others() -> None:
    """200 caches at 2.5 s (a round is 240 ticks); the half the turn visited last deleted
    half way through a round, which halves the turn's pace: the others, which waited
    longest, are still visited at most a round after their last visit (with a pace-only
    turn the last waited ~1.5 rounds, past the 257 to 384 ticks the Timeline keeps)."""
    twin = FuzzTwin(caches=200, seed=32, interval_s=2.5)
    round_ticks = round(ROUND_S / 2.5)
    lazy = twin.lazy
    twin.tick(2.5)
    for _ in range(round_ticks + round_ticks // 2):
        twin.tick(2.5)
    order = list(lazy._order)  # least recently visited first
    for cache_id in order[len(order) // 2 :]:  # the half the turn visited last
        twin.delete(cache_id)
    kept = order[: len(order) // 2]
    last = {cache_id: lazy._tracks[cache_id].next for cache_id in kept}
    longest = 0
    for _ in range(2 * round_ticks):
        twin.tick(2.5)
        for cache_id in kept:
            now = lazy._tracks[cache_id].next
            if now != last[cache_id]:
                longest = max(longest, now - last[cache_id])
                last[cache_id] = now
    assert 0 < longest <= round_ticks + 1
    twin.known = set(kept)
    twin.check((None, 3600))


def test_a_cache_gone_without_forget_is_pruned_at_the_same_time() -> None:
    """A cache removed from the data plane the way ``_cache_deleted`` does it, but whose
    ``CacheDeleted`` never reached the sampler (``forget``): the safety net
    (``Analytics._prune``) drops its track once it was unseen for ``FINE_RETENTION_S``.
    Eager: last seen at the tick before removal; lazy: at its last visit, which for an
    idle cache was up to a round earlier (found here: ``_catch_up`` now sets ``seen`` to
    its last tick recorded), so its history vanished early."""
    twin = FuzzTwin(caches=3, seed=33)
    twin.traffic("c1")
    twin.tick(1)
    for _ in range(300):
        twin.tick(1)
    twin.delete("c1", forget=False)
    for n in range(FINE_RETENTION_S + 120):
        twin.tick(1)
        if n % 60 == 0:
            twin.check((None,))
    assert "c1" not in twin.eager._tracks  # the safety net did drop it in the end


def test_plane_helpers_match_the_data_plane() -> None:
    """The twin's create and delete leave the data plane as its own handlers would: the
    engine found by ``engine_of`` and ``engines_now``, gone after the delete."""
    twin = FuzzTwin(caches=1, seed=34)
    cache_id = twin.add()
    plane: DataPlane = twin.planes[0]
    assert plane.engine_of(cache_id) is not None and cache_id in plane.engines_now()
    twin.delete(cache_id)
    assert plane.engine_of(cache_id) is None and cache_id not in plane.engines_now()
