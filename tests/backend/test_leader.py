"""One monitor for the whole service (issue 14 item 5): three real ``cachier-backend``
processes on one PostgreSQL database, each serving one cluster of ``us-east-1``.

Exactly one process's monitor leads (it holds the advisory lock) and probes every proxy
of every process; the others show its results. ``kill -9`` of a cluster's owner turns
that cluster, and only it, red on every process's API and feeds within 3 probe
intervals, recorded once; its restart brings it back (blue, then green); ``kill -9`` of
the leader hands the lead to another process within 3 intervals, and the lights stay.
"""

from __future__ import annotations

import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from backend.control.ownership import STALE_AFTER_S
from backend.control.secrets import Secrets
from backend.dataplane import DataPlane
from backend.leadership import LEADER_LOCK
from backend.monitor import probe_caches
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.backend.test_processes import Backend, shared_key, until
from tests.backend.wire import Wire
from tests.conftest import RunningService, http, make_config, postgres_database

INTERVAL = 0.25  # --probe-interval
WITHIN = 3 * INTERVAL  # the bound
# What observing costs on top: one status request to another process (its answer is
# what is timed) on a shared, loaded 2-core machine.
SLACK = 0.25
RESOLVED = 1.5  # --resolved-window: blue this long after trouble, then green
DEPOSE_AFTER = max(STALE_AFTER_S, 10 * INTERVAL)  # a silent leader is deposed after this
CLUSTERS = ("use1-a", "use1-b", "use1-c")
TOPOLOGY = """
[[regions]]
name = "us-east-1"
[[regions.clusters]]
name = "use1-a"
proxies = 2
[[regions.clusters]]
name = "use1-b"
proxies = 2
[[regions.clusters]]
name = "use1-c"
proxies = 2
"""


