"""python-binary-memcached (MemCachier's recommended Python client) against the service."""

from __future__ import annotations

import bmemcached
import pytest
from bmemcached.exceptions import MemcachedException

from tests.backend.test_binary import add_credential
from tests.conftest import CacheHandle, RunningService

AUTH_ERROR = 0x20


def client_for(
    cache: CacheHandle, username: str | None = None, password: str | None = None
) -> bmemcached.Client:
    host, port = cache.endpoint
    return bmemcached.Client(
        [f"{host}:{port}"],
        username or cache.username,
        password or cache.password,
        socket_timeout=5,
    )


@pytest.fixture
def mc(cache: CacheHandle):
    client = client_for(cache)
    yield client
    client.disconnect_all()


def test_set_get_and_delete_round_trip_values_of_each_type(mc: bmemcached.Client) -> None:
    values = {"text": "héllo", "raw": b"\x00\xffbytes", "number": 42, "object": {"a": [1, 2]}}
    for key, value in values.items():
        assert mc.set(key, value) is True
    for key, value in values.items():
        assert mc.get(key) == value
    assert mc.delete("text") is True
    assert mc.get("text") is None
    assert mc.get("never-set") is None


def test_large_compressible_value_round_trips(mc: bmemcached.Client) -> None:
    value = "abc" * 100_000  # bmemcached zlib-compresses it and sets the flag
    assert mc.set("big", value) is True
    assert mc.get("big") == value


def test_add_and_replace_report_false_when_refused(mc: bmemcached.Client) -> None:
    assert mc.add("k", "first") is True
    assert mc.add("k", "second") is False
    assert mc.replace("missing", "x") is False
    assert mc.replace("k", "third") is True
    assert mc.get("k") == "third"


def test_cas_swaps_only_with_the_current_token(mc: bmemcached.Client) -> None:
    mc.set("k", "one")
    value, token = mc.gets("k")
    assert value == "one" and token
    assert mc.cas("k", "two", token) is True
    assert mc.cas("k", "three", token) is False
    assert mc.get("k") == "two"


def test_incr_and_decr_create_from_the_default_and_floor_at_zero(mc: bmemcached.Client) -> None:
    assert mc.incr("n", 5) == 0  # created with the default (initial) 0, as memcached does
    assert mc.incr("n", 5) == 5
    assert mc.decr("n", 2) == 3
    assert mc.decr("n", 20) == 0
    assert mc.get("n") == "0"  # created server-side as decimal text with flags 0 (str)
    mc.set("m", 10)
    assert mc.incr("m", 1) == 11


def test_get_multi_returns_only_the_hits(mc: bmemcached.Client) -> None:
    mc.set("a", "1")
    mc.set("c", b"3")
    assert mc.get_multi(["a", "b", "c", "d"]) == {"a": "1", "c": b"3"}
    assert mc.get_multi(["x", "y"]) == {}


def test_set_multi_stores_everything_and_reports_no_failures(mc: bmemcached.Client) -> None:
    assert mc.set_multi({"a": 1, "b": b"two", "c": "three"}) == []
    assert mc.get_multi(["a", "b", "c"]) == {"a": 1, "b": b"two", "c": "three"}


def test_delete_multi_deletes_and_reports_misses(mc: bmemcached.Client) -> None:
    mc.set_multi({"a": 1, "b": 2, "c": 3})
    assert mc.delete_multi(["a", "b"]) is True
    assert mc.get_multi(["a", "b", "c"]) == {"c": 3}
    assert mc.delete_multi(["c", "missing"]) is False  # any miss makes it False
    assert mc.get("c") is None


def test_flush_all_empties_the_cache(mc: bmemcached.Client) -> None:
    mc.set_multi({"a": 1, "b": 2})
    assert mc.flush_all() is True
    assert mc.get_multi(["a", "b"]) == {}


def test_stats_are_the_caches_own(cache: CacheHandle, mc: bmemcached.Client) -> None:
    mc.set("a", "1")
    mc.get("a")
    mc.get("missing")
    ((server, stats),) = mc.stats().items()
    assert server == "{}:{}".format(*cache.endpoint)
    assert stats["version"] == b"1.6.38"
    assert (stats["curr_items"], stats["get_hits"], stats["get_misses"]) == (b"1", b"1", b"1")


def test_wrong_password_raises_a_generic_memcached_exception_with_code_0x20(
    cache: CacheHandle,
) -> None:
    client = client_for(cache, password="not-the-password")
    with pytest.raises(MemcachedException) as raised:
        client.get("k")
    # bmemcached only maps the old-wiki 0x08 to InvalidCredentials; memcached sends 0x20.
    assert type(raised.value) is MemcachedException
    assert raised.value.code == AUTH_ERROR
    assert "authentication failure" in raised.value.message


def test_read_only_credential_reads_but_every_write_raises(cache: CacheHandle) -> None:
    owner = client_for(cache)
    owner.set_multi({"k": "value", "n": 5})
    credential = add_credential(cache, write=False)
    reader = client_for(cache, credential["username"], credential["password"])
    assert reader.get("k") == "value"
    assert reader.get_multi(["k", "n", "x"]) == {"k": "value", "n": 5}
    for write in (
        lambda: reader.set("k", "changed"),
        lambda: reader.add("new", "x"),
        lambda: reader.replace("k", "changed"),
        lambda: reader.delete("k"),
        lambda: reader.incr("n", 1),
        lambda: reader.decr("n", 1),
    ):
        with pytest.raises(MemcachedException, match="lacks the 'write' capability") as raised:
            write()
        assert raised.value.code == AUTH_ERROR
    # The batch calls swallow per-key errors: set_multi lists the key, delete_multi is False.
    assert sorted(reader.set_multi({"k": "changed", "new": "x"})) == ["k", "new"]
    assert reader.delete_multi(["k"]) is False
    assert owner.get_multi(["k", "n", "new"]) == {"k": "value", "n": 5}


def test_flush_all_without_the_flush_capability_raises_and_keeps_items(
    cache: CacheHandle,
) -> None:
    owner = client_for(cache)
    owner.set("k", "value")
    credential = add_credential(cache, flush=False)
    limited = client_for(cache, credential["username"], credential["password"])
    with pytest.raises(MemcachedException, match="lacks the 'flush' capability") as raised:
        limited.flush_all()
    assert raised.value.code == AUTH_ERROR
    assert limited.set("other", "x") is True  # writing is still allowed
    assert owner.get("k") == "value"


def test_two_caches_are_isolated(service: RunningService) -> None:
    first = client_for(CacheHandle(service.create_cache("bmemcached-one")))
    second = client_for(CacheHandle(service.create_cache("bmemcached-two")))
    first.set("shared-name", "one")
    second.set("shared-name", "two")
    assert first.get("shared-name") == "one"
    assert second.get("shared-name") == "two"
    assert first.flush_all() is True
    assert first.get("shared-name") is None
    assert second.get("shared-name") == "two"


def test_a_refused_write_leaves_the_connection_usable_for_reads(cache: CacheHandle) -> None:
    # Unlike libmemcached (tests/backend/test_pylibmc.py), bmemcached does not take 0x20
    # for a lost login: it raises, keeps the connection and the next read just works.
    owner = client_for(cache)
    owner.set("k", "value")
    credential = add_credential(cache, write=False)
    reader = client_for(cache, credential["username"], credential["password"])
    assert reader.get("k") == "value"
    with pytest.raises(MemcachedException, match="lacks the 'write' capability"):
        reader.set("k", "changed")
    assert reader.get("k") == "value"
    assert reader.get_multi(["k"]) == {"k": "value"}
