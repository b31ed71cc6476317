"""Analytics: per-cache samples of real memcache traffic, rollups, windows, bounds, cost.

Every test drives the sampler by hand with a fake clock (``Analytics`` is built and sampled
in the service's loop thread through ``service.call``), so simulated hours take no time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from backend.analytics import COUNTERS, LATENCY_FIELDS, SAMPLE_FIELDS, Analytics
from backend.control.models import MIB
from backend.dataplane import DataPlane
from backend.engine import Mode
from backend.store import ITEM_MEMORY_OVERHEAD
from tests.backend.planes import dataplane as dataplane_of
from tests.backend.test_ascii_commands import parse_stats
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService

T0 = 1_699_999_200.0  # a whole hour (472 222 x 3600), so minute and hour buckets align


class FakeClock:
    """Time that only moves when a test says so (read in the loop thread, set between calls)."""

    def __init__(self, t: float = T0 - 1) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Sampler:
    """An ``Analytics`` on the running service's data plane, driven from the test thread."""

    def __init__(self, service: RunningService, clock: FakeClock | None = None) -> None:
        self.service = service
        self.clock = clock or FakeClock()
        self.analytics: Analytics = service.call(
            lambda: Analytics(service.service.dataplane, clock=self.clock, every_cache=True)
        )

    def tick(self, n: int = 1, step: float = 1.0) -> None:
        """Advance the clock by ``step`` and sample, ``n`` times, in one loop-thread call."""

        def run() -> None:
            for _ in range(n):
                self.clock.t += step
                self.analytics.sample()

        self.service.call(run)

    def series(self, cache_id: str, window_s: float | None = None) -> dict:
        return self.service.call(self.analytics.series, cache_id, window_s)

    def last(self, cache_id: str) -> dict:
        return self.series(cache_id)["samples"][-1]


def cache_id(cache: CacheHandle) -> str:
    return cache.info["id"]


def server_stats(wire: Wire) -> dict[str, int]:
    return {k: int(v) for k, v in parse_stats(wire.ask(b"stats\r\n")).items() if v.isdigit()}


def test_counters_and_gauges_follow_real_traffic(service: RunningService, cache: CacheHandle):
    wire = Wire.authenticated(cache)
    sampler = Sampler(service)
    sampler.tick()
    first = sampler.series(cache_id(cache))
    assert first["interval_s"] == 1.0
    [s0] = first["samples"]
    assert list(s0) == ["t", *SAMPLE_FIELDS, *LATENCY_FIELDS]  # the documented shape, in order
    assert s0["t"] == T0
    assert s0["hit_rate"] is None  # nothing to compare with yet
    assert (s0["items"], s0["memory_used"], s0["get_hits"], s0["get_misses"]) == (0, 0, 0, 0)
    assert s0["memory_limit"] == 100 * MIB
    assert s0["curr_connections"] == 1

    assert wire.ask(b"set a 0 0 10\r\n0123456789\r\n") == b"STORED\r\n"
    assert wire.ask(b"set b 0 0 2\r\nbb\r\n") == b"STORED\r\n"
    assert wire.ask(b"get a\r\n").startswith(b"VALUE a")
    assert wire.ask(b"get b\r\n").startswith(b"VALUE b")
    assert wire.ask(b"get nope\r\n") == b"END\r\n"
    assert wire.ask(b"delete b\r\n") == b"DELETED\r\n"
    truth = server_stats(wire)
    sampler.tick()
    s1 = sampler.last(cache_id(cache))
    assert s1["t"] == T0 + 1
    expected = {
        "get_hits": 2,
        "get_misses": 1,
        "cmd_get": 3,
        "cmd_set": 2,
        "cmd_delete": 1,
        "cmd_flush": 0,
        "evictions": 0,
        "items": 1,
        "curr_connections": 1,
        "memory_used": len(b"a") + 10 + ITEM_MEMORY_OVERHEAD,
    }
    assert {k: s1[k] for k in expected} == expected
    assert s1["hit_rate"] == pytest.approx(2 / 3)
    for name in ("get_hits", "get_misses", "cmd_get", "cmd_set", "cmd_delete", "evictions"):
        assert s1[name] == truth[name]  # the same numbers memcached's `stats` shows
    assert s1["memory_used"] == truth["bytes"] and s1["items"] == truth["curr_items"]
    # `stats` itself is traffic, counted after it answered: at least what it reported.
    assert s1["bytes_read"] >= truth["bytes_read"] > s0["bytes_read"]
    assert s1["bytes_written"] >= truth["bytes_written"] > s0["bytes_written"]

    assert wire.ask(b"flush_all\r\n") == b"OK\r\n"
    sampler.tick()
    s2 = sampler.last(cache_id(cache))
    assert (s2["cmd_flush"], s2["items"], s2["memory_used"]) == (1, 0, 0)
    wire.close()


