"""Warm restart, as an operator gets it: a real ``cachier-backend`` stopped with SIGTERM
(or Ctrl-C) comes back with its caches' items, flags, expiry, CAS and LRU order; a
``kill -9`` comes back empty; a damaged snapshot is refused with a warning; a cache
deleted or moved while the process was down does not come back."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bmemcached
import httpx
import pytest
from pymemcache.client.base import Client

from backend.control.ownership import STALE_AFTER_S
from backend.snapshot import snapshot_path
from tests.conftest import (
    ADMIN_TOKEN,
    address,
    default_trust,
    free_fixed_ports,
    http,
    postgres_database,
)

COMMAND = [sys.executable, "-m", "backend.cli"]
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Backend:
    """One ``cachier-backend`` process on a data dir (and optionally another's database)."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.api_port = free_fixed_ports(1)[0]
        self.process = subprocess.Popen(
            [
                *COMMAND,
                "--data-dir",
                str(data_dir),
                "--api-port",
                str(self.api_port),
                "--endpoint-port",
                "0",
                "--admin-token",
                ADMIN_TOKEN,
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.api = f"http://127.0.0.1:{self.api_port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http.get(f"{self.api}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise AssertionError(self.process.communicate()) from None
                time.sleep(0.05)
        self.process.kill()
        raise AssertionError("backend did not become healthy")

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=HEADERS, timeout=10, verify=default_trust())

    def create_cache(self, name: str, plan: str = "100mb") -> dict:
        with self.admin() as client:
            response = client.post("/api/v1/admin/caches", json={"name": name, "plan": plan})
        assert response.status_code == 201, response.text
        return response.json()

    def cache(self, cache_id: str) -> dict:
        with self.admin() as client:
            response = client.get(f"/api/v1/admin/caches/{cache_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=60)
        if sig is not signal.SIGKILL:
            assert self.process.returncode == 0, err
        return out, err


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started: list[Backend] = []
    yield started
    for backend in started:
        if backend.process.poll() is None:
            backend.process.kill()
            backend.process.communicate()


def ascii_client(info: dict) -> Client:
    """pymemcache logged in with the cache's primary credential (ASCII ``set`` auth)."""
    client = Client(address(info["servers"]), connect_timeout=5, timeout=5)
    credential = info["credentials"][0]
    client.set(credential["username"], credential["password"], noreply=False)
    return client


def binary_client(info: dict) -> bmemcached.Client:
    """python-binary-memcached: binary protocol, SASL PLAIN; it chooses flags by type."""
    credential = info["credentials"][0]
    return bmemcached.Client(
        [info["servers"]], credential["username"], credential["password"], socket_timeout=5
    )


def meta(client: Client, key: str) -> dict[str, int]:
    """``mg <key> f c t``: the item's flags, CAS and remaining TTL (-1: never expires)."""
    reply = client.raw_command(f"mg {key} f c t".encode(), b"\r\n").decode()
    assert reply.startswith("HD "), reply
    return {token[0]: int(token[1:]) for token in reply.split()[1:]}


def lru_keys(client: Client) -> list[str]:
    """``stats cachedump 1 0``: the cache's keys, most recently used first."""
    reply = client.raw_command(b"stats cachedump 1 0", b"END\r\n").decode()
    return [line.split()[1] for line in reply.splitlines() if line.startswith("ITEM ")]


def fill(info: dict) -> dict[str, dict[str, int]]:
    """Items of every kind, through both protocols; returns their flags/CAS/TTL."""
    mc = ascii_client(info)
    assert mc.set("plain", b"value", noreply=False)
    assert mc.set("flagged", b"\x00\xffbinary", flags=0xDEADBEEF, noreply=False)
    assert mc.set("expiring", b"for an hour", expire=3600, noreply=False)
    assert mc.set("short", b"gone by the restart", expire=1, noreply=False)
    assert mc.set("counter", b"41", noreply=False)
    assert mc.incr("counter", 1) == 42
    assert mc.get("plain") == b"value"  # plain is now more recently used than flagged
    bc = binary_client(info)
    assert bc.set("bin-int", 12345)  # bmemcached stores the type in the flags
    assert bc.set("bin-obj", {"a": [1, 2]})
    bc.disconnect_all()
    seen = {k: meta(mc, k) for k in ("plain", "flagged", "expiring", "counter", "bin-int")}
    mc.close()
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_clean_stop_keeps_items_flags_expiry_cas_and_lru_order(
    tmp_path: Path, backends: list[Backend], sig: signal.Signals
) -> None:
    first = Backend(tmp_path)
    backends.append(first)
    info = first.create_cache("warm")
    before = fill(info)
    first.stop(sig)
    snapshots = sorted(tmp_path.glob("warm-*.snapshot"))
    assert [p.name for p in snapshots] == [snapshot_path(tmp_path, info["cluster"]).name]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in snapshots)
    time.sleep(max(0.0, 1.1 - (time.time() % 1)))  # "short" (1 s) has surely expired

    second = Backend(tmp_path)
    backends.append(second)
    assert list(tmp_path.glob("warm-*")) == []  # consumed: a crash now cannot reload it
    info = second.cache(info["id"])  # its endpoint port is new
    mc = ascii_client(info)
    after = {k: meta(mc, k) for k in before}
    for key in before:
        assert after[key]["f"] == before[key]["f"], key
        assert after[key]["c"] == before[key]["c"], key  # the same CAS: a gets/cas survives
    assert after["flagged"]["f"] == 0xDEADBEEF
    assert after["plain"]["t"] == -1
    assert 3500 < after["expiring"]["t"] <= before["expiring"]["t"]
    assert mc.get("plain") == b"value" and mc.get("flagged") == b"\x00\xffbinary"
    assert mc.get("counter") == b"42" and mc.get("expiring") == b"for an hour"
    assert mc.get("short") is None  # its expiry passed while the process was down
    assert mc.gets("counter")[0] == b"42"
    cas = mc.gets("counter")[1]
    assert mc.cas("counter", b"43", cas, noreply=False) is True  # an old CAS still works
    bc = binary_client(info)
    assert bc.get("bin-int") == 12345 and bc.get("bin-obj") == {"a": [1, 2]}
    bc.disconnect_all()
    # New CAS values never repeat one handed out before the restart.
    assert mc.set("new", b"x", noreply=False)
    old_cas = max(v["c"] for v in before.values())
    assert meta(mc, "new")["c"] > old_cas
    mc.close()


def test_the_lru_order_survives_a_restart(tmp_path: Path, backends: list[Backend]) -> None:
    first = Backend(tmp_path)
    backends.append(first)
    info = first.create_cache("ordered")
    mc = ascii_client(info)
    for key in ("a", "b", "c", "d"):
        mc.set(key, key.encode(), noreply=False)
    mc.get("b")
    mc.get("a")
    order = lru_keys(mc)
    assert order == ["a", "b", "d", "c"]
    mc.close()
    first.stop()
    second = Backend(tmp_path)
    backends.append(second)
    assert lru_keys(ascii_client(second.cache(info["id"]))) == order


def test_sigkill_starts_empty(
    tmp_path: Path, backends: list[Backend], saved: tuple[Path, dict]
) -> None:
    data, info = copy_of(saved, tmp_path)  # as a clean stop left it, snapshot included
    second = Backend(data)  # loads the snapshot, and removes it
    backends.append(second)
    info = second.cache(info["id"])
    assert ascii_client(info).get("plain") == b"value"
    second.stop(signal.SIGKILL)
    third = Backend(data)
    backends.append(third)
    info = third.cache(info["id"])
    mc = ascii_client(info)
    assert mc.get("plain") is None and mc.get("counter") is None
    assert lru_keys(mc) == []


BIG = b"x" * 600_000  # two of them do not fit in one 1 MiB chunk of the snapshot


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """A data dir as a clean stop leaves it, and its cache: ``fill``'s items and two BIG
    values (a snapshot of two chunks). The tests that only need to start from a saved
    snapshot each start from a copy of it (``copy_of``): one process start, fill and
    stop for them all instead of one each."""
    data = tmp_path_factory.mktemp("saved") / "data"
    first = Backend(data)
    try:
        info = first.create_cache("warm")
        fill(info)
        mc = ascii_client(info)
        assert mc.set("big-1", BIG, noreply=False) and mc.set("big-2", BIG, noreply=False)
        mc.close()
        first.stop()
    finally:
        if first.process.poll() is None:
            first.process.kill()
            first.process.communicate()
    assert snapshot_path(data, info["cluster"]).exists()
    yield data, info


def copy_of(saved: tuple[Path, dict], tmp_path: Path) -> tuple[Path, dict]:
    """This test's own copy of the ``saved`` data dir (loading a snapshot removes it)."""
    data = tmp_path / "data"
    shutil.copytree(saved[0], data)
    return data, saved[1]


@pytest.mark.parametrize("damage", ["flip a byte", "flip the last byte", "truncate"])
def test_a_damaged_snapshot_is_refused_with_a_warning_and_the_start_is_empty(
    tmp_path: Path, backends: list[Backend], damage: str, saved: tuple[Path, dict]
) -> None:
    data, info = copy_of(saved, tmp_path)  # big-1 and big-2 make two chunks
    path = snapshot_path(data, info["cluster"])
    damaged = bytearray(path.read_bytes())
    if damage == "flip a byte":
        damaged[200] ^= 0x01  # in the first chunk
    elif damage == "flip the last byte":
        damaged[-1] ^= 0x01  # the second chunk's tag: the first chunk loaded, then undone
    else:
        del damaged[-20:]
    path.write_bytes(bytes(damaged))

    second = Backend(data)
    backends.append(second)
    assert not path.exists()
    info = second.cache(info["id"])
    mc = ascii_client(info)
    assert lru_keys(mc) == []  # nothing of it, not even what came before the damage
    assert mc.get("plain") is None and mc.get("big-1") is None
    mc.close()
    out, _ = second.stop()
    assert f"warning: warm restart: the snapshot of cluster {info['cluster']} was refused" in out


def test_a_snapshot_of_another_key_file_is_refused(
    tmp_path: Path, backends: list[Backend], saved: tuple[Path, dict]
) -> None:
    data, info = saved
    path = snapshot_path(data, info["cluster"])  # only read: the saved dir stays as it is
    other = tmp_path / "two"
    other.mkdir()
    shutil.copy(path, snapshot_path(other, info["cluster"]))
    second = Backend(other)  # its own key file: the copied snapshot cannot be read
    backends.append(second)
    out, _ = second.stop()
    assert "does not authenticate (corrupt, or another key file's)" in out
    assert "was refused" in out


def test_a_cache_deleted_or_moved_while_down_does_not_come_back(
    tmp_path: Path, backends: list[Backend]
) -> None:
    data = tmp_path / "data"
    first = Backend(data)
    backends.append(first)
    kept, deleted, moved = (first.create_cache(n) for n in ("kept", "deleted", "moved"))
    for info in (kept, deleted, moved):
        mc = ascii_client(info)
        assert mc.set("k", info["name"].encode(), noreply=False)
        mc.close()
    first.stop()
    # While it is down, another process on the same control plane (the same database and
    # key file, its own data dir) deletes one cache and moves another to the other cluster.
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    shutil.copy(data / "secret.key", other / "secret.key")
    database = f"sqlite:///{data / 'cachier.sqlite3'}"
    admin = Backend(other, "--database", database)
    backends.append(admin)
    with admin.admin() as client:
        assert client.delete(f"/api/v1/admin/caches/{deleted['id']}").status_code == 204
    dashboard = moved["dashboard_url"].replace(first.api, admin.api) + "/api"
    migrated = http.post(f"{dashboard}/migrate", timeout=10)
    assert migrated.status_code == 200, migrated.text
    assert migrated.json()["previous_cluster"] == moved["cluster"]
    admin.stop()

    second = Backend(data)
    backends.append(second)
    assert ascii_client(second.cache(kept["id"])).get("k") == b"kept"
    assert ascii_client(second.cache(moved["id"])).get("k") is None
    with second.admin() as client:
        assert client.get(f"/api/v1/admin/caches/{deleted['id']}").status_code == 404
    second.stop()


def test_a_process_loads_only_the_clusters_it_serves(
    tmp_path: Path, backends: list[Backend]
) -> None:
    """Snapshots are per cluster: a process started with ``--clusters`` loads theirs and
    leaves the others' files for the process that runs those."""
    first = Backend(tmp_path)
    backends.append(first)
    caches = [first.create_cache(name) for name in ("one", "two")]
    assert {c["cluster"] for c in caches} == {"local-a", "local-b"}
    for info in caches:
        mc = ascii_client(info)
        assert mc.set("k", info["cluster"].encode(), noreply=False)
        mc.close()
    first.stop()
    on_a, on_b = sorted(caches, key=lambda c: c["cluster"])
    assert snapshot_path(tmp_path, "local-a").exists()
    assert snapshot_path(tmp_path, "local-b").exists()

    only_a = Backend(tmp_path, "--clusters", "local-a")
    backends.append(only_a)
    assert not snapshot_path(tmp_path, "local-a").exists()  # loaded
    assert snapshot_path(tmp_path, "local-b").exists()  # not this process's
    assert ascii_client(only_a.cache(on_a["id"])).get("k") == b"local-a"
    only_a.stop()
    assert snapshot_path(tmp_path, "local-a").exists()  # saved again, alone

    every = Backend(tmp_path)
    backends.append(every)
    for cache in (on_a, on_b):
        assert ascii_client(every.cache(cache["id"])).get("k") == cache["cluster"].encode()
    every.stop()


def test_one_of_two_processes_on_postgresql_restarts_warm(
    tmp_path: Path, backends: list[Backend]
) -> None:
    """Two processes share a PostgreSQL control plane, one cluster each: the one restarted
    with SIGTERM gets its cluster's items back; the other, killed, starts its own empty."""
    with postgres_database() as url:
        dir_a, dir_b = tmp_path / "a", tmp_path / "b"
        a = Backend(dir_a, "--database", url, "--clusters", "local-a")
        backends.append(a)
        caches = [a.create_cache(name) for name in ("one", "two")]
        on_a, on_b = sorted(caches, key=lambda c: c["cluster"])
        assert (on_a["cluster"], on_b["cluster"]) == ("local-a", "local-b")
        dir_b.mkdir(mode=0o700)
        shutil.copy(dir_a / "secret.key", dir_b / "secret.key")  # one key per service
        b = Backend(dir_b, "--database", url, "--clusters", "local-b")
        backends.append(b)
        for process, cache in ((a, on_a), (b, on_b)):
            mc = ascii_client(process.cache(cache["id"]))
            assert mc.set("k", cache["cluster"].encode(), noreply=False)
            mc.close()

        b.stop()
        a.stop(signal.SIGKILL)
        assert snapshot_path(dir_b, "local-b").exists()
        assert not snapshot_path(dir_a, "local-a").exists()
        # A killed owner's claim is taken over once it is stale (README, Scaling out); a
        # clean stop (B) frees it at once.
        time.sleep(STALE_AFTER_S + 0.5)
        b = Backend(dir_b, "--database", url, "--clusters", "local-b")
        a = Backend(dir_a, "--database", url, "--clusters", "local-a")
        backends += [a, b]
        assert ascii_client(b.cache(on_b["id"])).get("k") == b"local-b"
        assert ascii_client(a.cache(on_a["id"])).get("k") is None
        b.stop()
        a.stop()
