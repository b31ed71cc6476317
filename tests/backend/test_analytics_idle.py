"""Analytics visits only the caches the data plane noted as changed (``backend.changes``)
and records an idle cache's ticks after the fact (issue 15): the answers must be those of
a sampler that visits every cache at every tick.

Two identical data planes get the same random operations; one is sampled the default way,
the other with ``every_cache``, and every cache's series are compared over every window.
Then the service's own sampler, with real clients, among idle caches.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest
from pymemcache.client.base import Client

from backend.analytics import ROUND_S, Analytics
from backend.clients import authenticating_socket_module
from backend.engine import Mode
from backend.latency import CommandLatency
from backend.store import LruEngine
from tests.backend.planes import dataplane
from tests.backend.test_latency import set_fault
from tests.conftest import CacheHandle, RunningService, make_config

T0 = 1_699_999_200.0
WINDOWS = (None, 1, 30, 299, 900, 3600, 7200, 86400, 86401, 30 * 86400)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Twin:
    """One data plane whose every change is noted as the listener and the data plane's
    event handlers note them, and a copy of it sampled at every tick."""

    def __init__(self, caches: int, seed: int, interval_s: float = 1.0) -> None:
        self.random = random.Random(seed)
        self.clock = Clock(T0)
        self.planes = (dataplane(caches), dataplane(caches))
        self.lazy = Analytics(self.planes[0], interval_s, clock=self.clock)
        self.eager = Analytics(self.planes[1], interval_s, clock=self.clock, every_cache=True)
        self.ids = [f"c{i}" for i in range(caches)]
        self.hidden: dict[str, tuple[LruEngine, LruEngine]] = {}

    def engines(self, cache_id: str) -> list[LruEngine]:
        engines = []
        for plane in self.planes:
            engine = plane.engine_of(cache_id)
            assert isinstance(engine, LruEngine)
            engines.append(engine)
        return engines

    def note(self, engines: list[LruEngine]) -> None:
        for plane, engine in zip(self.planes, engines, strict=True):
            plane.changes.note(engine)

    # -- what happens to a cache ----------------------------------------------------------
    def traffic(self, cache_id: str) -> None:
        """Commands as the listener serves them: counted, timed, the engine noted."""
        if cache_id in self.hidden:
            return  # no engine reachable: no traffic
        r = self.random
        sets, gets, deletes = r.randint(0, 3), r.randint(0, 5), r.random() < 0.2
        keys = [b"k%d" % r.randint(0, 30) for _ in range(sets + gets + 1)]
        sizes = [r.randint(10, 3000) for _ in range(sets)]
        reads = [int(r.lognormvariate(10, 1.5)) + 1 for _ in range(r.randint(1, 4))]
        engines = self.engines(cache_id)
        for engine in engines:
            for key, size in zip(keys, sizes, strict=False):
                engine.store(Mode.SET, key, b"v" * size, 0, 0)
            for key in keys[sets : sets + gets]:
                engine.get(key)
            if deletes:
                engine.delete(keys[-1])
            engine.stats.bytes_read += 20 + 1000 * sets + 20 * gets
            engine.stats.bytes_written += 900 * gets
            if engine.latency is None:
                engine.latency = CommandLatency()
            for took in reads:
                engine.latency.record(took)
        self.note(engines)

    def connect(self, cache_id: str, by: int) -> None:
        """A connection opened (1) or closed (-1): ``DataPlane.attach`` / ``detach``."""
        if cache_id in self.hidden:
            return
        engines = self.engines(cache_id)
        for engine in engines:
            engine.stats.curr_connections = max(0, engine.stats.curr_connections + by)
        self.note(engines)

    def flush(self, cache_id: str) -> None:
        """A flush through the API (``DataPlane._cache_flushed``)."""
        if cache_id in self.hidden:
            return
        engines = self.engines(cache_id)
        for engine in engines:
            engine.flush()
        self.note(engines)

    def reset(self, cache_id: str) -> None:
        """``stats reset``: a command, so read and noted."""
        if cache_id in self.hidden:
            return
        engines = self.engines(cache_id)
        for engine in engines:
            engine.stats.reset()
            engine.stats.bytes_read += 13
        self.note(engines)

    def move(self, cache_id: str) -> None:
        """A migration, as ``DataPlane._cache_moved`` does it: a new, empty engine."""
        if cache_id in self.hidden:
            return
        olds, news = self.engines(cache_id), []
        for plane, old in zip(self.planes, olds, strict=True):
            old.flush()
            cache = plane.caches[cache_id]
            target = next(c for c in plane.stores if c != cache.cluster)
            news.append(plane.stores[target].engine(cache_id, cache.limit_bytes))
            plane.stores[cache.cluster].drop(cache_id)
            cache.cluster = target
        self.note(olds)
        self.note(news)

    def hide(self, cache_id: str) -> None:
        """A move in flight: no engine for a while."""
        if cache_id in self.hidden:
            return
        engines = self.engines(cache_id)
        for plane in self.planes:
            plane.stores[plane.caches[cache_id].cluster].drop(cache_id)
        self.hidden[cache_id] = (engines[0], engines[1])
        self.note(engines)

    def unhide(self, cache_id: str) -> None:
        engines = self.hidden.pop(cache_id, None)
        if engines is None:
            return
        for plane, engine in zip(self.planes, engines, strict=True):
            plane.stores[plane.caches[cache_id].cluster].engines[cache_id] = engine
        self.note(list(engines))

    def act(self, cache_id: str, actions: Sequence[tuple[float, Callable[[str], None]]]) -> None:
        """One of ``actions`` (``(weight, action)``, weights summing to at most 1) on the
        cache, drawn at random; none for what the weights leave."""
        roll = self.random.random()
        for weight, action in actions:
            if roll < weight:
                action(cache_id)
                return
            roll -= weight

    # -- time -----------------------------------------------------------------------------
    def tick(self, step: float = 1.0) -> None:
        self.clock.t += step
        self.lazy.sample()
        self.eager.sample()

    def check(self) -> None:
        for cache_id in self.ids:
            for window in WINDOWS:
                lazy = self.lazy.series(cache_id, window)
                eager = self.eager.series(cache_id, window)
                assert lazy == eager, (cache_id, window, self.clock.t)


def run_script(twin: Twin, ticks: int, busy: list[str], check_every: int) -> None:
    r = twin.random
    actions = (
        (0.6, twin.traffic),
        (0.1, lambda c: twin.connect(c, 1)),
        (0.1, lambda c: twin.connect(c, -1)),
        (0.03, twin.flush),
        (0.03, twin.reset),
        (0.02, twin.move),
        (0.02, twin.hide),
        (0.1, twin.unhide),
    )
    for n in range(ticks):
        for cache_id in busy:
            if r.random() < 0.3:  # each busy cache idles most seconds, for runs too
                continue
            twin.act(cache_id, actions)
        if r.random() < 0.02:  # a quiet cache wakes up once in a while
            twin.traffic(r.choice(twin.ids))
        step = r.choice((1.0,) * 40 + (0.4, 7.0, 61.0, 3599.0, -3.0))
        twin.tick(step)
        if n % check_every == check_every - 1:
            twin.check()
    twin.check()


def test_answers_equal_a_sampler_that_visits_every_cache() -> None:
    """Busy caches among idle ones, through minutes, hours, clock jumps and a step back,
    moves, flushes, resets, connections: the same series, every window, every cache."""
    twin = Twin(caches=40, seed=11)
    run_script(twin, ticks=2500, busy=twin.ids[:6], check_every=400)


def test_long_idle_runs_across_rounds() -> None:
    """Caches idle for longer than a round (``ROUND_S``) are visited in turn: their runs
    are recorded in pieces, and the answers stay the same."""
    twin = Twin(caches=30, seed=12)
    for cache_id in twin.ids:
        twin.traffic(cache_id)
    twin.tick()
    for n in range(int(2.5 * ROUND_S)):
        if n % 500 == 0:
            twin.traffic(twin.ids[n % 7])
        twin.tick()
        if n % 700 == 0:
            twin.check()
    twin.check()
    # Each idle cache was visited by turn at least once a round, with no note at all.
    assert twin.lazy._turns < 1 and len(twin.lazy._order) == 30


def test_short_interval() -> None:
    twin = Twin(caches=20, seed=13, interval_s=0.1)
    run_script(twin, ticks=1500, busy=twin.ids[:4], check_every=500)


def test_an_idle_tick_costs_nothing_per_idle_cache() -> None:
    """10 000 idle caches and 10 busy ones: after the first sample, a tick visits the busy
    ones and a few in turn (10 000 / ``ROUND_S`` a second), not every cache."""
    plane = dataplane(10_000, "free")
    clock = Clock(T0)
    analytics = Analytics(plane, clock=clock)
    analytics.sample()  # visits all
    busy = [plane.engine_of(f"c{i}") for i in range(10)]
    visited: list[int] = []
    real = analytics._sample

    def counting(visits, *args):  # type: ignore[no-untyped-def]
        visited.append(len(visits))
        return real(visits, *args)

    analytics._sample = counting  # type: ignore[method-assign]
    for _ in range(60):
        for engine in busy:
            assert engine is not None
            engine.stats.bytes_read += 10
            plane.changes.note(engine)
        clock.t += 1
        analytics.sample()
    assert max(visited) <= 10 + -(-10_000 // ROUND_S) + 1, visited
    idle = analytics.series("c9999")["samples"]
    assert len(idle) == 61 and all(s["bytes_read"] == 0 for s in idle)
    assert [s["t"] for s in idle] == [T0 + i for i in range(61)]


# -- the service's own sampler, real clients ---------------------------------------------
INTERVAL_S = 0.1


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    config = make_config(tmp_path_factory.mktemp("idle"), sample_interval=INTERVAL_S)
    running = RunningService(config).start()
    yield running
    running.stop()


def client(cache: CacheHandle) -> Client:
    login = authenticating_socket_module(cache.username, cache.password)
    return Client(cache.endpoint, socket_module=login, connect_timeout=5, timeout=5)


def samples(cache: CacheHandle) -> list[dict]:
    response = httpx.get(f"{cache.dashboard_api}/stats", timeout=10)
    assert response.status_code == 200
    return response.json()["samples"]


def test_the_service_records_idle_seconds_between_bursts(fast: RunningService) -> None:
    """Among idle caches, one with bursts of real traffic and idle stretches between: its
    series has a point at every tick (idle ones recorded after the fact), its counters
    end where memcached's ``stats`` says, and an idle point has no latency."""
    idle = [CacheHandle(fast.create_cache(f"idle-{i}")) for i in range(20)]
    cache = CacheHandle(fast.create_cache("bursty"))
    memcache = client(cache)
    for burst in range(3):
        for i in range(20):
            memcache.set(f"k{burst}-{i}", b"v" * 50, noreply=False)
            assert memcache.get(f"k{burst}-{i}") == b"v" * 50
        time.sleep(15 * INTERVAL_S)  # idle: nothing notes the cache
        latest = samples(cache)[-1]  # the reads were noted; the idle ticks after them too
        assert (latest["cmd_set"], latest["get_hits"]) == (20 * (burst + 1),) * 2
        assert latest["curr_connections"] == 1 and latest["latency_p50_us"] is None
    truth = memcache.stats()
    time.sleep(3 * INTERVAL_S)  # the stats command itself is sampled
    memcache.close()
    time.sleep(3 * INTERVAL_S)

    points = samples(cache)
    # A point at every tick the sampler took (idle or not): the same times as a cache
    # that was idle all along (ticks are those of one timeline; under load some are
    # late or skipped, for every cache alike).
    quiet = samples(idle[0])
    times = [p["t"] for p in points]
    assert times == [p["t"] for p in quiet if times[0] <= p["t"] <= times[-1]]
    assert len(times) > 40
    last = points[-1]
    assert last["cmd_set"] == truth[b"cmd_set"] == 60
    assert last["get_hits"] == truth[b"get_hits"] == 60
    assert last["curr_connections"] == 0  # closed: the data plane noted it
    assert last["latency_p50_us"] is None  # an idle tick saw no read
    timed = [p for p in points if p["latency_p50_us"] is not None]
    assert timed and len(timed) < len(points) / 2
    for name in ("cmd_set", "get_hits", "bytes_read"):
        values = [p[name] for p in points]
        assert values == sorted(values), name
    # An idle cache's points are all alike.
    assert {(p["cmd_get"], p["curr_connections"], p["items"]) for p in quiet} == {(0, 0, 0)}


def test_a_reply_held_back_by_the_slow_fault_shows_in_the_next_samples(
    fast: RunningService,
) -> None:
    """One get under a 150 ms "slow" fault, then nothing: its reply is timed when it is
    written, after its read was noted and the sampler may have visited the cache, so the
    write notes it again; the latency must show within a few ticks, not a round later."""
    cache = CacheHandle(fast.create_cache("held-back"))
    memcache = client(cache)
    memcache.set("k", b"v", noreply=False)
    set_fault(fast, cache, {"mode": "slow", "delay_ms": 150})
    try:
        begun = time.time()
        assert memcache.get("k") == b"v"
    finally:
        set_fault(fast, cache, {"mode": "none"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        held = [
            p for p in samples(cache) if p["t"] >= begun and (p["latency_max_us"] or 0) >= 100_000
        ]
        if held:
            break
        time.sleep(INTERVAL_S)
    assert held, samples(cache)[-5:]
    memcache.close()
