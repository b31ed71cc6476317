"""The automated status: real probes, injected faults, lights, incidents, RSS, metrics."""

from __future__ import annotations

import time

import feedparser
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from backend.monitor import DOWN, SLOW, UP, ProxyHealth, Sensitivity, slow_cause
from backend.topology import default_topology
from tests.backend.test_auth import pymemcache_client
from tests.backend.wire import Wire
from tests.conftest import ADMIN_TOKEN, CacheHandle, RunningService, http, make_config

INTERVAL = 0.05
WINDOW = 1.5
A1 = "proxy-1.local-a.local.cachier.internal"
A2 = "proxy-2.local-a.local.cachier.internal"


@pytest.fixture
def monitored(tmp_path) -> RunningService:
    running = RunningService(
        make_config(tmp_path, probe_interval=INTERVAL, resolved_window=WINDOW)
    ).start()
    yield running
    running.stop()


def status(service: RunningService) -> dict:
    return http.get(service.api_url + "/api/v1/status", timeout=5).json()


def lights(service: RunningService) -> dict[str, str]:
    return {c["name"]: c["light"] for r in status(service)["regions"] for c in r["clusters"]}


def wait_for_light(service: RunningService, cluster: str, light: str, within: float) -> float:
    started = time.monotonic()
    while (seen := lights(service)[cluster]) != light:
        assert time.monotonic() - started < within, f"{cluster} stayed {seen}, wanted {light}"
        time.sleep(INTERVAL / 5)
    return time.monotonic() - started


def fault(service: RunningService, hostname: str, mode: str, delay_ms: int = 0) -> httpx.Response:
    return http.post(
        f"{service.api_url}/api/v1/admin/proxies/{hostname}/fault",
        json={"mode": mode, "delay_ms": delay_ms},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    )


def test_down_slow_clear_walk_through_every_colour(monitored: RunningService) -> None:
    wait_for_light(monitored, "local-a", "green", within=5)
    assert fault(monitored, A1, "down").status_code == 200
    wait_for_light(monitored, "local-a", "red", within=2)
    assert lights(monitored)["local-b"] != "red"  # clusters are independent
    fault(monitored, A1, "slow", delay_ms=150)
    wait_for_light(monitored, "local-a", "yellow", within=3)
    fault(monitored, A1, "none")
    wait_for_light(monitored, "local-a", "blue", within=3)
    wait_for_light(monitored, "local-a", "green", within=WINDOW + 2)
    incidents = status(monitored)["incidents"]
    a_changes = [(i["previous"], i["light"]) for i in incidents if i["cluster"] == "local-a"]
    assert a_changes[::-1] == [
        ("green", "red"),
        ("red", "yellow"),
        ("yellow", "blue"),
        ("blue", "green"),
    ]
    red = next(i for i in incidents if i["light"] == "red")
    assert red["proxies"] == [A1] and A1 in red["cause"]
    assert not any(i["cluster"] == "local-b" and i["light"] == "red" for i in incidents)


def test_status_lists_every_proxy_with_state_and_latency(monitored: RunningService) -> None:
    wait_for_light(monitored, "local-a", "green", within=5)
    body = status(monitored)
    (region,) = body["regions"]
    assert region["name"] == "local"
    assert [c["name"] for c in region["clusters"]] == ["local-a", "local-b"]
    proxies = region["clusters"][0]["proxies"]
    assert [p["hostname"] for p in proxies] == [A1, A2]
    assert all(p["state"] == "up" and p["latency_ms"] > 0 for p in proxies)
    assert body["rss_url"].endswith("/status.rss")
    assert region["clusters"][0]["label"] == "UP"


