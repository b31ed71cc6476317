"""Per-credential activity (issue 16 item 1): last authentication, live connections,
commands in the last minute / hour and refused commands, from real clients through the
real API; the sampler's windows against a real data plane with a stepped clock."""

from __future__ import annotations

import time

import bmemcached
import bmemcached.exceptions
import httpx
import pytest
from pymemcache.client.base import Client

from backend.activity import ActivitySampler, CredentialActivity, LastAuth
from backend.clients import AuthenticationError, authenticating_socket_module
from backend.dataplane import DataPlane
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.backend.test_auth import pymemcache_client
from tests.backend.test_capabilities import add_credential
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config


def listed(cache: CacheHandle) -> dict[str, dict]:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        response = api.get("/credentials")
    assert response.status_code == 200, response.text
    return {c["username"]: c for c in response.json()}


def activity(cache: CacheHandle, username: str) -> dict:
    return listed(cache)[username]["activity"]


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


def test_a_new_credential_reads_as_never_used(cache: CacheHandle) -> None:
    fresh = add_credential(cache)
    assert fresh["activity"] == {
        "last_auth": None,
        "connections": 0,
        "peers": [],
        "commands_last_minute": 0,
        "commands_last_hour": 0,
        "refused_write": 0,
        "refused_flush": 0,
    }
    assert activity(cache, fresh["username"])["last_auth"] is None


def test_pymemcache_use_shows_its_authentication_connection_and_commands(
    cache: CacheHandle,
) -> None:
    before = time.time()
    client = pymemcache_client(cache)
    client.set("k", "v", noreply=False)
    for _ in range(5):
        assert client.get("k") == b"v"
    seen = activity(cache, cache.username)
    last = seen["last_auth"]
    assert last is not None
    assert before - 1 <= last["at"] <= time.time() + 1
    assert last["protocol"] == "ascii"
    assert last["peer"] == "127.0.0.1"
    assert last["proxy"].startswith("proxy-")
    assert seen["connections"] == 1 and seen["peers"] == ["127.0.0.1"]
    # The authentication is no command; the set and five gets are.
    assert seen["commands_last_minute"] == 6
    assert seen["commands_last_hour"] == 6
    client.close()
    wait_until(lambda: activity(cache, cache.username)["connections"] == 0)
    assert activity(cache, cache.username)["last_auth"] == last  # kept after the close


def test_each_protocol_is_named(cache: CacheHandle) -> None:
    host, port = cache.endpoint
    binary = bmemcached.Client([f"{host}:{port}"], cache.username, cache.password)
    binary.set("b", "1")
    assert activity(cache, cache.username)["last_auth"]["protocol"] == "binary"
    binary.disconnect_all()
    meta = Wire.authenticated(cache)
    assert activity(cache, cache.username)["last_auth"]["protocol"] == "ascii"
    assert meta.ask(b"ms m 1\r\nx\r\n") == b"HD\r\n"  # the first meta command
    assert activity(cache, cache.username)["last_auth"]["protocol"] == "meta"
    meta.close()


def test_refused_commands_are_counted_per_capability(cache: CacheHandle) -> None:
    limited = add_credential(cache, write=False, flush=False)
    wire = Wire.authenticated(cache, limited["username"], limited["password"])
    wire.send(b"set k 0 0 1\r\nx\r\ndelete k\r\nflush_all\r\nget k\r\n")
    assert wire.read_until(b"END\r\n").count(b"CLIENT_ERROR") == 3
    seen = activity(cache, limited["username"])
    assert (seen["refused_write"], seen["refused_flush"]) == (2, 1)
    assert seen["commands_last_minute"] == 4  # refused ones are commands too
    assert activity(cache, cache.username)["refused_write"] == 0  # per credential
    wire.close()
    host, port = cache.endpoint  # the binary protocol's refusals are counted alike
    binary = bmemcached.Client([f"{host}:{port}"], limited["username"], limited["password"])
    with pytest.raises(bmemcached.exceptions.MemcachedException):
        binary.set("b", "1")
    binary.disconnect_all()
    assert activity(cache, limited["username"])["refused_write"] == 3


