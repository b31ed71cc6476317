"""Several backend processes on one PostgreSQL control plane (issue 14, items 2 and 3).

Real ``cachier-backend`` subprocesses on a real PostgreSQL database: A serves cluster
``local-a``, B serves ``local-b``. Changes made through A's API reach the live memcache
connections B serves within 1 s (LISTEN/NOTIFY), and ownership of a cluster is one
process's at a time (claim, heartbeat, release, takeover of a dead owner).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.control.notify import CHANNEL, encode
from backend.control.ownership import HEARTBEAT_INTERVAL_S, STALE_AFTER_S
from backend.control.secrets import KEY_FILE, Secrets
from tests.backend.wire import Wire
from tests.conftest import (
    ADMIN_TOKEN,
    POSTGRES_ADMIN_URL,
    RunningService,
    default_trust,
    free_fixed_ports,
    http,
    make_config,
    postgres_database,
)

COMMAND = [sys.executable, "-m", "backend.cli"]
WITHIN_S = 1.0  # the bound: a change applies on another process within 1 s
SET = b"set k 0 0 1\r\nv\r\n"


class Backend:
    """One ``cachier-backend`` subprocess; its output goes to files (a pipe nobody reads
    would fill and stall it)."""

    def __init__(self, root: Path, name: str, database: str, clusters: str | None) -> None:
        self.name = name
        self.data_dir = root / name
        self.api_port, self.endpoint_port = free_fixed_ports(2)
        self.out = root / f"{name}.out"
        self.err = root / f"{name}.err"
        self.command = [
            *COMMAND,
            "--data-dir",
            str(self.data_dir),
            "--database",
            database,
            "--api-port",
            str(self.api_port),
            "--endpoint-port",
            str(self.endpoint_port),
            "--allow-internal-drains",  # the tests' drains are on loopback
            *(["--clusters", clusters] if clusters else []),
        ]
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def launch(self) -> Backend:
        env = os.environ | {"CACHIER_ADMIN_TOKEN": ADMIN_TOKEN}
        with self.out.open("w") as out, self.err.open("w") as err:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=err, env=env)
        return self

    def start(self) -> Backend:
        """Launch and wait until its API answers (it has claimed and is serving)."""
        self.launch()
        assert self.wait_healthy(), self.stderr()
        return self

    def wait_healthy(self) -> bool:
        """True once it serves, False if it exited first."""
        assert self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if http.get(f"{self.api_url}/healthz", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} neither served nor exited: {self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text()

    def output(self) -> str:
        """Both streams: the start-up banner and its warnings, and the log."""
        return self.out.read_text() + self.err.read_text()

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.Client(
            base_url=self.api_url, headers=headers, timeout=10, verify=default_trust()
        )

    def dashboard(self, dashboard_url: str) -> str:
        """The same dashboard on this process's API (a URL names its secret, not a process)."""
        return self.api_url + dashboard_url[dashboard_url.index("/dashboard/") :] + "/api"

    def wire(self, username: str, password: str) -> Wire:
        """A connection to this process's region endpoint, authenticated."""
        wire = Wire(("127.0.0.1", self.endpoint_port))
        secret = password.encode()
        wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret))
        assert wire.read_exactly(8) == b"STORED\r\n"
        return wire

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def shared_key(root: Path, *names: str) -> None:
    """Every process on one database uses the same key file (README)."""
    first = root / names[0]
    first.mkdir(mode=0o700)
    Secrets.load_or_create(first)
    for name in names[1:]:
        (root / name).mkdir(mode=0o700)
        shutil.copy(first / KEY_FILE, root / name / KEY_FILE)
        os.chmod(root / name / KEY_FILE, 0o600)


