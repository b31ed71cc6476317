"""Control-plane change events: one per committed fact, after the commit, never on a rollback.

Most tests build the control plane in-process (a real repository, the real data plane
subscribed to the bus, no sockets); the last ones go through the running service and real
memcache connections. All run on both repositories: SQLite in a temp dir and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from backend.analytics import Analytics
from backend.control.database import open_repository, parse_database_url
from backend.control.db import Database
from backend.control.errors import Conflict
from backend.control.models import Cache
from backend.control.plane import ControlPlane
from backend.control.repository import ControlRepository
from backend.control.secrets import Secrets
from backend.dataplane import DataPlane
from backend.events import (
    EVENT_TYPES,
    CacheCreated,
    CacheDeleted,
    CacheFlushed,
    CacheMoved,
    CapabilitiesChanged,
    CredentialAdded,
    CredentialRevoked,
    EventBus,
    LogLineWritten,
    PrimaryPromoted,
    ProxyFaultSet,
    SsoRotated,
)
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService


@pytest.fixture(scope="module")
def service(each_database_service: RunningService) -> RunningService:
    return each_database_service


if TYPE_CHECKING:
    from backend.control.postgres import PostgresRepository

    Repository = Database | PostgresRepository


class FailingRepository:
    """The real repository, except that ``fail_on`` raises (inside the transaction)."""

    def __init__(self, db: Repository) -> None:
        self.db = db
        self.fail_on: str | None = None

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.db, name)
        if name == self.fail_on:

            def fail(*args: object, **kwargs: object) -> None:
                raise RuntimeError(f"{name} failed")

            return fail
        return attribute


class Recorder:
    """Every event, with whether the repository was inside a transaction when it came."""

    def __init__(self, bus: EventBus, db: Repository) -> None:
        self.db = db
        self.events: list[Any] = []
        self.during_transaction = False
        for event_type in EVENT_TYPES:
            bus.subscribe(event_type, self._record)

    def _record(self, event: Any) -> None:
        self.during_transaction |= self.db.in_transaction
        self.events.append(event)

    def take(self, *, logs: bool = False) -> list[Any]:
        taken, self.events = self.events, []
        return [e for e in taken if logs or not isinstance(e, LogLineWritten)]


class World:
    def __init__(self, tmp_path: Path, database: str) -> None:
        """``database``: a --database value ("" is SQLite in ``tmp_path``)."""
        self.db: Repository = open_repository(parse_database_url(database), tmp_path)  # type: ignore[assignment]
        self.repository = FailingRepository(self.db)
        self.bus = EventBus()
        self.recorder = Recorder(self.bus, self.db)  # first: sees the data plane's input
        topology = default_topology()
        self.dataplane = DataPlane(topology, AuthThrottle())
        self.dataplane.subscribe(self.bus)
        self.analytics = Analytics(self.dataplane)
        self.analytics.subscribe(self.bus)
        repository: ControlRepository = self.repository  # type: ignore[assignment]
        self.control = ControlPlane(
            repository, Secrets.load_or_create(tmp_path), topology, self.bus, self.dataplane
        )
        self.control.endpoints = {r.name: "127.0.0.1:11211" for r in topology.regions}

    @contextmanager
    def failing(self, operation: str) -> Iterator[None]:
        self.repository.fail_on = operation
        try:
            yield
        finally:
            self.repository.fail_on = None


@pytest.fixture
def world(tmp_path: Path, database: str) -> Iterator[World]:
    world = World(tmp_path, database)
    yield world
    world.db.close()


def make_cache(world: World, name: str = "c", plan: str = "100mb") -> Cache:
    cache = world.control.create_cache(name, plan)
    world.recorder.take()
    return cache


def test_creating_a_cache_publishes_the_cache_then_its_primary(world: World) -> None:
    cache = world.control.create_cache("c", "100mb")
    primary = cache.primary()
    assert world.recorder.take() == [
        CacheCreated(cache.id, "c", "100mb", cache.region, cache.cluster),
        CredentialAdded(cache.id, primary.username, primary.password, True, True, True, True),
    ]
    assert not world.recorder.during_transaction


def test_the_data_plane_keeps_its_own_records(world: World) -> None:
    cache = make_cache(world)
    primary = cache.primary()
    live = world.dataplane.credentials[primary.username]
    assert live is not primary and world.dataplane.caches[cache.id] is not cache
    assert (live.password, live.write, live.flush) == (primary.password, True, True)


def test_each_credential_operation_publishes_one_event_after_commit(world: World) -> None:
    control, recorder = world.control, world.recorder
    cache = make_cache(world)
    old = cache.primary().username
    added = control.add_credential(cache)
    assert recorder.take() == [
        CredentialAdded(cache.id, added.username, added.password, False, True, True)
    ]
    control.set_capabilities(cache, added.username, False, None)
    assert recorder.take() == [CapabilitiesChanged(cache.id, added.username, False, True)]
    live = world.dataplane.credentials[added.username]
    assert (live.write, live.flush) == (False, True)  # what sessions check per command
    control.promote(cache, added.username)
    assert recorder.take() == [PrimaryPromoted(cache.id, added.username, old)]
    assert world.dataplane.credentials[added.username].primary
    assert cache.app is not None and cache.app.config_vars["MEMCACHIER_USERNAME"] == added.username
    control.delete_credential(cache, old)
    assert recorder.take() == [CredentialRevoked(cache.id, old)]
    assert old not in world.dataplane.credentials
    control.rotate_sso(cache)
    assert recorder.take() == [SsoRotated(cache.id)]
    assert not recorder.during_transaction


def test_flush_move_and_delete_publish_after_commit(world: World) -> None:
    control, recorder, dataplane = world.control, world.recorder, world.dataplane
    cache = make_cache(world)
    proxy = control.flush(cache, "web interface")
    assert recorder.take() == [CacheFlushed(cache.id, cache.cluster, "web interface", proxy)]
    old = cache.cluster
    new = control.migrate(cache)
    moved = recorder.take()
    assert moved[0] == CacheFlushed(cache.id, old, "admin operation", moved[1].proxy)
    assert moved[1] == CacheMoved(cache.id, old, new, moved[1].proxy)
    assert len(moved) == 2 and dataplane.caches[cache.id].cluster == new == cache.cluster
    usernames = tuple(c.username for c in cache.credentials)
    control.delete_cache(cache)
    assert recorder.take() == [CacheDeleted(cache.id, new, usernames)]
    assert cache.id not in dataplane.caches and cache.id not in control.caches
    assert not any(u in dataplane.credentials or u in control.credentials for u in usernames)
    assert not world.db.caches() and not world.db.credentials()
    assert not recorder.during_transaction


def test_committed_log_lines_are_published_with_their_app(world: World) -> None:
    cache = make_cache(world)
    world.control.set_log_drain(cache, "https://drain.example/x")
    world.control.rotate_sso(cache)
    lines = [e for e in world.recorder.take(logs=True) if isinstance(e, LogLineWritten)]
    assert [line.message for line in lines][-1].startswith("Dashboard SSO secret rotated")
    assert lines[-1].drain == "https://drain.example/x" and lines[-1].app_name == "app-c"


OPERATIONS = {
    "create_cache": lambda c, cache: c.create_cache("other", "100mb"),
    "add_credential": lambda c, cache: c.add_credential(cache),
    "set_capabilities": lambda c, cache: c.set_capabilities(
        cache, cache.primary().username, False, False
    ),
    "delete_credential": lambda c, cache: c.delete_credential(cache, cache.credentials[1].username),
    "promote": lambda c, cache: c.promote(cache, cache.credentials[1].username),
    "rotate_sso": lambda c, cache: c.rotate_sso(cache),
    "flush": lambda c, cache: c.flush(cache, "web interface"),
    "migrate": lambda c, cache: c.migrate(cache),
    "set_log_drain": lambda c, cache: c.set_log_drain(cache, "https://drain.example/x"),
    "delete_cache": lambda c, cache: c.delete_cache(cache),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_a_failed_transaction_publishes_nothing_and_changes_nothing(
    world: World, operation: str
) -> None:
    control = world.control
    cache = make_cache(world)
    control.add_credential(cache)
    world.recorder.take()

    def state() -> object:
        return (
            [
                (
                    c.id,
                    c.cluster,
                    c.sso_hash,
                    [(k.username, k.primary, k.write, k.flush) for k in c.credentials],
                    c.app and (c.app.release, dict(c.app.config_vars), c.app.log_drain),
                )
                for c in control.caches.values()
            ],
            sorted(control.credentials),
            sorted(
                (u, k.write, k.flush, k.primary, k.revoked)
                for u, k in world.dataplane.credentials.items()
            ),
            sorted((i, c.cluster) for i, c in world.dataplane.caches.items()),
            world.db.caches(),
            world.db.credentials(),
            world.db.apps(),
        )

    before = state()
    failing = "delete_cache" if operation == "delete_cache" else "insert_log"
    with world.failing(failing), pytest.raises(RuntimeError, match="failed"):
        OPERATIONS[operation](control, cache)
    assert world.recorder.take(logs=True) == []
    assert state() == before
    OPERATIONS[operation](control, cache)  # and the same operation then works
    assert world.recorder.take(logs=True) != []


def test_a_failing_subscriber_does_not_undo_or_stop_the_change(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    cache = make_cache(world)
    username = cache.primary().username

    def broken(event: CapabilitiesChanged) -> None:
        raise RuntimeError("subscriber bug")

    bus = EventBus()  # the broken subscriber first, then the data plane
    bus.subscribe(CapabilitiesChanged, broken)
    world.dataplane.subscribe(bus)
    world.control.bus = bus
    with caplog.at_level(logging.ERROR, logger="backend.events"):
        changed = world.control.set_capabilities(cache, username, False, None)
    assert not changed.write and "subscriber bug" in caplog.text
    assert not world.dataplane.credentials[username].write
    assert [r.can_write for r in world.db.credentials()] == [False]


def test_a_refused_operation_publishes_nothing(world: World) -> None:
    cache = make_cache(world)
    with pytest.raises(Conflict):
        world.control.promote(cache, cache.primary().username)
    assert world.recorder.take(logs=True) == []


def test_loading_announces_every_stored_cache_and_credential(tmp_path: Path, database: str) -> None:
    first = World(tmp_path, database)
    cache = first.control.create_cache("c", "100mb")
    added = first.control.add_credential(cache)
    first.db.close()
    again = World(tmp_path, database)
    again.control.load()
    assert [type(e) for e in again.recorder.take()] == [
        CacheCreated,
        CredentialAdded,
        CredentialAdded,
    ]
    assert again.dataplane.credentials[added.username].password == added.password
    again.db.close()


# -- through the running service ------------------------------------------------------------
def test_deleting_a_cache_closes_its_connections_and_forgets_its_history(
    service: RunningService, cache: CacheHandle
) -> None:
    wire = Wire.authenticated(cache)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    cache_id = cache.info["id"]
    analytics = service.service.analytics
    service.call_control(analytics.sample)
    assert service.call_control(lambda: analytics.series(cache_id)["samples"]) != []
    with service.admin() as admin:
        assert admin.delete(f"/api/v1/admin/caches/{cache_id}").status_code == 204
        assert admin.get(f"/api/v1/admin/caches/{cache_id}").status_code == 404
        assert admin.delete(f"/api/v1/admin/caches/{cache_id}").status_code == 404
    assert wire.read_to_close() == b""
    assert service.call_control(lambda: analytics.series(cache_id)["samples"]) == []
    assert httpx.get(cache.dashboard_api + "/cache").status_code == 404
    retry = Wire(cache.endpoint)
    secret = cache.password.encode()
    retry.send(b"set %s 0 0 %d\r\n%s\r\n" % (cache.username.encode(), len(secret), secret))
    assert retry.read_to_close() == b"CLIENT_ERROR authentication failure\r\n"


def test_a_fault_reaches_the_monitor_as_an_event(service: RunningService) -> None:
    seen: list[ProxyFaultSet] = []
    service.call(service.service.bus.subscribe, ProxyFaultSet, seen.append)
    hostname = next(iter(service.listening.proxies))
    with service.admin() as admin:
        url = f"/api/v1/admin/proxies/{hostname}/fault"
        slow = admin.post(url, json={"mode": "slow", "delay_ms": 5}).json()
        assert (slow["fault"], slow["delay_ms"]) == ("slow", 5)
        assert service.call_control(service.service.monitor.fault, hostname) == ("slow", 5)
        admin.post(url, json={"mode": "none"})
    assert seen == [ProxyFaultSet(hostname, "slow", 5), ProxyFaultSet(hostname, "none", 0)]
    assert service.call_control(service.service.monitor.fault, hostname) == ("none", 0)