def test_live_connections_are_listed_with_their_addresses_until_deleted(
    cache: CacheHandle,
) -> None:
    old = add_credential(cache)
    wires = [
        Wire.authenticated(cache, old["username"], old["password"]),
        Wire.authenticated(cache, old["username"], old["password"]),
    ]
    seen = activity(cache, old["username"])
    assert seen["connections"] == 2 and seen["peers"] == ["127.0.0.1", "127.0.0.1"]
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        deleted = api.delete(f"/credentials/{old['username']}")
    assert deleted.json()["closed_connections"] == 2
    for wire in wires:
        assert wire.read_to_close() == b""
    assert old["username"] not in listed(cache)


def test_rotation_walkthrough_through_the_dashboard_api(cache: CacheHandle) -> None:
    """Issue 16's acceptance, end to end against the real backend with the README's
    pymemcache login: add a credential, switch the client to it, watch the old one's
    connections drop to 0 while its last use stays put (its age grows), delete it."""
    old_user, old_password = cache.username, cache.password

    def client_of(username: str, password: str) -> Client:
        login = authenticating_socket_module(username, password)
        return Client(cache.endpoint, socket_module=login, connect_timeout=5, timeout=5)

    client = client_of(old_user, old_password)
    assert client.set("k", "v", noreply=False)
    seen = activity(cache, old_user)
    assert seen["connections"] == 1 and seen["last_auth"]["protocol"] == "ascii"

    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        added = api.post("/credentials")
        assert added.status_code == 201, added.text
        new_user, new_password = added.json()["username"], added.json()["password"]
        assert listed(cache)[new_user]["activity"]["last_auth"] is None  # never used
        assert api.post(f"/credentials/{new_user}/promote").status_code == 200
        assert api.get("/app").json()["config_vars"]["MEMCACHIER_USERNAME"] == new_user

        client.close()  # the app restarts with the new credential
        client = client_of(new_user, new_password)
        assert client.get("k") == b"v"
        wait_until(lambda: activity(cache, old_user)["connections"] == 0)
        old = activity(cache, old_user)
        assert old["peers"] == [] and old["last_auth"] == seen["last_auth"]
        new = activity(cache, new_user)
        assert new["connections"] == 1 and new["last_auth"]["at"] >= old["last_auth"]["at"]
        for _ in range(5):
            client.get("k")
        time.sleep(1.1)
        later = activity(cache, old_user)
        assert later["last_auth"] == old["last_auth"]  # nobody used it: "unused for" grows
        assert later["commands_last_minute"] == old["commands_last_minute"]
        assert time.time() - later["last_auth"]["at"] > 1

        deleted = api.delete(f"/credentials/{old_user}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"username": old_user, "closed_connections": 0}
    assert list(listed(cache)) == [new_user]
    assert client.get("k") == b"v"  # the new credential's client never noticed
    client.close()
    stale = client_of(old_user, old_password)
    with pytest.raises(AuthenticationError):
        stale.get("k")
    stale.close()


def test_the_operator_listing_carries_no_activity(service, cache: CacheHandle) -> None:
    with service.admin() as admin:
        page = admin.get("/api/v1/admin/caches", params={"q": cache.info["id"]}).json()
    mine = next(c for c in page["items"] if c["id"] == cache.info["id"])
    assert all(c["activity"] is None for c in mine["credentials"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dataplane() -> DataPlane:
    return DataPlane(default_topology(), AuthThrottle(10, 60.0, 10))


def test_the_sampler_answers_the_last_minute_and_hour(dataplane: DataPlane) -> None:
    clock = Clock()
    record = dataplane.activity["u"] = CredentialActivity(clock.now - 7200)  # an old record
    sampler = ActivitySampler(dataplane, interval_s=10, clock=clock)
    for _ in range(2 * 360):  # two hours: one command a second
        sampler.sample()
        record.commands += 10
        clock.now += 10
    report = sampler.report("u")
    # The window reaches back to the newest sample at or before it: up to one interval more.
    assert 60 <= report.commands_last_minute <= 70
    assert 3600 <= report.commands_last_hour <= 3660
    assert report.connections == 0 and report.peers == []


def test_a_young_record_counts_everything_and_memory_stays_bounded(
    dataplane: DataPlane,
) -> None:
    clock = Clock()
    sampler = ActivitySampler(dataplane, interval_s=10, clock=clock)
    record = dataplane.activity["u"] = CredentialActivity(clock.now)
    record.commands = 42  # before the sampler has seen it
    assert sampler.report("u").commands_last_minute == 42
    for _ in range(5000):
        sampler.sample()
        clock.now += 10
    rates = sampler.rates["u"]
    assert rates.minute.size < 10 and rates.hour.size < 70  # fixed rings, however long
    del dataplane.activity["u"]  # the credential was deleted
    sampler.sample()
    assert "u" not in sampler.rates


# -- last use across a restart ------------------------------------------------------------
def test_last_use_survives_a_restart_but_counts_start_again(tmp_path, database: str) -> None:
    first = RunningService(make_config(tmp_path, database=database)).start()
    cache = CacheHandle(first.create_cache("remembers"))
    unused = add_credential(cache)
    client = pymemcache_client(cache)
    client.set("k", "v", noreply=False)
    before = activity(cache, cache.username)["last_auth"]
    client.close()
    first.stop()  # a graceful stop saves what the throttle held back

    second = RunningService(make_config(tmp_path, database=database)).start()
    try:
        again = CacheHandle(
            {
                **cache.info,
                "dashboard_url": cache.info["dashboard_url"].replace(first.api_url, second.api_url),
            }
        )
        after = activity(again, cache.username)
        assert after["last_auth"] == before
        assert after["connections"] == 0 and after["commands_last_hour"] == 0
        assert activity(again, unused["username"])["last_auth"] is None
    finally:
        second.stop()


class SavedUses:
    """A ``UseStore`` that keeps what it is given, to watch the sampler's throttle."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    def load(self) -> dict[str, LastAuth]:
        return {"old": LastAuth(1.0, "binary", "proxy-1.use1-a", "10.0.0.9")}

    def save(self, uses: list[tuple[str, LastAuth]]) -> None:
        self.writes.append([username for username, _ in uses])


def test_last_use_is_saved_at_most_once_a_minute_per_credential(dataplane: DataPlane) -> None:
    clock, store = Clock(), SavedUses()
    sampler = ActivitySampler(dataplane, interval_s=10, clock=clock, store=store)
    assert sampler.report("old").last_auth == LastAuth(1.0, "binary", "proxy-1.use1-a", "10.0.0.9")
    dataplane.record_auth("u", "ascii", "proxy-1.use1-a", "127.0.0.1")
    sampler.sample()
    assert store.writes == [["u"]]
    for _ in range(5):  # a client reconnecting every 10 s: no write for 50 s
        clock.now += 10
        dataplane.record_auth("u", "ascii", "proxy-1.use1-a", "127.0.0.1")
        sampler.sample()
    assert store.writes == [["u"]]
    clock.now += 10
    sampler.sample()  # a minute after the first write
    assert store.writes == [["u"], ["u"]]
    clock.now += 10
    sampler.sample()  # nothing new: nothing written
    assert store.writes == [["u"], ["u"]]
    dataplane.record_auth("u", "meta", "proxy-1.use1-a", "127.0.0.1")
    sampler.save(dataplane.activity_now(), clock.now, force=True)  # the service stops
    assert store.writes == [["u"], ["u"], ["u"]]