def test_an_idle_cache_flushed_through_the_api_shows_it_at_the_next_sample(
    service: RunningService, cache: CacheHandle
) -> None:
    """The sampler reads an idle cache's counters only when its bytes read moved; a flush
    through the API moves no counter, yet its gauges must show at once."""
    wire = Wire.authenticated(cache)
    assert wire.ask(b"set a 0 0 10\r\n0123456789\r\n") == b"STORED\r\n"
    sampler = Sampler(service)
    sampler.tick(3)
    before = sampler.last(cache_id(cache))
    assert (before["items"], before["cmd_set"]) == (1, 1)
    answer = service.admin().post(f"/api/v1/admin/caches/{cache_id(cache)}/flush")
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 5  # the data plane flushes on its loop, after commit
    while service.call(lambda: service.service.dataplane.usage(cache_id(cache)).items):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sampler.tick()
    after = sampler.last(cache_id(cache))
    assert (after["items"], after["memory_used"], after["cmd_set"]) == (0, 0, 1)
    assert after["bytes_read"] == before["bytes_read"]  # no traffic: only the gauges moved
    wire.close()


def test_evictions_and_memory_against_the_plan_limit(service: RunningService) -> None:
    small = CacheHandle(service.create_cache("analytics-small", plan="free"))
    wire = Wire.authenticated(small)
    value = b"v" * 1_000_000
    for i in range(30):
        wire.send(b"set k%d 0 0 %d noreply\r\n" % (i, len(value)) + value + b"\r\n")
    truth = server_stats(wire)
    sampler = Sampler(service)
    sampler.tick()
    sample = sampler.last(cache_id(small))
    assert sample["memory_limit"] == 25 * MIB
    assert sample["memory_used"] == truth["bytes"] <= 25 * MIB
    assert sample["evictions"] == truth["evictions"] == 30 - sample["items"] > 0
    wire.close()


def test_hit_rate_is_per_interval(service: RunningService, cache: CacheHandle) -> None:
    wire = Wire.authenticated(cache)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    assert wire.ask(b"get k\r\n" * 5 + b"get miss\r\n" * 5).count(b"VALUE") == 5
    sampler = Sampler(service)
    sampler.tick()
    wire.ask(b"get k\r\n" * 3 + b"get miss\r\n")
    sampler.tick()
    assert sampler.last(cache_id(cache))["hit_rate"] == 0.75  # not 8/14, the cumulative rate
    sampler.tick()
    assert sampler.last(cache_id(cache))["hit_rate"] is None  # no gets in that second
    wire.ask(b"get miss\r\n")
    sampler.tick()
    assert sampler.last(cache_id(cache))["hit_rate"] == 0.0
    wire.close()


