"""The README's client recipes, run as written against the real service.

pymemcache logs in through ``backend.clients.authenticating_socket_module`` in each way it
is used: a plain ``Client``, over TLS, as ``HashClient``'s clients and as Django's
``PyMemcacheCache``. pylibmc logs in with SASL through its wheel's own libsasl2, which
needs ``SASL_PATH`` on Debian (see the README).
"""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from backend.clients import AuthenticationError, authenticating_socket_module
from tests.backend.test_binary import add_credential
from tests.backend.test_tls import ca, client_context, tls_cache, tls_service  # noqa: F401
from tests.conftest import CacheHandle, address

TIMEOUTS = {"connect_timeout": 5, "timeout": 5}


class IPv4Socket:
    """The socket module, resolving names to IPv4 only: the service listens on 127.0.0.1,
    and where /etc/hosts also maps localhost to ::1, pymemcache would try that first."""

    def __getattr__(self, name: str) -> object:
        return getattr(socket, name)

    @staticmethod
    def getaddrinfo(host: str, port: int, family: int = 0, *args: int) -> list:
        return socket.getaddrinfo(host, port, socket.AF_INET, *args)


def login_for(cache: CacheHandle, password: str | None = None, **kwargs) -> object:
    return authenticating_socket_module(cache.username, password or cache.password, **kwargs)


# --- pymemcache.Client -------------------------------------------------------------------


def test_client_logs_in_and_takes_its_usual_timeouts(cache: CacheHandle) -> None:
    client = Client(cache.endpoint, socket_module=login_for(cache), **TIMEOUTS)
    assert client.set("greeting", "hello", noreply=False) is True
    assert client.set("quiet", "noreply") is True  # pymemcache's default: noreply
    assert client.get_many(["greeting", "quiet", "nope"]) == {
        "greeting": b"hello",
        "quiet": b"noreply",
    }
    assert client.sock.gettimeout() == 5
    client.close()


def test_client_logs_in_again_on_the_connection_it_opens_after_an_error(
    cache: CacheHandle,
) -> None:
    client = Client(cache.endpoint, socket_module=login_for(cache), **TIMEOUTS)
    client.set("k", "v", noreply=False)
    client.sock.shutdown(socket.SHUT_RDWR)  # the connection dies under the client
    with pytest.raises(OSError):
        client.get("k")
    assert client.sock is None  # pymemcache dropped it and will connect afresh
    assert client.get("k") == b"v"  # a new connection, logged in: no auth error
    client.close()


def test_wrong_password_is_an_error_on_every_command_noreply_writes_included(
    cache: CacheHandle,
) -> None:
    client = Client(cache.endpoint, socket_module=login_for(cache, "wrong"), **TIMEOUTS)
    for command in (
        lambda: client.get("k"),
        lambda: client.set("k", "v"),  # noreply: would be lost without a word
        lambda: client.set("k", "v", noreply=False),
        lambda: client.delete("k"),
    ):
        with pytest.raises(AuthenticationError, match="authentication failure"):
            command()
    owner = Client(cache.endpoint, socket_module=login_for(cache), **TIMEOUTS)
    assert owner.get("k") is None


# --- TLS --------------------------------------------------------------------------------


def test_client_over_tls_logs_in_over_the_tls_connection(
    tls_cache: CacheHandle,  # noqa: F811
    ca: trustme.CA,  # noqa: F811
) -> None:
    login = login_for(tls_cache, tls_context=client_context(ca), base=IPv4Socket())
    host, port = address(tls_cache.info["tls_servers"])
    client = Client(("localhost", port), socket_module=login, **TIMEOUTS)
    assert client.set("secret", "kept", noreply=False) is True
    assert client.get("secret") == b"kept"
    assert isinstance(client.sock._sock, ssl.SSLSocket)
    assert client.sock._sock.server_hostname == "localhost"  # checked against the name
    client.close()


def test_tls_context_given_to_the_client_instead_is_a_clear_error(
    tls_cache: CacheHandle,  # noqa: F811
    ca: trustme.CA,  # noqa: F811
) -> None:
    client = Client(
        address(tls_cache.info["tls_servers"]),
        socket_module=login_for(tls_cache),
        tls_context=client_context(ca),
        **TIMEOUTS,
    )
    with pytest.raises(TypeError, match="pass tls_context to authenticating_socket_module"):
        client.get("k")


def test_tls_with_an_untrusted_certificate_fails_before_the_password_is_sent(
    tls_cache: CacheHandle,  # noqa: F811
) -> None:
    login = login_for(tls_cache, tls_context=ssl.create_default_context())
    client = Client(address(tls_cache.info["tls_servers"]), socket_module=login, **TIMEOUTS)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.get("k")


# --- HashClient ---------------------------------------------------------------------------


def test_hash_client_logs_in_every_server(cache: CacheHandle) -> None:
    # One endpoint under two names is two servers to HashClient, each with its own socket.
    host, port = cache.endpoint
    servers = [f"{host}:{port}", f"localhost:{port}"]
    client = HashClient(servers, socket_module=login_for(cache, base=IPv4Socket()), **TIMEOUTS)
    keys = [f"key-{n}" for n in range(40)]
    client.set_many({key: key.upper() for key in keys}, noreply=False)
    assert client.get_many(keys) == {key: key.upper().encode() for key in keys}
    assert len({c.server for c in client.clients.values() if c.sock is not None}) == 2
    client.close()


def test_hash_client_reports_a_wrong_password_instead_of_dropping_the_server(
    cache: CacheHandle,
) -> None:
    client = HashClient(
        [cache.info["servers"]],
        socket_module=login_for(cache, "wrong"),
        retry_attempts=1,
        **TIMEOUTS,
    )
    for _ in range(3):  # an OSError would have it retry, then drop the server as dead
        with pytest.raises(AuthenticationError):
            client.get("k")
    assert len(client.clients) == 1


# --- Django -------------------------------------------------------------------------------


def django_cache(location: str, options: dict):
    """Django's PyMemcacheCache as its CACHES setting would build it."""
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    from django.core.cache.backends.memcached import PyMemcacheCache

    return PyMemcacheCache(location, {"OPTIONS": options, "TIMEOUT": 300})


def test_django_pymemcache_cache_with_the_socket_module(cache: CacheHandle) -> None:
    django = django_cache(cache.info["servers"], {"socket_module": login_for(cache)})
    assert django.set("profile", {"name": "Ada", "langs": ["en"]}) is None
    assert django.get("profile") == {"name": "Ada", "langs": ["en"]}
    assert django.add("profile", "other") is False
    assert django.add("hits", 0) is True
    assert django.incr("hits") == 1
    assert django.delete("profile") is True
    assert django.get("profile", "default") == "default"
    django.close()


def test_django_with_a_read_only_credential_raises_on_writes(cache: CacheHandle) -> None:
    credential = add_credential(cache, write=False)
    login = authenticating_socket_module(credential["username"], credential["password"])
    django = django_cache(cache.info["servers"], {"socket_module": login})
    assert django.get("anything") is None
    with pytest.raises(Exception, match="write not allowed"):
        django.set("k", "v")
