"""The endpoint relay (issue 14 item 4): two backends on one PostgreSQL database, A running
cluster ``local-a`` and B running ``local-b`` (``--clusters``). A client of a ``local-b``
cache that connects to A's region endpoint (plain or TLS) is carried to B's proxy after
authentication, and B serves it.

Until cluster ownership is recorded in the database, the test tells A where ``local-b``
runs (``DataPlane.remote_proxies``) from B's bound proxies; the caches and credentials are
created through A's API before B starts, so B loads them. Both processes share the key
file, as every process of one service must (credential passwords are encrypted with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import bmemcached
import httpx
import pytest
import trustme
from pymemcache.client.base import Client

from backend import relay
from backend.dataplane import DataPlane
from backend.store import MAX_ITEM_SIZE
from tests.backend.test_auth import AuthenticatingClient
from tests.backend.test_binary import (
    AUTH_ERROR,
    GET,
    NOOP,
    OK,
    SASL_AUTH,
    SET,
    Binary,
    add_credential,
    packet,
)
from tests.backend.wire import Wire, store_extras
from tests.conftest import (
    CacheHandle,
    RunningService,
    address,
    free_port,
    http,
    make_config,
    postgres_database,
)

UNAVAILABLE = b"CLIENT_ERROR no proxy of this cache's cluster is available\r\n"
FAILURE = b"CLIENT_ERROR authentication failure\r\n"
REMOTE_CACHES = 20  # one per test that uses a cache of local-b (remote_cache)


@dataclass
class Pair:
    a: RunningService  # runs local-a; its endpoints relay local-b's caches to B
    b: RunningService  # runs local-b
    remote: list[CacheHandle]  # caches on local-b, each handed to one test
    local: CacheHandle  # a cache on local-a
    ca: trustme.CA
    loops: str  # "asyncio" or "uvloop": what both services' serving loops are

    def remote_proxies(self) -> list[str]:
        assert self.b.listening is not None
        return list(self.b.listening.proxies.values())

    def set_route(self, addresses: list[str] | None) -> None:
        """What A believes about where local-b runs (None: nowhere)."""

        def update(dataplane: DataPlane) -> None:
            if addresses is None:
                dataplane.remote_proxies.pop("local-b", None)
            else:
                dataplane.remote_proxies["local-b"] = addresses

        self.a.call(update, self.a.service.dataplane)


def _served_by(service: RunningService, cluster: str) -> list[str]:
    return [h for h in service.listening.proxies if f".{cluster}." in h]


@contextlib.contextmanager
def event_loops(kind: str) -> Iterator[None]:
    """Services started inside run on loops of this kind: asyncio's, or uvloop's,
    which ``cachier-backend`` runs on (its transports implement the relay's calls anew)."""
    if kind == "asyncio":
        yield
        return
    import uvloop

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    ca = trustme.CA()
    with postgres_database() as url:
        dir_a, dir_b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
        server_cert = ca.issue_cert("127.0.0.1", "localhost")
        cert, key = dir_a / "server.pem", dir_a / "server.key"
        server_cert.cert_chain_pems[0].write_to_path(cert)
        server_cert.private_key_pem.write_to_path(key)
        config_a = make_config(
            dir_a,
            database=url,
            clusters=frozenset({"local-a"}),
            tls_port=0,
            tls_cert=cert,
            tls_key=key,
        )
        with event_loops(request.param):
            a = RunningService(config_a).start()
        b: RunningService | None = None
        try:
            remote: list[CacheHandle] = []
            local: CacheHandle | None = None
            for i in range(3 * REMOTE_CACHES):  # placement spreads them over both clusters
                handle = CacheHandle(a.create_cache(f"relay-{i}"))
                if handle.info["cluster"] == "local-b":
                    remote.append(handle)
                elif local is None:
                    local = handle
                if len(remote) == REMOTE_CACHES and local is not None:
                    break
            assert local is not None and len(remote) == REMOTE_CACHES
            for handle in remote:  # a second, deletable credential, which B loads too
                handle.info["credentials"].append(add_credential(handle, write=True))
            shutil.copy(dir_a / "secret.key", dir_b / "secret.key")
            config_b = make_config(dir_b, database=url, clusters=frozenset({"local-b"}))
            with event_loops(request.param):
                b = RunningService(config_b).start()
            pair = Pair(a, b, remote, local, ca, request.param)
            pair.set_route(pair.remote_proxies())
            yield pair
        finally:
            if b is not None:
                b.stop()
            a.stop()


@pytest.fixture
def remote_cache(pair: Pair) -> CacheHandle:
    """A cache of local-b of its own, reached through A's endpoint (its ``servers``)."""
    return pair.remote.pop()


@pytest.fixture
def route(pair: Pair) -> Iterator[Pair]:
    """For a test that changes A's route to local-b: restored afterwards."""
    yield pair
    pair.set_route(pair.remote_proxies())


def items_on(service: RunningService, cache: CacheHandle) -> int | None:
    """Items of the cache in that process's store; None if the process has no engine."""
    dataplane = service.service.dataplane

    def count() -> int | None:
        record = dataplane.caches[cache.info["id"]]
        engine = dataplane.peek_engine(record)
        return None if engine is None else engine.usage().items

    return service.call(count)


def live_on_b(pair: Pair, cache: CacheHandle) -> int:
    return pair.b.call(pair.b.service.dataplane.sessions_of, cache.username)


def relays_on_a(pair: Pair, cache: CacheHandle) -> int:
    return pair.a.call(lambda: len(pair.a.service.dataplane.relays.get(cache.username, ())))


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def on_b(pair: Pair, cache: CacheHandle) -> tuple[str, int]:
    """B's own region endpoint (the same ``servers`` host, B's port)."""
    return address(pair.b.listening.endpoints["local"])


def test_both_services_run_on_the_loop_kind_under_test(pair: Pair) -> None:
    for service in (pair.a, pair.b):
        module = type(service._loop).__module__
        assert module.startswith("uvloop" if pair.loops == "uvloop" else "asyncio"), module


# -- --clusters ------------------------------------------------------------------------------
def test_each_process_binds_only_its_clusters_proxies(pair: Pair) -> None:
    assert sorted(pair.a.listening.proxies) == _served_by(pair.a, "local-a")
    assert len(pair.a.listening.proxies) == 2
    assert all(".local-b." in h for h in pair.b.listening.proxies)
    assert len(pair.b.listening.proxies) == 2
    assert set(pair.a.service.dataplane.stores) == {"local-a"}
    assert set(pair.b.service.dataplane.stores) == {"local-b"}


def test_the_api_still_answers_for_the_whole_service(pair: Pair) -> None:
    """Caches of clusters run elsewhere are listed (their usage is the owner's to report),
    and the status and metrics routes work with proxies this process does not run."""
    with pair.a.admin() as admin:
        listed = admin.get("/api/v1/admin/caches")
        assert listed.status_code == 200
        clusters = {c["cluster"] for c in listed.json()["items"]}
        assert clusters == {"local-a", "local-b"}
        assert admin.get("/metrics").status_code == 200
    assert http.get(f"{pair.a.api_url}/api/v1/status").status_code == 200


def test_the_leading_monitor_probes_every_process_s_proxies(pair: Pair) -> None:
    """One monitor leads (issue 14 item 5) and probes both processes' proxies, logging
    in on B's with the probe credential derived from the shared key file; the other
    shows its results."""
    monitors = [pair.a.service.monitor, pair.b.service.monitor]
    assert monitors[0] is not None and monitors[1] is not None
    wait_for(lambda: sum(m.leading for m in monitors) == 1)  # type: ignore[union-attr]
    for monitor in monitors:
        wait_for(lambda m=monitor: all(h.observed and h.state == "up" for h in m.health.values()))


def test_a_fault_on_a_proxy_of_another_process_is_applied_by_its_owner(pair: Pair) -> None:
    """A's API takes a fault for B's proxy and B applies it (issue 14: sent through
    PostgreSQL to the owner); cleared the same way, so the pair serves the next tests."""
    hostname = next(iter(pair.b.listening.proxies))
    assert pair.b.service.dataplane is not None
    b_proxy = pair.b.service.dataplane.topology.proxy(hostname)
    assert b_proxy is not None
    state = pair.b.service.dataplane.proxy_state[b_proxy]
    try:
        for mode, down in (("down", True), ("none", False)):
            response = http.post(
                f"{pair.a.api_url}/api/v1/admin/proxies/{hostname}/fault",
                json={"mode": mode},
                headers={"Authorization": "Bearer test-admin-token"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["fault"] == mode
            wait_for(lambda down=down: state.down is down)
    finally:
        if state.down:  # cleared on its owner directly
            http.post(
                f"{pair.b.api_url}/api/v1/admin/proxies/{hostname}/fault",
                json={"mode": "none"},
                headers={"Authorization": "Bearer test-admin-token"},
            )


# -- the relay -------------------------------------------------------------------------------
def test_pymemcache_through_a_is_served_by_b(pair: Pair, remote_cache: CacheHandle) -> None:
    client = AuthenticatingClient(
        remote_cache.endpoint, remote_cache.username, remote_cache.password
    )
    assert remote_cache.endpoint == address(pair.a.listening.endpoints["local"])
    assert client.set("greeting", "hello", noreply=False) is True
    assert client.get("greeting") == b"hello"
    assert client.get_many(["greeting", "nope"]) == {"greeting": b"hello"}
    assert client.incr("n", 1) is None
    client.set("n", "41")
    assert client.incr("n", 1) == 42
    # The items live in B's store; A has no engine for local-b at all.
    assert items_on(pair.b, remote_cache) == 2
    assert items_on(pair.a, remote_cache) is None
    assert live_on_b(pair, remote_cache) == 1
    assert relays_on_a(pair, remote_cache) == 1
    # B's own endpoint serves the same cache, directly.
    direct = AuthenticatingClient(
        on_b(pair, remote_cache), remote_cache.username, remote_cache.password
    )
    assert direct.get("greeting") == b"hello"
    direct.close()
    client.close()


def test_a_local_cache_is_served_here_and_not_relayed(pair: Pair) -> None:
    cache = pair.local
    client = AuthenticatingClient(cache.endpoint, cache.username, cache.password)
    assert client.set("here", "yes", noreply=False) is True
    assert items_on(pair.a, cache) == 1
    assert relays_on_a(pair, cache) == 0
    client.close()


def test_a_proxy_port_never_relays(pair: Pair, remote_cache: CacheHandle) -> None:
    proxy_of_a = address(next(iter(pair.a.listening.proxies.values())))
    wire = Wire(proxy_of_a)
    secret = remote_cache.password.encode()
    wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret))
    assert wire.read_to_close().startswith(b"CLIENT_ERROR this cache is not on this proxy")


def test_bmemcached_sasl_through_the_relay(pair: Pair, remote_cache: CacheHandle) -> None:
    client = bmemcached.Client(
        [remote_cache.info["servers"]],
        remote_cache.username,
        remote_cache.password,
        socket_timeout=5,
    )
    values = {"text": "héllo", "raw": b"\x00\xffbytes", "object": {"a": [1, 2]}}
    for key, value in values.items():
        assert client.set(key, value) is True
    for key, value in values.items():
        assert client.get(key) == value
    assert client.get_multi(list(values)) == values
    assert items_on(pair.b, remote_cache) == 3
    assert live_on_b(pair, remote_cache) == 1
    client.disconnect_all()


def test_binary_requests_sent_with_the_sasl_auth_go_along(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    """What a client pipelines behind its authentication, in the same packet, reaches the
    remote after it: the codec hands over every byte it has not answered."""
    credentials = f"\0{remote_cache.username}\0{remote_cache.password}".encode()
    client = Binary(remote_cache.endpoint)
    batch = packet(SASL_AUTH, b"PLAIN", value=credentials, opaque=1)
    batch += packet(SET, b"k", store_extras(), b"v" * 100, opaque=2)
    batch += packet(GET, b"k", opaque=3)
    batch += packet(NOOP, opaque=4)
    client.send_raw(batch)
    replies = [client.read() for _ in range(4)]
    assert [(r.opaque, r.status) for r in replies] == [(1, OK), (2, OK), (3, OK), (4, OK)]
    assert replies[0].value == b"Authenticated"
    assert replies[2].value == b"v" * 100
    client.sock.close()


def test_pipelined_ascii_sent_with_the_auth_and_after(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    secret = remote_cache.password.encode()
    auth = b"set %s 0 0 %d\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret)
    sets = b"".join(b"set k%d 0 0 %d\r\nv%d\r\n" % (i, len(b"v%d" % i), i) for i in range(300))
    wire = Wire(remote_cache.endpoint)
    wire.send(auth + sets)  # one write: the auth and 300 sets behind it
    assert wire.read_exactly(8 * 301) == b"STORED\r\n" * 301
    gets = b"".join(b"get k%d\r\n" % i for i in range(300))
    wire.send(gets + b"get " + b" ".join(b"k%d" % i for i in range(300)) + b"\r\n")
    for i in range(300):
        value = b"v%d" % i
        assert wire.read_until(b"END\r\n") == b"VALUE k%d 0 %d\r\n%s\r\nEND\r\n" % (
            i,
            len(value),
            value,
        )
    multi = wire.read_until(b"END\r\n")
    assert multi.count(b"VALUE ") == 300
    wire.close()


def test_meta_commands_through_the_relay(pair: Pair, remote_cache: CacheHandle) -> None:
    wire = Wire.authenticated(remote_cache)
    assert wire.ask(b"ms k 5 F7 T0\r\nhello\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k s v f t k Oop\r\n") == b"VA 5 s5 f7 t-1 kk Oop\r\nhello\r\n"
    assert wire.ask(b"mg nope k O9\r\n") == b"EN knope O9\r\n"
    assert items_on(pair.b, remote_cache) == 1
    wire.close()


def test_one_megabyte_values_both_ways(pair: Pair, remote_cache: CacheHandle) -> None:
    value_size = MAX_ITEM_SIZE - 1024  # the largest a cache takes, with room for the key
    client = AuthenticatingClient(
        remote_cache.endpoint, remote_cache.username, remote_cache.password
    )
    values = {f"big{i}": bytes([i]) * value_size for i in range(8)}
    for key, value in values.items():
        assert client.set(key, value, noreply=False) is True
    assert client.get_many(list(values)) == values
    assert client.get("big3") == values["big3"]
    client.close()


def test_a_client_that_does_not_read_is_bounded_and_then_gets_everything(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    """40 MB of replies to a client that reads nothing: the relay holds at most its buffer
    (the remote stops being read), and once the client reads, every byte arrives in order."""
    value = b"x" * 1_000_000
    setter = AuthenticatingClient(
        remote_cache.endpoint, remote_cache.username, remote_cache.password
    )
    assert setter.set("big", value, noreply=False) is True
    setter.close()
    wire = Wire(remote_cache.endpoint, timeout=10)
    secret = remote_cache.password.encode()
    wire.send(
        b"set %s 0 0 %d noreply\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret)
    )
    wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    wire.send(b"get big\r\n" * 40)
    dataplane = pair.a.service.dataplane

    def buffered() -> int:
        relays = dataplane.relays.get(remote_cache.username, set())
        return sum(r.client.get_write_buffer_size() for r in relays)

    wait_for(lambda: pair.a.call(buffered) > relay.BUFFER_HIGH // 2)
    time.sleep(0.5)  # whatever B still sends, A must stop taking it
    held = pair.a.call(buffered)
    assert held <= relay.BUFFER_HIGH + 256 * 1024, held
    reply = b"VALUE big 0 1000000\r\n" + value + b"\r\nEND\r\n"
    for _ in range(40):
        assert wire.read_exactly(len(reply)) == reply
    wire.close()


def test_tls_endpoint_relays_too(pair: Pair, remote_cache: CacheHandle) -> None:
    context = ssl.create_default_context()
    pair.ca.configure_trust(context)
    tls_address = address(remote_cache.info["tls_servers"])
    assert tls_address == address(pair.a.listening.tls_endpoints["local"])
    client = AuthenticatingClient(tls_address, remote_cache.username, remote_cache.password)
    client.tls_context = context
    assert client.set("secret", "kept", noreply=False) is True
    assert client.get("secret") == b"kept"
    assert items_on(pair.b, remote_cache) == 1
    binary = bmemcached.Client(
        [remote_cache.info["tls_servers"]],
        remote_cache.username,
        remote_cache.password,
        tls_context=context,
        socket_timeout=5,
    )
    assert binary.get("secret") == "kept"  # flags 0: bmemcached reads text
    binary.disconnect_all()
    client.close()


# -- closing -----------------------------------------------------------------------------------
def test_the_remote_closing_closes_the_client(pair: Pair, remote_cache: CacheHandle) -> None:
    wire = Wire.authenticated(remote_cache)
    wait_for(lambda: live_on_b(pair, remote_cache) == 1)
    wire.send(b"quit\r\n")  # B closes its side; A closes the client's
    assert wire.read_to_close() == b""
    wait_for(lambda: relays_on_a(pair, remote_cache) == 0)


def test_the_client_closing_closes_the_remote(pair: Pair, remote_cache: CacheHandle) -> None:
    wires = [Wire.authenticated(remote_cache) for _ in range(3)]
    wait_for(lambda: live_on_b(pair, remote_cache) == 3)
    assert relays_on_a(pair, remote_cache) == 3
    wires[0].close()
    wait_for(lambda: live_on_b(pair, remote_cache) == 2)
    wires[1].sock.shutdown(socket.SHUT_WR)  # a half-close: B answers what it has, then closes
    assert wires[1].read_to_close() == b""
    wait_for(lambda: live_on_b(pair, remote_cache) == 1)
    assert relays_on_a(pair, remote_cache) == 1
    wires[2].close()
    wait_for(lambda: live_on_b(pair, remote_cache) == 0 and relays_on_a(pair, remote_cache) == 0)


def test_a_half_closing_client_still_gets_its_answers(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    wire = Wire.authenticated(remote_cache)
    wire.send(b"set k 0 0 1\r\nv\r\nget k\r\n")
    wire.sock.shutdown(socket.SHUT_WR)
    assert wire.read_to_close() == b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n"


# -- failures ----------------------------------------------------------------------------------
def test_remote_down_at_connect_gets_the_down_cluster_answer(
    route: Pair, remote_cache: CacheHandle
) -> None:
    closed = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    route.set_route(closed)
    wire = Wire(remote_cache.endpoint)
    secret = remote_cache.password.encode()
    wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret))
    assert wire.read_to_close() == UNAVAILABLE
    binary = Binary(remote_cache.endpoint)
    reply = binary.sasl(remote_cache.username, remote_cache.password)
    assert reply.status == AUTH_ERROR
    assert reply.value == b"Auth failure: no proxy of this cache's cluster is available"
    assert binary.read_to_close() == b""
    assert relays_on_a(route, remote_cache) == 0


def test_an_owner_that_never_answers_the_connect_times_out_like_a_down_cluster(
    route: Pair, remote_cache: CacheHandle
) -> None:
    """A listener whose accept queue is full drops further SYNs: the connect hangs, as to
    a host that vanished. The client gets the down-cluster answer after the timeout."""
    with socket.socket() as black_hole, contextlib.ExitStack() as stack:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(0)
        for _ in range(3):  # fill the accept queue; nothing ever accepts
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(black_hole.getsockname())
        time.sleep(0.1)
        route.set_route([f"127.0.0.1:{black_hole.getsockname()[1]}"])
        wire = Wire(remote_cache.endpoint, timeout=relay.CONNECT_TIMEOUT + 5)
        secret = remote_cache.password.encode()
        started = time.monotonic()
        auth = b"set %s 0 0 %d\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret)
        wire.send(auth)
        assert wire.read_to_close(timeout=relay.CONNECT_TIMEOUT + 5) == UNAVAILABLE
        waited = time.monotonic() - started
    assert relay.CONNECT_TIMEOUT - 0.2 < waited < relay.CONNECT_TIMEOUT + 2


def test_one_unreachable_owner_proxy_is_skipped(route: Pair, remote_cache: CacheHandle) -> None:
    route.set_route([f"127.0.0.1:{free_port()}", *route.remote_proxies()])
    for _ in range(4):  # whichever address the relay tries first
        client = AuthenticatingClient(
            remote_cache.endpoint, remote_cache.username, remote_cache.password
        )
        assert client.set("k", "v", noreply=False) is True
        client.close()


def test_a_cluster_no_process_runs_is_answered_like_a_down_one(
    route: Pair, remote_cache: CacheHandle
) -> None:
    route.set_route(None)
    wire = Wire(remote_cache.endpoint)
    secret = remote_cache.password.encode()
    wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (remote_cache.username.encode(), len(secret), secret))
    assert wire.read_to_close() == UNAVAILABLE


def test_a_revocation_heard_by_the_relaying_process_closes_its_relays(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    """A deletes a credential (B has not heard): A closes the relayed connection, both
    sides, and refuses the credential itself from then on."""
    second = remote_cache.info["credentials"][1]
    user, password = second["username"], second["password"]
    live = Wire.authenticated(remote_cache, user, password)
    wait_for(lambda: pair.b.call(pair.b.service.dataplane.sessions_of, user) == 1)
    with httpx.Client(base_url=remote_cache.dashboard_api, timeout=10) as api:
        assert api.delete(f"/credentials/{user}").status_code == 200
    assert live.read_to_close() == b""
    wait_for(lambda: pair.b.call(pair.b.service.dataplane.sessions_of, user) == 0)
    assert pair.a.call(lambda: user not in pair.a.service.dataplane.relays)
    wire = Wire(remote_cache.endpoint)
    wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(password), password.encode()))
    assert wire.read_to_close() == FAILURE


def test_a_credential_revoked_on_the_owner_is_refused_there(
    pair: Pair, remote_cache: CacheHandle
) -> None:
    """B deleted the credential: B closes the live relayed connection, A hears of it
    through PostgreSQL within a second, and a new login through A is refused."""
    second = remote_cache.info["credentials"][1]
    user, password = second["username"], second["password"]
    live = Wire.authenticated(remote_cache, user, password)
    wait_for(lambda: pair.b.call(pair.b.service.dataplane.sessions_of, user) == 1)
    b_dashboard = remote_cache.dashboard_api.replace(pair.a.api_url, pair.b.api_url)
    with httpx.Client(base_url=b_dashboard, timeout=10) as api:
        deleted = api.delete(f"/credentials/{user}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["closed_connections"] == 1
    assert live.read_to_close() == b""
    wait_for(lambda: pair.a.call(lambda: user not in pair.a.service.dataplane.relays))
    wait_for(lambda: pair.a.call(lambda: user not in pair.a.service.dataplane.credentials), 1.0)
    wire = Wire(remote_cache.endpoint)
    wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(password), password.encode()))
    assert wire.read_to_close() == FAILURE
    pymemcache = Client(remote_cache.endpoint, connect_timeout=5, timeout=5)
    with pytest.raises(Exception, match="authentication failure"):
        pymemcache.set(user, password, noreply=False)
    pymemcache.close()