def test_counters_stay_monotonic_across_stats_reset(service: RunningService, cache: CacheHandle):
    wire = Wire.authenticated(cache)
    sampler = Sampler(service)
    cid = cache_id(cache)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    wire.ask(b"get k\r\nget k\r\nget miss\r\n")
    sampler.tick()
    before = sampler.last(cid)
    assert (before["get_hits"], before["get_misses"]) == (2, 1)

    assert wire.ask(b"stats reset\r\n") == b"RESET\r\n"
    assert server_stats(wire)["get_hits"] == 0  # the counters underneath did go back to zero
    sampler.tick()
    after = sampler.last(cid)
    for name in COUNTERS:
        assert after[name] >= before[name], name
    assert (after["get_hits"], after["get_misses"], after["cmd_set"]) == (2, 1, 1)

    # A reset followed, within one interval, by more hits than the raw counter had before
    # it: the hits alone look fine, but bytes_read went backwards, so all are carried.
    pad = b"p" * 1000
    assert wire.ask(b"set pad 0 0 1000\r\n" + pad + b"\r\n") == b"STORED\r\n"
    wire.ask(b"get k\r\nget k\r\n")
    sampler.tick()
    assert sampler.last(cid)["get_hits"] == 2 + 2  # raw: 2 since the reset
    assert wire.ask(b"stats reset\r\n") == b"RESET\r\n"
    wire.ask(b"get k\r\n" * 5)  # raw hits 5 > 2, yet only 39 bytes read since the reset
    sampler.tick()
    latest = sampler.last(cid)
    assert (latest["get_hits"], latest["get_misses"]) == (2 + 2 + 5, 1)
    assert latest["hit_rate"] == 1.0
    assert latest["cmd_set"] == 2
    series = sampler.series(cid)["samples"]
    for name in COUNTERS:
        values = [s[name] for s in series]
        assert values == sorted(values), name
    wire.close()


def test_counters_stay_monotonic_when_the_space_is_replaced(
    service: RunningService, cache: CacheHandle
) -> None:
    """What ``migration.migrate`` does to the data plane: a new, empty space elsewhere."""
    wire = Wire.authenticated(cache)
    sampler = Sampler(service)
    cid = cache_id(cache)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    wire.ask(b"get k\r\n" * 3)
    sampler.tick()
    assert sampler.last(cid)["get_hits"] == 3
    wire.ask(b"get k\r\n")  # after the last sample, before the move: must not be lost

    def move() -> str:
        dataplane = service.service.dataplane
        live = dataplane.caches[cid]
        old = live.cluster
        target = next(c.name for c in dataplane.topology.clusters() if c.name != old)
        dataplane.engine_for(live).flush()
        dataplane.stores[old].drop(cid)
        live.cluster = target
        for credential in live.credentials:
            dataplane.disconnect(credential.username)
        return target

    target = service.call(move)
    assert wire.read_to_close() == b""
    wire = Wire.authenticated(cache)  # lands on the new cluster's empty space
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    wire.ask(b"get k\r\n" * 5)  # more than before: only identity can tell it is a new space
    assert server_stats(wire)["get_hits"] == 5
    sampler.tick()
    moved = sampler.last(cid)
    assert moved["get_hits"] == 3 + 1 + 5
    assert moved["cmd_set"] == 2 and moved["cmd_flush"] == 0
    assert moved["hit_rate"] == 1.0 and moved["items"] == 1
    assert service.call(lambda: service.service.dataplane.caches[cid].cluster) == target
    wire.close()


