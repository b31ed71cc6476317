"""``/metrics`` that scales: kept between scrapes, per-cache series optional (issue 15).

Most tests build the service's parts in process (a real SQLite control plane, the real data
plane following its events, the real monitor; no sockets) and read the exposition as
Prometheus does, with ``prometheus_client``'s parser; the figures they expect come from the
caches' engines. The last ones scrape a running service over HTTP, with
``--metrics-per-cache`` on and off, and lint the text with ``promtool`` (Debian package
``prometheus``) when it is installed.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.cli import build_parser, config_from_args
from backend.control.database import open_repository, parse_database_url
from backend.control.models import Cache
from backend.control.plane import ControlPlane
from backend.control.secrets import Secrets
from backend.dataplane import DataPlane
from backend.engine import Mode
from backend.events import EventBus
from backend.metrics import CACHE_COUNTERS, Exposition
from backend.monitor import Monitor
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config, require_tool
from tui.cli import build_tui_parser

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
GAUGES = {"items": "items", "bytes": "bytes", "limit_bytes": "limit"}


class World:
    """The control plane, the data plane and the monitor, wired as the service wires them."""

    def __init__(self, tmp_path: Path) -> None:
        topology = default_topology()
        self.repository = open_repository(parse_database_url(""), tmp_path)
        bus = EventBus()
        self.dataplane = DataPlane(topology, AuthThrottle())
        self.dataplane.subscribe(bus)  # no loop: events are delivered at once
        self.control = ControlPlane(
            self.repository, Secrets.load_or_create(tmp_path), topology, bus, self.dataplane
        )
        self.control.endpoints = {r.name: "127.0.0.1:11211" for r in topology.regions}
        self.monitor = Monitor(self.dataplane, self.repository)

    def traffic(self, cache: Cache, gets: int = 1, sets: int = 1) -> None:
        engine = self.dataplane.engine_for(cache)
        for i in range(sets):
            engine.store(Mode.SET, b"key%d" % i, b"v" * (10 + i), 0, 0)
        for i in range(gets):
            engine.get(b"key%d" % i)
        self.dataplane.changes.note(engine)  # as the listener notes each read


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def parse(text: bytes | str) -> Samples:
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def cache_figures(world: World, cache: Cache) -> dict[str, int]:
    """What the cache's series must say: read from its engine."""
    engine = world.dataplane.engine_for(cache)
    usage = engine.usage()
    figures = {f"cachier_cache_{n}_total": getattr(engine.stats, n) for n in CACHE_COUNTERS}
    figures |= {f"cachier_cache_{n}": getattr(usage, f) for n, f in GAUGES.items()}
    figures["cachier_cache_connections"] = engine.stats.curr_connections
    return figures


def assert_cache_series(samples: Samples, world: World, cache: Cache) -> None:
    label = (("cache", cache.name),)
    shown = {name: samples[(name, label)] for name in cache_figures(world, cache)}
    assert shown == cache_figures(world, cache)


def cluster_value(samples: Samples, family: str, cluster: str) -> float:
    return samples[(family, (("cluster", cluster),))]


def test_every_cache_series_shows_its_engine_figures(world: World) -> None:
    caches = [world.control.create_cache(f"c{i}", "100mb") for i in range(5)]
    for i, cache in enumerate(caches):
        world.traffic(cache, gets=i, sets=2 * i)
    samples = parse(Exposition(world.dataplane, world.monitor)())
    for cache in caches:
        assert_cache_series(samples, world, cache)
    # the per-cluster series add the caches of their cluster up
    for cluster in ("local-a", "local-b"):
        on = [c for c in caches if c.cluster == cluster]
        assert cluster_value(samples, "cachier_cluster_caches", cluster) == len(on)
        for name in ("cmd_get_total", "cmd_set_total", "items", "bytes", "limit_bytes"):
            expected = sum(cache_figures(world, c)[f"cachier_cache_{name}"] for c in on)
            assert cluster_value(samples, f"cachier_cluster_{name}", cluster) == expected