def until(condition: Callable[[], object], within_s: float, what: str) -> float:
    """Seconds until ``condition()`` is true; fails after ``within_s``."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{what}: not within {within_s} s")
        time.sleep(0.01)


def owners(url: str) -> dict[str, tuple[str, float]]:
    with psycopg.connect(url) as db:
        rows = db.execute("SELECT cluster, process_id, heartbeat_at FROM cluster_owners")
        return {cluster: (process, beat) for cluster, process, beat in rows}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Backend, str]]:
    """A serves local-a, B serves local-b, on one fresh database."""
    root = tmp_path_factory.mktemp("processes")
    with postgres_database() as url:
        shared_key(root, "a", "b")
        a = Backend(root, "a", url, "local-a").start()
        b = Backend(root, "b", url, "local-b")
        try:
            b.start()
            yield a, b, url
        finally:
            a.stop()
            b.stop()


_names = iter(range(1, 1000))


def cache_on_b(a: Backend) -> dict:
    """A cache created through A's API that lives on B's cluster."""
    with a.admin() as client:
        for _ in range(6):
            response = client.post(
                "/api/v1/admin/caches", json={"name": f"multi-{next(_names)}", "plan": "100mb"}
            )
            assert response.status_code == 201, response.text
            if response.json()["cluster"] == "local-b":
                return response.json()
    raise AssertionError("no cache was placed on local-b")


def new_credential(a: Backend, cache: dict) -> dict:
    response = http.post(a.dashboard(cache["dashboard_url"]) + "/credentials", timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def b_knows(b: Backend, credential: dict) -> Callable[[], bool]:
    """Whether B authenticates ``credential`` (it learnt it from A's notification)."""

    def attempt() -> bool:
        try:
            b.wire(credential["username"], credential["password"]).sock.close()
        except (AssertionError, ConnectionError, OSError):
            return False
        return True

    return attempt


def wire_on_b(b: Backend, credential: dict, what: str = "B learns the new cache") -> Wire:
    """A session on B for ``credential``, once B authenticates it (from A's notification)."""
    until(b_knows(b, credential), WITHIN_S, what)
    return b.wire(credential["username"], credential["password"])


def closed(wire: Wire) -> Callable[[], bool]:
    wire.sock.settimeout(0.01)

    def check() -> bool:
        try:
            return wire.sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    return check


# -- ownership -------------------------------------------------------------------------------
def test_a_second_process_claiming_an_owned_cluster_refuses_naming_the_owner(pair) -> None:
    a, _, url = pair
    claimant = Backend(a.data_dir.parent, "claimant", url, "local-a").launch()
    assert claimant.wait_healthy() is False
    assert claimant.process is not None and claimant.process.returncode == 1
    lines = claimant.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert "cluster local-a is served by process" in line
    assert f":{a.process.pid}:" in line and f"API {a.api_url}" in line  # type: ignore[union-attr]
    assert "Traceback" not in line
    # Refused means no claim at all: A still owns local-a.
    assert owners(url)["local-a"][0].split(":")[1] == str(a.process.pid)  # type: ignore[union-attr]


def test_a_killed_owner_is_taken_over_once_stale_and_a_clean_stop_releases_at_once(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        shared_key(tmp_path, "first", "second", "third", "fourth")
        first = Backend(tmp_path, "first", url, "local-a").start()
        second = Backend(tmp_path, "second", url, "local-b").start()
        third = Backend(tmp_path, "third", url, "local-b")
        fourth = Backend(tmp_path, "fourth", url, "local-a")
        try:
            assert first.process is not None and second.process is not None
            second.stop(signal.SIGTERM)  # clean: released, taken at once
            assert owners(url)["local-b"][1] == 0
            third.start()
            assert owners(url)["local-b"][0].split(":")[1] == str(third.process.pid)  # type: ignore[union-attr]

            first.stop(signal.SIGKILL)  # no release: local-a is free once stale
            killed = time.monotonic()
            while not fourth.launch().wait_healthy():
                assert "cluster local-a is served by process" in fourth.stderr()
                time.sleep(0.2)
            # Its last heartbeat was at most one interval before the kill.
            assert time.monotonic() - killed >= STALE_AFTER_S - HEARTBEAT_INTERVAL_S - 0.1
            owner = owners(url)["local-a"][0]
            assert owner.split(":")[1] == str(fourth.process.pid)  # type: ignore[union-attr]
            assert "taking over cluster local-a from process" in fourth.stderr()
            assert f":{first.process.pid}:" in fourth.stderr()
        finally:
            for backend in (first, second, third, fourth):
                backend.stop()


def test_two_processes_starting_at_once_for_one_cluster_end_with_one_owner(
    tmp_path: Path,
) -> None:
    with postgres_database() as url:
        shared_key(tmp_path, "one", "two")
        racers = [Backend(tmp_path, name, url, "local-a").launch() for name in ("one", "two")]
        try:
            served = [racer.wait_healthy() for racer in racers]
            assert sorted(served) == [False, True]
            winner, loser = racers if served[0] else racers[::-1]
            assert "cluster local-a is served by process" in loser.stderr()
            assert owners(url)["local-a"][0].split(":")[1] == str(winner.process.pid)  # type: ignore[union-attr]
        finally:
            for racer in racers:
                racer.stop()


# -- changes through A's API reach B's live connections -------------------------------------
def test_a_capability_switched_off_on_a_refuses_a_write_on_b_within_1_s(pair) -> None:
    a, b, _ = pair
    cache = cache_on_b(a)
    primary = cache["credentials"][0]
    wire = wire_on_b(b, primary)
    assert wire.ask(SET) == b"STORED\r\n"
    response = http.patch(
        a.dashboard(cache["dashboard_url"]) + f"/credentials/{primary['username']}",
        json={"write": False},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    took = until(lambda: wire.ask(SET) != b"STORED\r\n", WITHIN_S, "write refused on B")
    assert b"ERROR" in wire.ask(SET)
    print(f"capability off on A -> refused on B after {took * 1000:.0f} ms")


def test_a_credential_deleted_on_a_closes_its_session_on_b(pair) -> None:
    a, b, _ = pair
    cache = cache_on_b(a)
    credential = new_credential(a, cache)
    wire = wire_on_b(b, credential, "B learns the added credential")
    assert wire.ask(SET) == b"STORED\r\n"
    response = http.delete(
        a.dashboard(cache["dashboard_url"]) + f"/credentials/{credential['username']}",
        timeout=10,
    )
    assert response.status_code == 200, response.text
    took = until(closed(wire), WITHIN_S, "B closes the deleted credential's session")
    assert not b_knows(b, credential)()
    print(f"credential deleted on A -> session on B closed after {took * 1000:.0f} ms")


def test_sso_rotated_on_a_voids_the_old_url_on_b(pair) -> None:
    a, b, _ = pair
    cache = cache_on_b(a)
    old = b.dashboard(cache["dashboard_url"]) + "/cache"
    until(lambda: http.get(old, timeout=10).status_code == 200, WITHIN_S, "B knows the cache")
    response = http.post(a.dashboard(cache["dashboard_url"]) + "/sso/rotate", timeout=10)
    assert response.status_code == 200, response.text
    until(lambda: http.get(old, timeout=10).status_code == 404, WITHIN_S, "old URL void on B")
    new = b.dashboard(response.json()["dashboard_url"]) + "/cache"
    assert http.get(new, timeout=10).status_code == 200


def test_a_flush_from_a_empties_b_and_a_client_flush_on_b_is_logged_once(pair) -> None:
    a, b, _ = pair
    cache = cache_on_b(a)
    primary = cache["credentials"][0]
    wire = wire_on_b(b, primary)
    assert wire.ask(SET) == b"STORED\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    response = http.post(a.dashboard(cache["dashboard_url"]) + "/flush", timeout=10)
    assert response.status_code == 200, response.text
    until(lambda: wire.ask(b"get k\r\n") == b"END\r\n", WITHIN_S, "items flushed on B")

    wire.send(b"flush_all\r\n")
    assert wire.read_until(b"\r\n") == b"OK\r\n"

    def client_flushes(backend: Backend) -> list[dict]:
        logs = http.get(backend.dashboard(cache["dashboard_url"]) + "/logs", timeout=10)
        return [line for line in logs.json()["lines"] if line["origin"] == "memcache client"]

    until(lambda: client_flushes(a), WITHIN_S, "the client's flush logged")
    time.sleep(0.5)  # a second line, if any process logged it too, would be there now
    assert len(client_flushes(a)) == len(client_flushes(b)) == 1
    web = [
        line
        for line in http.get(a.dashboard(cache["dashboard_url"]) + "/logs", timeout=10).json()[
            "lines"
        ]
        if line["origin"] == "web interface"
    ]
    assert len(web) == 1


def test_promotion_drain_and_deletion_on_a_are_followed_by_b_and_no_secret_travels(
    pair,
) -> None:
    a, b, url = pair
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        cache = cache_on_b(a)
        on_a, on_b = a.dashboard(cache["dashboard_url"]), b.dashboard(cache["dashboard_url"])
        credential = new_credential(a, cache)
        promoted = http.post(f"{on_a}/credentials/{credential['username']}/promote", timeout=10)
        assert promoted.status_code == 200, promoted.text

        def b_primary() -> str:
            listed = http.get(f"{on_b}/credentials", timeout=10).json()
            return next(c["username"] for c in listed if c["primary"])

        until(lambda: b_primary() == credential["username"], WITHIN_S, "B follows the promotion")
        drain = "http://drain-user:Pw4drainOnly@127.0.0.1:9/logs?token=Tok4drainOnly"
        response = http.put(f"{on_a}/app/log-drain", json={"url": drain}, timeout=10)
        assert response.status_code == 200, response.text
        until(
            lambda: http.get(f"{on_b}/app", timeout=10).json()["log_drain"] == drain,
            WITHIN_S,
            "B follows the new drain",
        )
        assert http.get(f"{on_b}/app", timeout=10).json() == http.get(f"{on_a}/app").json()

        wire = b.wire(credential["username"], credential["password"])
        with a.admin() as client:
            assert client.delete(f"/api/v1/admin/caches/{cache['id']}").status_code == 204
        until(closed(wire), WITHIN_S, "B closes the deleted cache's sessions")
        until(
            lambda: http.get(f"{on_b}/cache", timeout=10).status_code == 404,
            WITHIN_S,
            "B forgets the deleted cache",
        )
        payloads = [n.payload for n in listener.notifies(timeout=0.5)]
    assert len(payloads) >= 5  # created, added, promoted, drain, deleted
    secrets_ = [cache["credentials"][0]["password"], credential["password"], "Pw4", "Tok4"]
    assert not [p for p in payloads for secret in secrets_ if secret in p]
    assert max(len(p) for p in payloads) < 1000


def test_a_fault_injected_through_a_applies_on_the_proxy_b_serves(pair) -> None:
    a, b, _ = pair
    cache = cache_on_b(a)
    primary = cache["credentials"][0]
    wire = wire_on_b(b, primary)
    local_b = [f"proxy-{i}.local-b.local.cachier.internal" for i in (1, 2)]

    def fault(hostname: str, mode: str, delay_ms: int = 0) -> dict:
        with a.admin() as client:
            response = client.post(
                f"/api/v1/admin/proxies/{hostname}/fault",
                json={"mode": mode, "delay_ms": delay_ms},
            )
        assert response.status_code == 200, response.text
        return response.json()

    def get_ms() -> float:
        start = time.monotonic()
        assert wire.ask(b"get k\r\n") == b"END\r\n"
        return (time.monotonic() - start) * 1000

    def faults_on(backend: Backend) -> int:
        with backend.admin() as client:
            return client.get("/api/v1/status").text.count('"fault":"slow"')

    try:
        for hostname in local_b:  # A answers once B confirmed: the answer shows it
            answer = fault(hostname, "slow", 300)
            assert (answer["fault"], answer["delay_ms"]) == ("slow", 300)
        # uvloop's timers are libuv's, of millisecond granularity: a 300 ms hold can end
        # a fraction of a millisecond early by this clock (an unheld get takes ~1 ms)
        assert get_ms() >= 299
        assert faults_on(a) == faults_on(b) == 2  # every process's status page shows them
    finally:
        for hostname in local_b:
            assert fault(hostname, "none")["fault"] == "none"
    assert get_ms() < 300
    assert faults_on(a) == faults_on(b) == 0


def test_a_cache_migrated_through_b_from_a_cluster_to_b_cluster(pair) -> None:
    """A cache on A's cluster moves, through B's API, to B's: A flushes its copy (logged
    once, origin admin operation) and closes its sessions; B serves it from then on."""
    a, b, _ = pair
    with a.admin() as client:
        for _ in range(6):
            made = client.post(
                "/api/v1/admin/caches", json={"name": f"multi-{next(_names)}", "plan": "100mb"}
            ).json()
            if made["cluster"] == "local-a":
                break
    assert made["cluster"] == "local-a"
    primary = made["credentials"][0]
    on_a = a.wire(primary["username"], primary["password"])
    assert on_a.ask(SET) == b"STORED\r\n"
    until(
        lambda: (
            http.get(b.dashboard(made["dashboard_url"]) + "/cache", timeout=10).status_code == 200
        ),
        WITHIN_S,
        "B knows the cache",
    )
    moved = http.post(b.dashboard(made["dashboard_url"]) + "/migrate", timeout=10)
    assert moved.status_code == 200, moved.text
    assert moved.json()["cluster"] == "local-b"
    until(closed(on_a), WITHIN_S, "A closes the moved cache's sessions")
    on_b = b.wire(primary["username"], primary["password"])
    assert on_b.ask(b"get k\r\n") == b"END\r\n"  # the old copy is gone, B serves it
    assert on_b.ask(SET) == b"STORED\r\n"
    with a.admin() as client:
        assert client.get(f"/api/v1/admin/caches/{made['id']}").json()["cluster"] == "local-b"
    logs = http.get(a.dashboard(made["dashboard_url"]) + "/logs", timeout=10).json()["lines"]
    assert [line["origin"] for line in logs if line["origin"]] == ["admin operation"]


def test_after_losing_its_listen_connection_b_rereads_before_serving_new_auths(pair) -> None:
    """B's LISTEN connection is killed while the database accepts no new connection, and a
    credential is revoked meanwhile (its row deleted directly: no notification can carry
    it). Until B has reconnected and re-read, it refuses new authentications; afterwards
    the revoked credential's session is closed and it cannot log in again."""
    a, b, url = pair
    cache = cache_on_b(a)
    primary = cache["credentials"][0]
    credential = new_credential(a, cache)
    wire = wire_on_b(b, credential, "B learns the added credential")
    assert wire.ask(SET) == b"STORED\r\n"
    assert b.process is not None
    listen = (f"cachier-listen %:{b.process.pid}:%",)
    database = url.rsplit("/", 1)[1]
    with (
        psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin,
        psycopg.connect(url, autocommit=True) as db,
    ):
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            db.execute("DELETE FROM credentials WHERE username = %s", (credential["username"],))
            (killed,) = db.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name LIKE %s",
                listen,
            ).fetchone()
            assert killed == 1

            def refused() -> bool:
                try:
                    b.wire(primary["username"], primary["password"]).sock.close()
                except AssertionError:
                    return True
                return False

            until(refused, WITHIN_S, "B refuses new authentications while it cannot re-read")
            probe = Wire(("127.0.0.1", b.endpoint_port))
            secret = primary["password"].encode()
            probe.send(
                b"set %s 0 0 %d\r\n%s\r\n" % (primary["username"].encode(), len(secret), secret)
            )
            assert probe.read_until(b"\r\n") == (
                b"CLIENT_ERROR the service is reloading credentials, try again shortly\r\n"
            )
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        took = until(closed(wire), 5, "B closes the revoked credential's session")
        assert not b_knows(b, credential)()
        until(b_knows(b, primary), WITHIN_S, "B serves new authentications again")
        (listening,) = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", listen
        ).fetchone()
    assert listening == 1
    print(f"database back -> revocation applied after {took * 1000:.0f} ms")


def test_a_foreign_notification_on_the_channel_changes_nothing_and_breaks_nothing(pair) -> None:
    a, b, url = pair
    with psycopg.connect(url, autocommit=True) as db:
        for garbage in ("not json", '{"p": 1}', '{"p": "x", "a": [["c"]]}', '{"fault": 3}'):
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, garbage))
    cache = cache_on_b(a)  # and changes still travel
    until(b_knows(b, cache["credentials"][0]), WITHIN_S, "B learns the new cache")
    assert "Traceback" not in b.stderr()
    assert "ignored a malformed notification" in b.stderr()