def test_a_down_proxy_is_routed_around(monitored: RunningService) -> None:
    cache = CacheHandle(monitored.create_cache("routed", plan="100mb"))
    cluster = cache.info["cluster"]
    first, second = (f"proxy-{i}.{cluster}.local.cachier.internal" for i in (1, 2))
    client = pymemcache_client(cache)
    client.set("k", "v", noreply=False)
    fault(monitored, first, "down")
    sessions = [Wire.authenticated(cache) for _ in range(4)]
    port = monitored.listening.proxies[second].rsplit(":", 1)[1].encode()
    for wire in sessions:  # every new session lands on the proxy that is still up
        assert b"STAT tcpport " + port in wire.ask(b"stats settings\r\n")
        assert wire.ask(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    try:
        value = client.get("k")
    except MemcacheUnexpectedCloseError:  # its session was on the downed proxy: reconnect
        value = client.get("k")
    assert value == b"v"
    fault(monitored, second, "down")
    lonely = Wire(cache.endpoint)
    secret = cache.password.encode()
    lonely.send(b"set %s 0 0 %d\r\n%s\r\n" % (cache.username.encode(), len(secret), secret))
    assert lonely.read_to_close().startswith(b"CLIENT_ERROR no proxy of this cache's cluster")
    fault(monitored, first, "none")
    assert Wire.authenticated(cache).ask(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"


def test_slow_fault_delays_every_reply_in_order(monitored: RunningService) -> None:
    cache = CacheHandle(monitored.create_cache("sluggish"))
    for hostname in monitored.listening.proxies:
        if f".{cache.info['cluster']}." in hostname:
            fault(monitored, hostname, "slow", delay_ms=200)
    wire = Wire.authenticated(cache)
    started = time.monotonic()
    assert wire.ask(b"set a 0 0 1\r\n1\r\nget a\r\n") == b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\n"
    assert time.monotonic() - started >= 0.2


def test_migration_never_targets_a_red_cluster(monitored: RunningService) -> None:
    cache = CacheHandle(monitored.create_cache("stuck", plan="500mb"))
    other = "local-b" if cache.info["cluster"] == "local-a" else "local-a"
    for i in (1, 2):
        fault(monitored, f"proxy-{i}.{other}.local.cachier.internal", "down")
    wait_for_light(monitored, other, "red", within=2)
    refused = http.post(cache.dashboard_api + "/migrate")
    assert refused.status_code == 409
    assert "no other cluster that is not red" in refused.json()["error"]


def test_fault_route_errors(monitored: RunningService) -> None:
    assert fault(monitored, "no.such.proxy", "down").status_code == 404
    assert fault(monitored, A1, "broken").status_code == 422
    assert fault(monitored, A1, "slow", delay_ms=-5).status_code == 422
    anonymous = http.post(
        f"{monitored.api_url}/api/v1/admin/proxies/{A1}/fault", json={"mode": "down"}
    )
    assert anonymous.status_code == 401


def test_rss_items_follow_transitions_and_guids_survive_a_restart(tmp_path) -> None:
    config = make_config(tmp_path, probe_interval=INTERVAL, resolved_window=WINDOW)
    first = RunningService(config).start()
    try:
        wait_for_light(first, "local-a", "green", within=5)
        fault(first, A1, "down")
        wait_for_light(first, "local-a", "red", within=2)
        fault(first, A1, "none")
        wait_for_light(first, "local-a", "blue", within=3)
        feed = feedparser.parse(http.get(first.api_url + "/status.rss").content)
    finally:
        first.stop()
    assert not feed.bozo, feed.bozo_exception
    assert feed.feed.title == "cachier status"
    titles = [entry.title for entry in feed.entries]
    assert titles == ["local-a is blue (RESOLVED)", "local-a is red (DOWN)"]
    assert A1 in feed.entries[1].description
    assert all(entry.published_parsed for entry in feed.entries)
    guids = [entry.id for entry in feed.entries]
    assert len(set(guids)) == len(guids)

    second = RunningService(
        make_config(tmp_path, probe_interval=INTERVAL, resolved_window=WINDOW)
    ).start()
    try:
        again = feedparser.parse(http.get(second.api_url + "/status.rss").content)
        assert [e.id for e in again.entries][-2:] == guids
    finally:
        second.stop()


def test_metrics_in_prometheus_text_format(monitored: RunningService) -> None:
    cache = CacheHandle(monitored.create_cache("measured"))
    wire = Wire.authenticated(cache)
    wire.ask(b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\n")
    bad = Wire(cache.endpoint)
    bad.send(b"set %s 0 0 5\r\nwrong\r\n" % cache.username.encode())
    bad.read_to_close()
    wait_for_light(monitored, "local-a", "green", within=5)
    response = http.get(monitored.api_url + "/metrics")
    # Written block by block (never joined into one body), with the length announced.
    assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers
    text = response.text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    label = (("cache", "measured"),)
    assert samples[("cachier_cache_get_hits_total", label)] == 1
    assert samples[("cachier_cache_get_misses_total", label)] == 1
    assert samples[("cachier_cache_items", label)] == 1
    assert samples[("cachier_cache_connections", label)] == 1
    assert samples[("cachier_auth_failures_total", ())] >= 1
    proxy = (("cluster", "local-a"), ("proxy", A1))
    assert samples[("cachier_proxy_probe_latency_seconds", proxy)] > 0
    assert samples[("cachier_proxy_state", (*proxy, ("state", "up")))] == 1
    assert samples[("cachier_cluster_light", (("cluster", "local-a"), ("light", "green")))] == 1


# -- the debouncing state machine, fed directly ---------------------------------------------
def health() -> ProxyHealth:
    return ProxyHealth(default_topology().proxies()[0], Sensitivity())


def feed(h: ProxyHealth, *latencies: float | None) -> list[str]:
    states = []
    for latency in latencies:
        h.observe(latency)
        states.append(h.state)
    return states


def test_single_failures_and_spikes_never_flip_a_state() -> None:
    h = health()
    feed(h, *[0.5] * 20)
    assert feed(h, None, 0.5, 80.0, 0.5, None, 0.5, 80.0, 80.0, 0.5) == [UP] * 9


def test_two_failures_in_a_row_mean_down_and_two_successes_recover() -> None:
    h = health()
    feed(h, *[0.5] * 10)
    assert feed(h, None, None) == [UP, DOWN]
    assert feed(h, 0.5, None, 0.5, 0.5) == [DOWN, DOWN, DOWN, UP]


def test_slow_needs_three_slow_probes_above_the_floor_and_the_baseline() -> None:
    h = health()
    feed(h, *[0.5] * 10)
    assert feed(h, 15.0, 15.0, 15.0, 15.0) == [UP] * 4  # 30x usual, but under the 20 ms floor
    assert feed(h, 150.0, 150.0, 150.0) == [UP, UP, SLOW]
    assert feed(h, 0.5, 0.5, 150.0, 0.5, 0.5, 0.5) == [SLOW, SLOW, SLOW, SLOW, SLOW, UP]


def test_a_new_proxy_learns_its_usual_before_it_can_be_slow() -> None:
    h = health()
    assert feed(h, 150.0, 150.0, 150.0, 150.0, 150.0, 150.0) == [UP] * 6


def test_a_proxy_that_is_usually_far_away_is_judged_against_its_own_usual() -> None:
    h = health()
    feed(h, *[40.0] * 20)
    assert feed(h, 60.0, 60.0, 60.0, 60.0) == [UP] * 4  # 1.5x its usual: jitter, not slow
    assert feed(h, 200.0, 200.0, 200.0) == [UP, UP, SLOW]


def test_a_slow_proxy_whose_last_probe_failed_is_described_not_a_crash() -> None:
    """Slow, then one failed probe (down needs two): the cause names no latency. It used to
    raise in the monitor's evaluation, so the light was not recorded and the dashboard
    showed a "status evaluation failed" notice."""
    h = health()
    feed(h, *[1.0] * 10, 30.0, 30.0, 30.0)
    assert h.state == SLOW
    assert slow_cause([h]) == f"slower than usual: {h.proxy.hostname} (30.0 ms, usually 1.0 ms)"
    feed(h, None)
    assert h.state == SLOW and h.latency_ms is None
    assert slow_cause([h]) == f"slower than usual: {h.proxy.hostname} (no answer, usually 1.0 ms)"