class Service:
    """Three processes, one cluster each, on one database."""

    def __init__(self, root: Path, url: str) -> None:
        self.url = url
        (root / "topology.toml").write_text(TOPOLOGY)
        shared_key(root, *CLUSTERS)
        self.backends: dict[str, Backend] = {}
        for cluster in CLUSTERS:
            backend = Backend(root, cluster, url, cluster)
            backend.command += [
                "--topology",
                str(root / "topology.toml"),
                "--probe-interval",
                str(INTERVAL),
                "--resolved-window",
                str(RESOLVED),
            ]
            self.backends[cluster] = backend

    def start(self) -> None:
        for backend in self.backends.values():
            backend.launch()
        for backend in self.backends.values():
            assert backend.wait_healthy(), backend.stderr()

    def stop(self) -> None:
        for backend in self.backends.values():
            backend.stop()

    def leader(self) -> str | None:
        """The cluster of the process holding the monitor's lock in this test's database
        (its application name carries the process id, host:pid:tag); other tests' services
        on the same server hold their own."""
        with psycopg.connect(self.url) as db:
            row = db.execute(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted"
                " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (LEADER_LOCK,),
            ).fetchone()
        if row is None:
            return None
        pid = int(row[0].split()[1].split(":")[1])
        return next(
            (c for c, b in self.backends.items() if b.process and b.process.pid == pid), None
        )

    def incidents(self, after: int) -> list[tuple[str, str]]:
        with psycopg.connect(self.url) as db:
            rows = db.execute(
                "SELECT cluster, light FROM incidents WHERE id > %s ORDER BY id", (after,)
            ).fetchall()
        return [(cluster, light) for cluster, light in rows]

    def last_incident(self) -> int:
        with psycopg.connect(self.url) as db:
            (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM incidents").fetchone()
        return int(last)


def lights(backend: Backend) -> dict[str, str]:
    status = http.get(f"{backend.api_url}/api/v1/status", timeout=5).json()
    return {c["name"]: c["light"] for r in status["regions"] for c in r["clusters"]}


def proxies_up(backend: Backend) -> dict[str, str]:
    status = http.get(f"{backend.api_url}/api/v1/status", timeout=5).json()
    return {
        p["hostname"]: p["state"]
        for r in status["regions"]
        for c in r["clusters"]
        for p in c["proxies"]
    }


def feed_lights(backend: Backend, cluster: str) -> list[str]:
    """The cluster's RSS items' titles, newest first."""
    rss = http.get(f"{backend.api_url}/status.rss", params={"cluster": cluster}, timeout=5)
    assert rss.status_code == 200
    return [item.findtext("title") or "" for item in ET.fromstring(rss.text).iter("item")]


_names = iter(range(1000))


def tenant_on(backend: Backend, cluster: str) -> Wire:
    """A client of a new cache placed on ``cluster``, connected to ``backend``'s endpoint."""
    return tenant_and_cache(backend, cluster)[0]


def tenant_and_cache(backend: Backend, cluster: str) -> tuple[Wire, dict]:
    with backend.admin() as admin:
        for _ in range(12):
            made = admin.post(
                "/api/v1/admin/caches", json={"name": f"tenant-{next(_names)}", "plan": "100mb"}
            )
            assert made.status_code == 201, made.text
            if made.json()["cluster"] == cluster:
                primary = made.json()["credentials"][0]
                return backend.wire(primary["username"], primary["password"]), made.json()
    raise AssertionError(f"no cache was placed on {cluster}")


def all_green(service: Service) -> bool:
    return all(
        set(lights(b).values()) == {"green"}
        for b in service.backends.values()
        if b.process is not None and b.process.poll() is None
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with postgres_database() as url:
        running = Service(tmp_path_factory.mktemp("leader"), url)
        try:
            running.start()
            # Until all three had claimed, the leader saw owner-less clusters (red): they
            # are blue, then green once the resolved window has passed.
            until(lambda: all_green(running), 20, "every cluster green on every process")
            yield running
        finally:
            running.stop()


def test_exactly_one_process_leads_and_every_process_shows_every_proxy(service: Service) -> None:
    leader = service.leader()
    assert leader in CLUSTERS
    for backend in service.backends.values():
        states = proxies_up(backend)
        assert len(states) == 6 and set(states.values()) == {"up"}, states
        assert "leads the status monitor" in backend.stderr() or backend.name != leader
    followers = [c for c in CLUSTERS if c != leader]
    for cluster in followers:
        assert "leads the status monitor" not in service.backends[cluster].stderr()


def test_kill_9_of_an_owner_turns_only_its_cluster_red_everywhere_and_its_restart_heals(
    service: Service,
) -> None:
    leader = service.leader()
    assert leader is not None
    victim = next(c for c in CLUSTERS if c != leader)  # the leader keeps probing
    observer = next(c for c in CLUSTERS if c not in (leader, victim))  # a follower's view
    watchers = [service.backends[leader], service.backends[observer]]
    client = tenant_on(service.backends[observer], observer)
    mark = service.last_incident()
    service.backends[victim].stop(signal.SIGKILL)
    killed = time.monotonic()
    took = until(lambda: lights(service.backends[observer])[victim] == "red", 5, "red")
    print(f"kill -9 of {victim}'s owner -> red on a follower's API after {took * 1000:.0f} ms")
    assert took <= WITHIN + SLACK
    for watcher in watchers:
        seen = lights(watcher)
        assert seen[victim] == "red"
        assert all(light == "green" for c, light in seen.items() if c != victim), seen
        assert feed_lights(watcher, victim)[0] == f"{victim} is red (DOWN)"
    assert client.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"  # the others serve on
    assert client.ask(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    time.sleep(4 * INTERVAL)  # later rounds, and the owner's heartbeat going stale
    assert service.incidents(mark) == [(victim, "red")]  # once, by the leader only
    while (
        time.monotonic() - killed < STALE_AFTER_S + 0.5
    ):  # stale by now: the cause changes, not the light
        time.sleep(0.1)
    assert service.incidents(mark) == [(victim, "red")]

    time.sleep(max(0.0, STALE_AFTER_S + 0.2 - (time.monotonic() - killed)))  # claim stale
    service.backends[victim].start()  # new proxy ports: the leader follows the claim
    seen: list[str] = []

    def healed() -> bool:
        light = lights(service.backends[observer])[victim]
        if not seen or seen[-1] != light:
            seen.append(light)
        return light == "green"

    until(healed, 10 + RESOLVED, "blue, then green again")
    assert seen[-2:] == ["blue", "green"], seen
    assert service.incidents(mark) == [(victim, "red"), (victim, "blue"), (victim, "green")]
    assert all(light == "green" for light in lights(service.backends[leader]).values())


def test_kill_9_of_the_leader_hands_the_lead_over_within_3_intervals(service: Service) -> None:
    until(lambda: all_green(service), 10, "every cluster green")
    leader = service.leader()
    assert leader is not None
    others = [c for c in CLUSTERS if c != leader]
    mark = service.last_incident()
    service.backends[leader].stop(signal.SIGKILL)
    killed = time.monotonic()
    took = until(lambda: service.leader() in others, 5, "another process leads")
    print(f"kill -9 of the leader -> another leads after {took * 1000:.0f} ms")
    assert took <= WITHIN + SLACK
    new_leader = service.leader()
    # The new leader starts from the lights in the database: the dead leader's cluster
    # turns red (its owner is gone), the others stay green without a new incident.
    took = until(lambda: lights(service.backends[others[0]])[leader] == "red", 5, "red")
    print(f"kill -9 of the leader -> its cluster red after {took * 1000:.0f} ms")
    for cluster in others:
        seen = lights(service.backends[cluster])
        assert [c for c, light in seen.items() if light != "green"] == [leader], seen
    time.sleep(4 * INTERVAL)
    assert service.incidents(mark) == [(leader, "red")]

    time.sleep(max(0.0, STALE_AFTER_S + 0.2 - (time.monotonic() - killed)))  # claim stale
    service.backends[leader].start()  # back, as a follower: the lead stays where it is
    until(lambda: lights(service.backends[leader])[leader] == "green", 10 + RESOLVED, "green")
    assert service.leader() == new_leader
    assert all_green(service)
    assert service.incidents(mark) == [(leader, "red"), (leader, "blue"), (leader, "green")]


def test_a_hung_leader_is_deposed_and_steps_down_when_it_wakes(service: Service) -> None:
    """SIGSTOP: the leader's connection stays open, and with it the lock, but it stops
    publishing; another process ends its lock session and leads. SIGCONT: the old
    leader finds its session gone and follows."""
    until(lambda: all_green(service), 10 + RESOLVED, "every cluster green")
    leader = service.leader()
    assert leader is not None
    hung = service.backends[leader]
    assert hung.process is not None
    others = [c for c in CLUSTERS if c != leader]
    mark = service.last_incident()
    hung.process.send_signal(signal.SIGSTOP)
    try:
        took = until(lambda: service.leader() in others, 10, "another process leads")
        print(f"SIGSTOP of the leader -> another leads after {took * 1000:.0f} ms")
        assert took <= DEPOSE_AFTER + WITHIN + 1.0
        assert any("published nothing" in service.backends[c].stderr() for c in others), (
            "deposed by a follower"
        )
        # Its own cluster: the proxies hang too, and its heartbeat is stale.
        until(lambda: lights(service.backends[others[0]])[leader] == "red", 5, "red")
    finally:
        hung.process.send_signal(signal.SIGCONT)
    new_leader = service.leader()
    until(lambda: "stopped leading the status monitor" in hung.stderr(), 10, "steps down")
    assert service.leader() == new_leader
    until(lambda: all_green(service), 10 + RESOLVED, "every cluster green again")
    assert [light for cluster, light in service.incidents(mark) if cluster == leader] == [
        "red",
        "blue",
        "green",
    ]
    assert all(cluster == leader for cluster, _ in service.incidents(mark))


def test_any_process_serves_any_cache_s_stats_asking_the_owner(service: Service) -> None:
    """Item 6: the owner samples; another process's API answers the same JSON by asking
    the owner's API for the same dashboard URL."""
    until(lambda: all_green(service), 10, "every cluster green")
    owner = service.backends["use1-b"]
    client, cache = tenant_and_cache(owner, "use1-b")
    for i in range(7):
        assert client.ask(b"set k%d 0 0 1\r\nv\r\n" % i) == b"STORED\r\n"
    path = cache["dashboard_url"][cache["dashboard_url"].index("/dashboard/") :] + "/api/stats"

    def stats(backend: Backend, **params: float) -> dict:
        response = http.get(backend.api_url + path, params=params, timeout=5)
        assert response.status_code == 200, response.text
        return response.json()

    until(lambda: (stats(owner)["samples"] or [{}])[-1].get("cmd_set") == 7, 5, "sampled")
    since = stats(owner)["samples"][-1]["t"] - 0.5
    for other in ("use1-a", "use1-c"):
        seen = stats(service.backends[other], window=60)
        assert seen["samples"] and seen["samples"][-1]["cmd_set"] == 7
        assert seen["samples"][-1]["items"] == 7
        assert seen.keys() == stats(owner, window=60).keys()
        newer = stats(service.backends[other], since=since)["samples"]  # the query travels
        assert newer and all(sample["t"] > since for sample in newer)
    bad = http.get(service.backends["use1-a"].api_url + path, params={"window": -1}, timeout=5)
    assert bad.status_code == 422  # checked here, before anyone is asked

    def median_ms(backend: Backend) -> float:
        times = []
        for _ in range(30):
            start = time.perf_counter()
            stats(backend, window=60)
            times.append((time.perf_counter() - start) * 1000)
        return sorted(times)[len(times) // 2]

    direct, asked = median_ms(owner), median_ms(service.backends["use1-a"])
    print(f"stats of one cache: {direct:.1f} ms from its owner, {asked:.1f} ms through another")

    owner.stop(signal.SIGKILL)  # the owner is gone: a clear 503, not a 500 or a hang
    killed = time.monotonic()
    try:
        gone = http.get(service.backends["use1-a"].api_url + path, timeout=10)
        assert gone.status_code == 503, gone.text
        assert "use1-b" in gone.json()["error"]
    finally:
        time.sleep(max(0.0, STALE_AFTER_S + 0.2 - (time.monotonic() - killed)))
        owner.start()  # its claim is stale by now: taken over
    until(lambda: all_green(service), 10 + RESOLVED, "every cluster green again")


def test_the_embedded_mode_leads_alone_and_shares_nothing(tmp_path: Path) -> None:
    """SQLite, one process: its monitor leads from start to stop, probing its proxies,
    and writes no shared probe results (nobody would read them)."""
    running = RunningService(make_config(tmp_path, probe_interval=0.05)).start()
    try:
        service = running.service
        assert service is not None and service.monitor is not None
        monitor = service.monitor
        assert monitor.leading and not monitor.shared
        until(
            lambda: running.call_control(lambda: all(h.observed for h in monitor.health.values())),
            5,
            "every proxy probed",
        )
        assert running.call_control(monitor.db.probe_results) == []
    finally:
        running.stop()


def test_the_probe_credential_is_the_same_in_every_process_sharing_the_key_file(
    tmp_path: Path,
) -> None:
    """What lets the leader's probes in on another process's proxies: the credential is
    derived from the key file, not drawn at random per process."""
    shared_key(tmp_path, "one", "two")
    (tmp_path / "other").mkdir(mode=0o700)

    def credentials(name: str) -> dict[str, tuple[str, bytes]]:
        key = Secrets.load_or_create(tmp_path / name).probe_key()
        dataplane = DataPlane(default_topology(), AuthThrottle(10, 60, 30))
        return {c: (k.username, k.password) for c, k in probe_caches(dataplane, key).items()}

    one, two, other = credentials("one"), credentials("two"), credentials("other")
    assert one == two and set(one) == {"local-a", "local-b"}
    assert one["local-a"][0] == "probe-local-a" and len(one["local-a"][1]) == 32
    assert one["local-a"][1] != one["local-b"][1]
    assert all(other[c][1] != one[c][1] for c in one)  # another key file: not let in