def test_a_transaction_touching_too_many_caches_for_one_payload_asks_for_a_full_reread() -> None:
    few = encode("me", [], ["c1", "c2"])
    assert few is not None and json.loads(few) == {
        "p": "me",
        "a": [["c", "c1", ""], ["c", "c2", ""]],
    }
    many = encode("me", [], [f"c{i:010}" for i in range(1000)])
    assert many is not None and json.loads(many) == {"p": "me", "all": True}
    assert encode("me", [], []) is None


# -- where the other clusters are ------------------------------------------------------------
def test_each_process_learns_where_the_other_clusters_proxies_are(tmp_path: Path) -> None:
    with postgres_database() as url:
        shared_key(tmp_path, "a", "b")
        a = RunningService(
            make_config(tmp_path / "a", database=url, clusters=frozenset({"local-a"}))
        )
        b = RunningService(
            make_config(tmp_path / "b", database=url, clusters=frozenset({"local-b"}))
        )
        a.start()
        try:
            b.start()
            try:
                b_proxies = [
                    address
                    for hostname, address in sorted(b.listening.proxies.items())  # type: ignore[union-attr]
                    if ".local-b." in hostname
                ]
                a_proxies = [
                    address
                    for hostname, address in sorted(a.listening.proxies.items())  # type: ignore[union-attr]
                    if ".local-a." in hostname
                ]
                assert b.call(lambda: b.service.dataplane.remote_proxies) == {"local-a": a_proxies}  # type: ignore[union-attr]
                until(
                    lambda: (
                        a.call(lambda: a.service.dataplane.remote_proxies)  # type: ignore[union-attr]
                        == {"local-b": b_proxies}
                    ),
                    WITHIN_S,
                    "A hears of B's claim",
                )
            finally:
                b.stop()
        finally:
            a.stop()