def test_rollups_over_two_hours(service: RunningService, cache: CacheHandle) -> None:
    """120 simulated minutes, each with known traffic; check every minute and hour bucket."""
    wire = Wire.authenticated(cache)
    sampler = Sampler(service)
    cid = cache_id(cache)

    def hits_in(m: int) -> int:
        return m % 4

    def misses_in(m: int) -> int:
        return 1 if m % 3 == 0 else 0

    def peak_in(m: int) -> int:
        return len(b"big") + 100 + m + ITEM_MEMORY_OVERHEAD

    for m in range(120):
        sampler.tick()  # second 0 of minute m, before its traffic
        value = b"x" * (100 + m)
        assert wire.ask(b"set big 0 0 %d\r\n%s\r\n" % (len(value), value)) == b"STORED\r\n"
        wire.ask(b"get big\r\n" * hits_in(m) + b"get nope\r\n" * misses_in(m))
        sampler.tick(29)  # seconds 1..29 hold the big value
        assert wire.ask(b"delete big\r\n") == b"DELETED\r\n"
        sampler.tick(30)  # seconds 30..59 are empty again
    sampler.tick()  # T0 + 7200: closes minute 119 and hour 1
    assert sampler.clock.t == T0 + 7200

    day = sampler.series(cid, 86400)
    assert day["interval_s"] == 60
    minutes = day["samples"]
    assert [s["t"] for s in minutes] == [T0 + 60 * m for m in range(121)]  # 120 + the open one
    for m, bucket in enumerate(minutes[:120]):
        hits = sum(hits_in(i) for i in range(m + 1))
        misses = sum(misses_in(i) for i in range(m + 1))
        assert (bucket["get_hits"], bucket["get_misses"]) == (hits, misses), m
        assert (bucket["cmd_set"], bucket["cmd_delete"]) == (m + 1, m + 1)  # last value
        assert bucket["cmd_get"] == hits + misses
        assert bucket["memory_used"] == peak_in(m)  # the maximum, not the last (0) or mean
        assert (bucket["items"], bucket["curr_connections"]) == (1, 1)
        gets = hits_in(m) + misses_in(m)
        assert bucket["hit_rate"] == (hits_in(m) / gets if gets else None), m
    assert minutes[120]["memory_used"] == 0 and minutes[120]["hit_rate"] is None

    month = sampler.series(cid, 30 * 86400)
    assert month["interval_s"] == 3600
    hours = month["samples"]
    assert [h["t"] for h in hours] == [T0, T0 + 3600, T0 + 7200]
    for h, bucket in enumerate(hours[:2]):
        span = range(60 * h, 60 * h + 60)
        assert bucket["get_hits"] == minutes[60 * h + 59]["get_hits"]
        assert bucket["bytes_read"] == minutes[60 * h + 59]["bytes_read"]
        assert bucket["memory_used"] == peak_in(span[-1])
        hits = sum(hits_in(i) for i in span)
        assert bucket["hit_rate"] == pytest.approx(hits / (hits + sum(misses_in(i) for i in span)))
    assert hours[2]["get_hits"] == minutes[120]["get_hits"]

    # Window selection: finest tier covering the window, at most window/resolution points.
    fine = sampler.series(cid)
    assert fine["interval_s"] == 1.0 and len(fine["samples"]) == 900
    assert [s["t"] for s in fine["samples"]] == [T0 + 7200 - 899 + i for i in range(900)]
    assert len(sampler.series(cid, 600)["samples"]) == 600
    assert sampler.series(cid, 900)["interval_s"] == 1.0
    assert sampler.series(cid, 901)["interval_s"] == 60
    hour = sampler.series(cid, 3600)
    assert len(hour["samples"]) == 60 and hour["samples"][-1]["t"] == T0 + 7200
    assert len(sampler.series(cid, 7200)["samples"]) == 120
    assert sampler.series(cid, 86401)["interval_s"] == 3600
    assert len(sampler.series(cid, 3600 * 2)["samples"]) == 120
    for bad in (0, -5, float("nan")):  # refused before any state is read: safe off-loop
        with pytest.raises(ValueError):
            sampler.analytics.series(cid, bad)
    wire.close()


def test_history_is_bounded(service: RunningService, cache: CacheHandle) -> None:
    """40 simulated days (hour, then minute, then second steps) fill every tier to its cap."""
    sampler = Sampler(service)
    cid = cache_id(cache)
    sampler.tick(40 * 24, step=3600)
    sampler.tick(2000, step=60)
    sampler.tick(1000, step=1)
    assert len(sampler.series(cid)["samples"]) == 900
    assert len(sampler.series(cid, 86400)["samples"]) == 1440
    assert len(sampler.series(cid, 30 * 86400)["samples"]) == 720
    assert len(sampler.series(cid, 365 * 86400)["samples"]) == 720  # nothing coarser kept

    def lengths() -> tuple[int, ...]:
        track = sampler.analytics._tracks[cid]
        return len(track.fine), len(track.minute.buckets), len(track.hour.buckets)

    assert service.call(lengths) == (900, 1440, 720)