def test_later_scrapes_follow_changes_deletions_and_resets(world: World) -> None:
    a, b, c = (world.control.create_cache(name, "100mb") for name in ("a", "b", "c"))
    for cache in (a, b, c):
        world.traffic(cache, gets=3, sets=3)
    exposition = Exposition(world.dataplane, world.monitor)
    first = parse(exposition())
    world.traffic(a, gets=5, sets=1)
    second = parse(exposition())
    assert_cache_series(second, world, a)
    assert second[("cachier_cache_cmd_get_total", (("cache", "a"),))] == 8
    for cache in (b, c):  # unchanged, and still there
        assert_cache_series(second, world, cache)

    cluster_of_c = c.cluster
    gets_before = cluster_value(second, "cachier_cluster_cmd_get_total", cluster_of_c)
    bytes_before = cluster_value(second, "cachier_cluster_bytes", cluster_of_c)
    c_bytes = second[("cachier_cache_bytes", (("cache", "c"),))]
    world.control.delete_cache(c)
    third = parse(exposition())
    assert not [key for key in third if key[1] == (("cache", "c"),)]
    # the cluster's gauges lose the cache; what it counted stays counted (a counter
    # that went down would read as a reset, and rate() would jump)
    assert cluster_value(third, "cachier_cluster_bytes", cluster_of_c) == bytes_before - c_bytes
    assert cluster_value(third, "cachier_cluster_cmd_get_total", cluster_of_c) == gets_before

    cluster_of_a = a.cluster
    sets_before = cluster_value(third, "cachier_cluster_cmd_set_total", cluster_of_a)
    world.dataplane.engine_for(a).reset_stats()  # a command: noted by the traffic after
    world.traffic(a, gets=0, sets=2)  # after the reset: cmd_set is 2
    fourth = parse(exposition())
    assert fourth[("cachier_cache_cmd_set_total", (("cache", "a"),))] == 2
    assert cluster_value(fourth, "cachier_cluster_cmd_set_total", cluster_of_a) == (sets_before + 2)
    assert first.keys() >= fourth.keys()


def test_a_moved_cache_is_counted_on_its_new_cluster(world: World) -> None:
    cache = world.control.create_cache("mover", "100mb")
    world.traffic(cache, gets=2, sets=4)
    exposition = Exposition(world.dataplane, world.monitor)
    before = parse(exposition())
    old = cache.cluster
    new = world.control.migrate(cache)
    world.traffic(cache, gets=1, sets=1)
    after = parse(exposition())
    assert_cache_series(after, world, cache)
    assert cluster_value(after, "cachier_cluster_caches", old) == 0
    assert cluster_value(after, "cachier_cluster_caches", new) == 1
    assert cluster_value(after, "cachier_cluster_items", old) == 0
    assert cluster_value(after, "cachier_cluster_items", new) == 1
    for cluster in (old, new):  # counters never go back
        for name in CACHE_COUNTERS:
            family = f"cachier_cluster_{name}_total"
            assert cluster_value(after, family, cluster) >= cluster_value(before, family, cluster)
    assert cluster_value(after, "cachier_cluster_cmd_set_total", new) == 1


def test_per_cache_off_serves_the_cluster_series_and_totals_only(world: World) -> None:
    caches = [world.control.create_cache(f"c{i}", "100mb") for i in range(4)]
    for i, cache in enumerate(caches):
        world.traffic(cache, gets=i + 1, sets=i + 1)
    full = parse(Exposition(world.dataplane, world.monitor, per_cache=True)())
    text = Exposition(world.dataplane, world.monitor, per_cache=False)().decode()
    bare = parse(text)
    assert "cachier_cache_" not in text
    assert not [key for key in bare if ("cache", "c0") in key[1]]
    assert {k: v for k, v in full.items() if not k[0].startswith("cachier_cache_")} == bare
    assert ("cachier_auth_failures_total", ()) in bare
    assert sum(v for (n, _), v in bare.items() if n == "cachier_cluster_cmd_get_total") == 10


def test_the_text_is_the_format_prometheus_reads(world: World) -> None:
    cache = world.control.create_cache("x", "100mb")
    world.traffic(cache)
    text = Exposition(world.dataplane, world.monitor)().decode()
    assert text.endswith("\n")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["cachier_cache_get_hits"].type == "counter"
    assert families["cachier_cache_get_hits"].documentation == "gets that found the key"
    assert families["cachier_cache_items"].type == "gauge"
    assert families["cachier_cluster_get_hits"].type == "counter"
    assert families["cachier_cluster_caches"].type == "gauge"
    # one HELP and one TYPE per family, before its samples
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names)) == len(families)


# -- a running service, scraped over HTTP -------------------------------------------------
def cluster_of(handle: CacheHandle) -> tuple[tuple[str, str], ...]:
    return (("cluster", handle.info["cluster"]),)