def test_the_embedded_mode_claims_nothing(tmp_path: Path) -> None:
    running = RunningService(make_config(tmp_path)).start()
    try:
        assert running.service is not None
        assert running.service.peers is None
        assert running.call(lambda: running.service.dataplane.remote_proxies) == {}  # type: ignore[union-attr]
    finally:
        running.stop()


# -- one servers value for the service ---------------------------------------------------------
def test_servers_is_one_value_whichever_process_answers_or_starts(tmp_path: Path) -> None:
    """A cache's ``servers`` is what its app was told, the same from every process; a
    process that starts while another runs never rewrites it (no release, no flip), and
    one that advertises something else says so. With --advertise-endpoint-port (a load
    balancer's port) every process advertises the same value."""
    with postgres_database() as url:
        shared_key(tmp_path, "a", "b")
        a = Backend(tmp_path, "a", url, "local-a")
        a.command += ["--advertise-endpoint-port", "11311"]
        a.start()
        b = None
        try:
            with a.admin() as admin:
                created = admin.post("/api/v1/admin/caches", json={"name": "one", "plan": "100mb"})
            assert created.status_code == 201, created.text
            cache = created.json()
            assert cache["servers"] == "127.0.0.1:11311"
            b = Backend(tmp_path, "b", url, "local-b")  # advertises its own port: a mistake
            b.start()
            warning = "give every process the same --advertise-host"
            until(lambda: warning in b.output(), 5, "B warns of its other servers")
            for process in (a, b):
                with process.admin() as admin:
                    seen = admin.get(f"/api/v1/admin/caches/{cache['id']}").json()
                assert seen["servers"] == "127.0.0.1:11311", process.name
                app = http.get(process.dashboard(cache["dashboard_url"]) + "/app", timeout=10)
                config = app.json()["config_vars"]
                assert config["MEMCACHIER_SERVERS"] == "127.0.0.1:11311", process.name
                assert [r["number"] for r in app.json()["releases"]] == [1], process.name
        finally:
            for process in (b, a):
                if process is not None:
                    process.stop()
