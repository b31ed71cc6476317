"""Command latency (issue 16 item 5): recorded per read on the serving loop, sampled into
the stats series, exposed as Prometheus histograms.

The recorder's arithmetic is checked against exact percentiles of known durations; the
rest runs a real service (analytics every 0.2 s) with real pymemcache clients: their
reads show up in the dashboard's and /api/v2's stats and in /metrics, the "slow" fault's
delay shows up in p50 / p99 / max within a few samples, and a read that answers nothing
(the login, a ``noreply`` set) is not counted.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymemcache.client.base import Client

from backend.analytics import Analytics
from backend.clients import authenticating_socket_module
from backend.control.models import Cache
from backend.dataplane import DataPlane
from backend.latency import (
    BOUNDS_NS,
    BUCKETS,
    LEVELS_US,
    MAX,
    PROMETHEUS_BOUNDS_S,
    TIMED_PER_S,
    TIMED_PER_S_PROCESS,
    CommandLatency,
    level,
    levels,
    merge,
    prometheus_buckets,
    quantile,
    rounded,
    summary,
)
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config

INTERVAL_S = 0.2
SLOW_MS = 40


# -- the recorder --------------------------------------------------------------------------
def exact(values: list[int], q: float) -> int:
    """The nearest-rank ``q`` quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(len(ordered) * q) - 1)]


def test_percentiles_are_within_their_bucket_of_the_exact_ones() -> None:
    rnd = random.Random(7)
    for _ in range(200):
        values = [int(rnd.lognormvariate(rnd.uniform(8, 17), rnd.uniform(0.1, 2))) + 1]
        values += [int(rnd.lognormvariate(10, 1.5)) + 1 for _ in range(rnd.randint(0, 3000))]
        recorder = CommandLatency()
        for ns in values:
            recorder.record(ns)
        window = recorder.take()
        assert window is not None and recorder.take() is None  # taken once
        assert window[MAX] == max(values)
        for q in (0.5, 0.99):
            want, got = exact(values, q), quantile(window, q)
            # Same bucket (bounds up to a third apart), or the neighbouring one at its edge.
            assert want / 1.5 - 1000 <= got <= want * 1.5 + 1000, (q, want, got)
        p50, p99, top = summary(window)
        assert p50 <= p99 <= top == round(max(values) / 1000)


def test_a_steady_delay_reads_as_itself_not_as_its_bucket_bound() -> None:
    recorder = CommandLatency()
    for extra in range(100):
        recorder.record(40_000_000 + extra * 1000)  # 40.0 to 40.1 ms: bucket (40, 50] ms
    p50, p99, top = summary(recorder.take())
    assert 40_000 <= p50 <= p99 <= top == 40_099


def test_history_levels_keep_a_latency_within_five_percent() -> None:
    """What analytics stores: the nearest level, 5.1 % at most (1 µs below 20 µs), each
    level its own code, clamped above the last; levels of a window are summary's."""
    assert [level(us) for us in LEVELS_US] == list(range(len(LEVELS_US)))
    assert level(-1) == -1 and rounded(-1) == -1 and rounded(0) == 0
    for us in range(0, 20):
        assert abs(rounded(us) - us) <= 1
    rnd = random.Random(11)
    for us in [*range(20, 5000), *(int(rnd.lognormvariate(10, 4)) + 20 for _ in range(5000))]:
        got = rounded(us)
        assert abs(got - us) <= 0.051 * us, (us, got)
        assert rounded(got) == got
        assert LEVELS_US[level(us)] == got
    assert rounded(10**15) == LEVELS_US[-1] == 10**12
    recorder = CommandLatency()
    for ns in (40_000_000, 40_050_000, 40_099_000):
        recorder.record(ns)
    window = recorder.take()
    assert [LEVELS_US[v] for v in levels(window)] == [rounded(us) for us in summary(window)]
    assert levels(None) == (-1, -1, -1)


def test_windows_merge_into_the_percentiles_of_all_their_reads() -> None:
    rnd = random.Random(3)
    a, b, both = CommandLatency(), CommandLatency(), CommandLatency()
    for _ in range(500):
        ns = int(rnd.lognormvariate(11, 1)) + 1
        (a if rnd.random() < 0.3 else b).record(ns)
        both.record(ns)
    merged = merge(a.take(), b.take())  # type: ignore[arg-type]
    assert merged == both.take()


def test_prometheus_buckets_count_every_read_at_or_under_their_bound() -> None:
    rnd = random.Random(5)
    values = [int(rnd.lognormvariate(12, 2)) + 1 for _ in range(5000)]
    values += [round(b * 1e9) for b in PROMETHEUS_BOUNDS_S]  # exactly on a bound: counted in it
    recorder = CommandLatency()
    for ns in values:
        recorder.record(ns)
    recorder.take()
    expected = [sum(v <= round(b * 1e9) for v in values) for b in PROMETHEUS_BOUNDS_S]
    assert prometheus_buckets(recorder.total) == [*expected, len(values)]
    assert recorder.total[-1] == sum(values) and recorder.count == len(values)
    assert len(BOUNDS_NS) + 1 == BUCKETS