def promtool(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool", "prometheus"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("per_cache", [True, False], ids=["per-cache-on", "per-cache-off"])
def test_a_real_scrape_parses_and_passes_promtool(tmp_path: Path, per_cache: bool) -> None:
    running = RunningService(make_config(tmp_path, metrics_per_cache=per_cache)).start()
    try:
        handle = CacheHandle(running.create_cache("scraped"))
        wire = Wire.authenticated(handle)
        wire.ask(b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\n")  # one read: one latency
        count = ("cachier_cluster_command_duration_seconds_count", cluster_of(handle))
        deadline = time.monotonic() + 10  # the histogram follows analytics' next sample
        while parse(httpx.get(running.api_url + "/metrics").text).get(count) != 1:
            assert time.monotonic() < deadline, "the read never reached the histogram"
            time.sleep(0.1)
        text = httpx.get(running.api_url + "/metrics").text
        again = httpx.get(running.api_url + "/metrics").text
    finally:
        running.stop()
    samples = parse(text)
    label = (("cache", "scraped"),)
    cluster = cluster_of(handle)
    if per_cache:
        assert samples[("cachier_cache_get_hits_total", label)] == 1
        assert samples[("cachier_cache_connections", label)] == 1
        assert samples[("cachier_cache_command_duration_seconds_count", label)] == 1
        inf = (*label, ("le", "+Inf"))
        assert samples[("cachier_cache_command_duration_seconds_bucket", inf)] == 1
    else:
        assert not [key for key in samples if key[0].startswith("cachier_cache_")]
    assert samples[("cachier_cluster_get_hits_total", cluster)] == 1
    assert samples[("cachier_cluster_items", cluster)] == 1
    assert samples[("cachier_cluster_caches", cluster)] == 1
    assert parse(again) == samples  # nothing changed between the scrapes
    checked = promtool(text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""


def test_the_flag_is_on_by_default_and_the_dashboard_forwards_it(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert config_from_args(build_parser().parse_args(base)).metrics_per_cache is True
    off = build_parser().parse_args([*base, "--metrics-per-cache", "off"])
    assert config_from_args(off).metrics_per_cache is False
    on = build_parser().parse_args([*base, "--metrics-per-cache", "on"])
    assert config_from_args(on).metrics_per_cache is True
    tui = build_tui_parser().parse_args([*base, "--metrics-per-cache", "off"])
    assert config_from_args(tui).metrics_per_cache is False


def per_cache(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if k[0].startswith("cachier_cache_")}


def test_a_scrape_reads_only_the_caches_noted_since_the_last(world: World) -> None:
    """After the first scrape, one reads the caches the data plane noted as changed
    (``backend.changes``), and says what a fresh exposition, which reads every cache,
    says: per-cache series always; cluster series too while no counter went back."""
    import random  # noqa: PLC0415 - this test's own

    rnd = random.Random(3)
    caches = [world.control.create_cache(f"n{i}", "100mb") for i in range(40)]
    exposition = Exposition(world.dataplane, world.monitor)
    exposition()
    read: list[str] = []
    real = exposition._read

    def counting(cache, *args):  # type: ignore[no-untyped-def]
        read.append(cache.id)
        return real(cache, *args)

    exposition._read = counting  # type: ignore[method-assign]
    for round_ in range(12):
        read.clear()
        busy = rnd.sample(caches, 3)
        for cache in busy:
            world.traffic(cache, gets=rnd.randint(0, 4), sets=rnd.randint(0, 3))
        resets = round_ % 4 == 3
        if resets:  # a counter goes back: the cluster's keeps counting up
            engine = world.dataplane.engine_for(busy[0])
            engine.reset_stats()
            world.dataplane.changes.note(engine)
        if round_ == 5:
            world.control.flush(caches[7], "admin operation")  # noted on its event
        if round_ == 8:
            gone = caches.pop(11)
            world.control.delete_cache(gone)
        incremental = parse(exposition())
        fresh = parse(Exposition(world.dataplane, world.monitor)())
        assert len(set(read)) <= 4, read  # the busy ones (and a flushed or deleted one)
        assert per_cache(incremental) == per_cache(fresh)
        if round_ < 3:
            assert incremental == fresh
    for cache in caches:
        assert_cache_series(incremental, world, cache)
