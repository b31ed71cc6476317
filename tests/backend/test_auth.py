"""ASCII authentication: the first command is `set <user> ... ` with the password as data."""

from __future__ import annotations

import time

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError

from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, address, make_config

FAILURE = b"CLIENT_ERROR authentication failure\r\n"


def auth_line(user: str, password: str, extra: bytes = b"") -> bytes:
    secret = password.encode()
    return b"set %s 0 0 %d%s\r\n%s\r\n" % (user.encode(), len(secret), extra, secret)


class AuthenticatingClient(Client):
    """pymemcache that authenticates every connection it opens, as MemCachier's django
    backend does: pymemcache reconnects after any error, and a new socket must log in."""

    def __init__(self, server: tuple[str, int], username: str, password: str) -> None:
        super().__init__(server, connect_timeout=5, timeout=5)
        secret = password.encode()
        self._auth = b"set %s 0 0 %d noreply\r\n%s\r\n" % (username.encode(), len(secret), secret)

    def _connect(self) -> None:
        super()._connect()
        self.sock.sendall(self._auth)


def pymemcache_client(
    cache: CacheHandle, username: str | None = None, password: str | None = None
) -> Client:
    return AuthenticatingClient(
        cache.endpoint, username or cache.username, password or cache.password
    )


def test_pymemcache_authenticates_with_noreply_set_and_stays_in_step(cache: CacheHandle) -> None:
    client = Client(cache.endpoint, connect_timeout=5, timeout=5)
    client.set(cache.username, cache.password)  # the first command: a set with noreply
    assert client.get("missing") is None
    assert client.set("greeting", "hello", noreply=False) is True
    assert client.get("greeting") == b"hello"
    assert client.get_many(["greeting", "nope"]) == {"greeting": b"hello"}
    assert client.incr("n", 1) is None
    client.set("n", "41")
    assert client.incr("n", 1) == 42
    assert client.gets("greeting")[0] == b"hello"
    assert client.delete("greeting", noreply=False) is True
    client.close()


def test_authentication_stores_nothing(cache: CacheHandle) -> None:
    wire = Wire.authenticated(cache)
    assert wire.ask(b"get " + cache.username.encode() + b"\r\n") == b"END\r\n"


def test_auth_set_accepts_any_flags_and_exptime(cache: CacheHandle) -> None:
    wire = Wire(cache.endpoint)
    secret = cache.password.encode()
    wire.send(b"set %s 1 300 %d\r\n%s\r\n" % (cache.username.encode(), len(secret), secret))
    assert wire.read_exactly(8) == b"STORED\r\n"


def test_auth_set_with_noreply_answers_nothing(cache: CacheHandle) -> None:
    wire = Wire(cache.endpoint)
    wire.send(auth_line(cache.username, cache.password, b" noreply"))
    assert wire.ask(b"version\r\n") == b"VERSION 1.6.38\r\n"


def test_wrong_password_is_refused_and_closed(cache: CacheHandle) -> None:
    wire = Wire(cache.endpoint)
    wire.send(auth_line(cache.username, "not-the-password"))
    assert wire.read_to_close() == FAILURE


def test_unknown_username_gets_the_same_answer(cache: CacheHandle) -> None:
    wire = Wire(cache.endpoint)
    wire.send(auth_line("NOSUCHUSER", cache.password))
    assert wire.read_to_close() == FAILURE


@pytest.mark.parametrize("first", [b"get k\r\n", b"version\r\n", b"stats\r\n", b"set k 0 0\r\n"])
def test_any_other_first_command_is_refused_and_closed(cache: CacheHandle, first: bytes) -> None:
    wire = Wire(cache.endpoint)
    wire.send(first)
    assert wire.read_to_close().startswith(b"CLIENT_ERROR unauthenticated")


def test_pymemcache_with_wrong_password_fails_clearly(cache: CacheHandle) -> None:
    client = Client(cache.endpoint, connect_timeout=5, timeout=5)
    client.set(cache.username, "wrong")  # noreply: the error arrives with the next reply
    with pytest.raises(MemcacheClientError, match="authentication failure"):
        client.get("k")


def test_two_caches_never_see_each_others_keys(service: RunningService) -> None:
    first = CacheHandle(service.create_cache("tenant-one"))
    second = CacheHandle(service.create_cache("tenant-two"))
    a, b = pymemcache_client(first), pymemcache_client(second)
    a.set("shared-name", "one", noreply=False)
    b.set("shared-name", "two", noreply=False)
    assert a.get("shared-name") == b"one"
    assert b.get("shared-name") == b"two"
    a.flush_all(noreply=False)
    assert a.get("shared-name") is None
    assert b.get("shared-name") == b"two"


def test_direct_proxy_port_serves_only_caches_of_its_cluster(
    service: RunningService, cache: CacheHandle
) -> None:
    cluster = cache.info["cluster"]
    own = [a for h, a in service.listening.proxies.items() if f".{cluster}." in h]
    other = [a for h, a in service.listening.proxies.items() if f".{cluster}." not in h]
    wire = Wire(address(own[0]))
    wire.send(auth_line(cache.username, cache.password))
    assert wire.read_exactly(8) == b"STORED\r\n"
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    via_endpoint = Wire.authenticated(cache)
    assert via_endpoint.ask(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    stranger = Wire(address(other[0]))
    stranger.send(auth_line(cache.username, cache.password))
    assert stranger.read_to_close().startswith(b"CLIENT_ERROR this cache is not on this proxy")


def test_endpoint_spreads_sessions_over_the_clusters_proxies(
    service: RunningService, cache: CacheHandle
) -> None:
    wires = [Wire.authenticated(cache) for _ in range(4)]
    ports = set()
    for wire in wires:
        settings = wire.ask(b"stats settings\r\n")
        ports.add(next(line for line in settings.split(b"\r\n") if b"tcpport" in line))
    assert len(ports) == 2  # the default topology has two proxies per cluster


@pytest.fixture
def strict_service(tmp_path) -> RunningService:
    running = RunningService(
        make_config(tmp_path, auth_timeout=0.5, auth_failure_limit=3, auth_failure_window=30)
    ).start()
    yield running
    running.stop()


def test_connection_that_does_not_authenticate_in_time_is_closed(
    strict_service: RunningService,
) -> None:
    cache = CacheHandle(strict_service.create_cache("slow-client"))
    wire = Wire(cache.endpoint)
    started = time.monotonic()
    assert wire.read_to_close() == b"CLIENT_ERROR authentication timeout\r\n"
    assert 0.4 < time.monotonic() - started < 3


def test_repeated_failures_from_one_address_are_refused_for_a_while(
    strict_service: RunningService,
) -> None:
    cache = CacheHandle(strict_service.create_cache("target"))
    for _ in range(3):
        wire = Wire(cache.endpoint)
        wire.send(auth_line(cache.username, "guess"))
        assert wire.read_to_close() == FAILURE
    wire = Wire(cache.endpoint)
    wire.send(auth_line(cache.username, cache.password))  # even the right password waits
    assert wire.read_to_close().startswith(b"CLIENT_ERROR too many failed authentications")