def serve(recorder: CommandLatency, reads: int) -> None:
    """What the listener does: one read in ``every`` timed (all taking 20 µs here)."""
    for i in range(reads):
        if i % recorder.every == 0:
            recorder.record(20_000)


def test_a_busy_cache_times_about_its_budget_and_scales_the_counts_back() -> None:
    recorder = CommandLatency()
    serve(recorder, 50_000)
    first = recorder.take()
    assert first is not None and recorder.timed == 50_000  # every read, until it is known busy
    assert recorder.every == 50_000 // TIMED_PER_S
    serve(recorder, 50_000)
    second = recorder.take()
    assert second is not None and recorder.timed == TIMED_PER_S
    assert sum(second[:BUCKETS]) == 50_000  # scaled back up: an estimate of every read
    assert recorder.count == 100_000
    assert recorder.take() is None and recorder.every == 1  # quiet: time every read again


def test_many_small_caches_share_the_process_budget() -> None:
    """Fifty caches each under the per-cache budget would have every read of the process
    timed: analytics lowers the per-cache budget until the process times about its own,
    and raises it again when they quieten."""
    plane = DataPlane(default_topology(), AuthThrottle())
    cluster = next(iter(plane.topology.clusters()))
    recorders = []
    for i in range(50):
        cache = Cache(f"c{i}", f"n{i}", "100mb", cluster.region, cluster.name)
        engine = plane.engine_for(cache)
        plane.caches[cache.id] = cache
        engine.latency = CommandLatency()
        recorders.append(engine.latency)
    clock = [1_700_000_000.0]
    analytics = Analytics(plane, clock=lambda: clock[0])

    engines = [plane.engine_of(f"c{i}") for i in range(50)]

    def second(reads: int) -> int:
        for recorder, engine in zip(recorders, engines, strict=True):
            serve(recorder, reads)
            assert engine is not None
            plane.changes.note(engine)  # as the listener does at each read
        clock[0] += 1
        analytics.sample()
        return sum(r.timed for r in recorders)

    assert second(800) == 50 * 800  # known only once sampled
    timed = [second(800) for _ in range(5)]
    assert all(TIMED_PER_S_PROCESS // 2 <= t <= TIMED_PER_S_PROCESS for t in timed[1:]), timed
    second(10)  # traffic falls (the busy interval's sampling still applies to this one)
    assert analytics._timed == TIMED_PER_S
    assert second(10) == 50 * 10  # every read timed again


# -- the running service -------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    config = make_config(tmp_path_factory.mktemp("data"), sample_interval=INTERVAL_S)
    running = RunningService(config).start()
    yield running
    running.stop()


_names = iter(range(1, 1000))


@pytest.fixture
def fast_cache(fast: RunningService) -> CacheHandle:
    return CacheHandle(fast.create_cache(f"latency-{next(_names)}"))


def client(cache: CacheHandle) -> Client:
    login = authenticating_socket_module(cache.username, cache.password)
    return Client(cache.endpoint, socket_module=login, connect_timeout=5, timeout=5)


def samples(cache: CacheHandle, since: float | None = None) -> list[dict]:
    params = {} if since is None else {"since": since}
    response = httpx.get(f"{cache.dashboard_api}/stats", params=params, timeout=10)
    assert response.status_code == 200
    return response.json()["samples"]


def wait_for_sample(cache: CacheHandle, check, since: float, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in samples(cache, since) if check(s)]
        if found:
            return found[0]
        time.sleep(INTERVAL_S / 2)
    raise AssertionError(f"no such sample in {timeout} s: {samples(cache, since)[-5:]}")


def metric_samples(service: RunningService, name: str) -> list:
    text = httpx.get(f"{service.api_url}/metrics", timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families.get(name)
    return [] if family is None else family.samples


def set_fault(service: RunningService, cache: CacheHandle, body: dict) -> None:
    status = httpx.get(f"{service.api_url}/api/v1/status", timeout=10).json()
    cluster = next(
        c for r in status["regions"] for c in r["clusters"] if c["name"] == cache.info["cluster"]
    )
    with service.admin() as admin:
        for proxy in cluster["proxies"]:
            response = admin.post(f"/api/v1/admin/proxies/{proxy['hostname']}/fault", json=body)
            assert response.status_code == 200, response.text


def test_reads_show_in_the_stats_and_the_histogram(
    fast: RunningService, fast_cache: CacheHandle
) -> None:
    started = time.time()
    memcache = client(fast_cache)
    memcache.set("k", b"v" * 100, noreply=False)
    for _ in range(200):
        assert memcache.get("k") == b"v" * 100
    memcache.close()
    point = wait_for_sample(fast_cache, lambda s: s["latency_p50_us"] is not None, started)
    assert 0 < point["latency_p50_us"] <= point["latency_p99_us"] <= point["latency_max_us"]
    assert point["latency_max_us"] < 5_000_000  # a get on loopback, even on a busy machine

    # /api/v2 serves the same series (a credential with the api capability: the primary).
    base = f"{fast.api_url}/api/v2/caches/{fast_cache.info['id']}"
    auth = (fast_cache.username, fast_cache.password)
    v2 = httpx.get(f"{base}/stats", auth=auth, params={"since": started}, timeout=10).json()
    assert any(s["latency_p50_us"] is not None for s in v2["samples"])

    name = fast_cache.info["name"]
    deadline = time.monotonic() + 10
    while True:  # the histogram follows analytics' takes
        mine = [
            s
            for s in metric_samples(fast, "cachier_cache_command_duration_seconds")
            if s.labels.get("cache") == name
        ]
        count = next((s.value for s in mine if s.name.endswith("_count")), 0)
        if count >= 201 or time.monotonic() > deadline:
            break
        time.sleep(INTERVAL_S)
    assert count == 201  # the set and 200 gets; not the login
    buckets = {s.labels["le"]: s.value for s in mine if s.name.endswith("_bucket")}
    assert list(buckets)[-1] == "+Inf" and buckets["+Inf"] == count
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    total = next(s.value for s in mine if s.name.endswith("_sum"))
    assert 0 < total < count * 5  # seconds
    cluster = [
        s
        for s in metric_samples(fast, "cachier_cluster_command_duration_seconds")
        if s.labels.get("cluster") == fast_cache.info["cluster"] and s.name.endswith("_count")
    ]
    assert cluster and cluster[0].value >= count


def test_the_slow_fault_shows_in_p50_p99_and_max(
    fast: RunningService, fast_cache: CacheHandle
) -> None:
    memcache = client(fast_cache)
    memcache.set("k", b"value", noreply=False)
    set_fault(fast, fast_cache, {"mode": "slow", "delay_ms": SLOW_MS})
    try:
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                memcache.get("k")

        begun = time.time()
        worker = threading.Thread(target=traffic)
        worker.start()
        try:
            point = wait_for_sample(
                fast_cache,
                lambda s: (s["latency_p50_us"] or 0) >= SLOW_MS * 1000,
                begun,
            )
        finally:
            stop.set()
            worker.join()
    finally:
        set_fault(fast, fast_cache, {"mode": "none"})
        memcache.close()
    # Within a few samples of the first slow reply (SLOW_MS after ``begun``).
    assert point["t"] - (begun + SLOW_MS / 1000) < 10 * INTERVAL_S + 1.0
    assert SLOW_MS * 1000 <= point["latency_p50_us"] <= point["latency_p99_us"]
    assert point["latency_p99_us"] <= point["latency_max_us"] < SLOW_MS * 1000 + 1_000_000
    slow = [
        s
        for s in metric_samples(fast, "cachier_cache_command_duration_seconds")
        if s.labels.get("cache") == fast_cache.info["name"] and s.name.endswith("_bucket")
    ]
    le = {s.labels["le"]: s.value for s in slow}
    assert le["+Inf"] - le["0.025"] >= 1  # the delayed replies, above 25 ms


def test_the_login_and_noreply_reads_are_not_counted(
    fast: RunningService, fast_cache: CacheHandle
) -> None:
    begun = time.time()
    wire = Wire.authenticated(fast_cache)  # the login read answers STORED: not counted
    wire.send(b"set a 0 0 1 noreply\r\nx\r\n")  # answers nothing
    time.sleep(5 * INTERVAL_S)
    assert all(s["latency_p50_us"] is None for s in samples(fast_cache, begun))
    assert wire.ask(b"get a\r\n") == b"VALUE a 0 1\r\nx\r\nEND\r\n"  # one read: counted
    point = wait_for_sample(fast_cache, lambda s: s["latency_max_us"] is not None, begun)
    assert point["latency_p50_us"] <= point["latency_max_us"]
    wire.close()


def test_per_cache_off_keeps_the_cluster_histogram(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = make_config(
        tmp_path_factory.mktemp("data"), sample_interval=INTERVAL_S, metrics_per_cache=False
    )
    running = RunningService(config).start()
    try:
        cache = CacheHandle(running.create_cache("quiet"))
        memcache = client(cache)
        for i in range(20):
            memcache.set(f"k{i}", b"v", noreply=False)
        memcache.close()
        deadline = time.monotonic() + 10
        count = 0.0
        while count < 20 and time.monotonic() < deadline:
            time.sleep(INTERVAL_S)
            count = sum(
                s.value
                for s in metric_samples(running, "cachier_cluster_command_duration_seconds")
                if s.name.endswith("_count")
            )
        assert count == 20
        assert metric_samples(running, "cachier_cache_command_duration_seconds") == []
    finally:
        running.stop()