def test_unknown_and_forgotten_caches_have_empty_series(
    service: RunningService, cache: CacheHandle
) -> None:
    sampler = Sampler(service)
    sampler.tick(3)
    assert sampler.series("no-such-cache") == {"interval_s": 1.0, "samples": []}
    assert sampler.series("no-such-cache", 7200) == {"interval_s": 60, "samples": []}
    assert len(sampler.series(cache_id(cache))["samples"]) == 3
    service.call(sampler.analytics.forget, cache_id(cache))
    assert sampler.series(cache_id(cache))["samples"] == []


def fake_dataplane(n: int) -> DataPlane:
    return dataplane_of(n)  # as CacheCreated does: the space first (analytics never makes one)


def test_sampling_cost() -> None:
    """1 000 caches with moving counters sample in well under 50 ms (budget: 1 s tick)."""
    dataplane = fake_dataplane(1000)
    clock = FakeClock()
    analytics = Analytics(dataplane, clock=clock)
    engines = [dataplane.engine_for(c) for c in dataplane.caches.values()]
    timings = []
    for i in range(40):
        for engine in engines:
            engine.stats.get_hits += 3
            engine.stats.cmd_get += 4
            engine.stats.bytes_read += 100
            engine.store(Mode.SET, b"k%d" % i, b"v", 0, 0)  # memory and items move too
            dataplane.changes.note(engine)
        clock.t += 1
        start = time.perf_counter()
        analytics.sample()
        if i >= 5:  # the first samples also build the tracks
            timings.append(time.perf_counter() - start)
    timings.sort()
    median = timings[len(timings) // 2]
    print(
        f"\nanalytics: {median * 1e3:.2f} ms per sample of 1000 caches "
        f"({median * 1e6 / 1000:.1f} µs per cache; best {timings[0] * 1e3:.2f} ms)"
    )
    assert median < 0.050
    assert len(analytics.series("c999")["samples"]) == 40


def test_run_ticks_aligned_and_skips_after_a_slow_tick() -> None:
    """Real clock: ticks land on multiples of the interval; a slow one causes no pile-up."""
    interval = 0.02
    analytics = Analytics(fake_dataplane(3), interval_s=interval)
    stamps: list[float] = []
    real_sample: Callable[[], None] = analytics.sample

    def sample() -> None:
        stamps.append(time.time())
        if len(stamps) == 2:
            time.sleep(3.5 * interval)  # a stalled tick blocks the loop
        if len(stamps) == 3:
            raise RuntimeError("one bad tick must not end the task")
        real_sample()

    analytics.sample = sample  # type: ignore[method-assign]

    async def main() -> None:
        task = asyncio.create_task(analytics.run())
        await asyncio.sleep(15 * interval)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert 6 <= len(stamps) <= 13  # ~15 ticks minus the 3 skipped while stalled
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) > interval / 2  # missed ticks were not replayed back to back
    late = sorted((t % interval) for t in stamps)
    assert late[len(late) // 2] < interval / 2  # aligned to the clock, not drifting
    assert len(analytics.series("c0")["samples"]) == len(stamps) - 1  # the raising tick


def test_a_deleted_cache_is_dropped_after_the_fine_window() -> None:
    dataplane = fake_dataplane(2)
    clock = FakeClock()
    analytics = Analytics(dataplane, clock=clock)
    for _ in range(3):
        clock.t += 1
        analytics.sample()
    gone = dataplane.engine_of("c1")
    del dataplane.caches["c1"]  # deleted without forget(): history stays readable a while
    assert gone is not None
    dataplane.changes.note(gone)
    clock.t += 60
    analytics.sample()
    assert len(analytics.series("c1")["samples"]) == 3
    clock.t += 900
    analytics.sample()
    assert analytics.series("c1")["samples"] == []
    assert len(analytics.series("c0")["samples"]) == 5
