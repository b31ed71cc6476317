"""Per-credential capabilities `write` and `flush`, enforced on every command, live."""

from __future__ import annotations

import httpx
import pytest
from pymemcache.exceptions import MemcacheClientError

from tests.backend.test_auth import pymemcache_client
from tests.backend.wire import Wire
from tests.conftest import CacheHandle

WRITE_DENIED = (
    b"CLIENT_ERROR write not allowed: this credential is read-only "
    b"(lacks the 'write' capability)\r\n"
)
FLUSH_DENIED = (
    b"CLIENT_ERROR flush_all not allowed: this credential lacks the 'flush' capability\r\n"
)


def add_credential(cache: CacheHandle, **capabilities: bool) -> dict:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        created = api.post("/credentials")
        assert created.status_code == 201, created.text
        credential = created.json()
        if capabilities:
            patched = api.patch(f"/credentials/{credential['username']}", json=capabilities)
            assert patched.status_code == 200, patched.text
            credential = patched.json()
    return credential


def set_capabilities(cache: CacheHandle, username: str, **capabilities: bool) -> None:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        assert api.patch(f"/credentials/{username}", json=capabilities).status_code == 200


@pytest.fixture
def seeded(cache: CacheHandle) -> CacheHandle:
    wire = Wire.authenticated(cache)
    assert wire.ask(b"set k 0 0 5\r\nvalue\r\nset n 0 0 1\r\n5\r\n") == b"STORED\r\n" * 2
    wire.close()
    return cache


def read_only_wire(cache: CacheHandle) -> Wire:
    credential = add_credential(cache, write=False)
    return Wire.authenticated(cache, credential["username"], credential["password"])


MUTATIONS = [
    b"set k 0 0 1\r\nx\r\n",
    b"add new 0 0 1\r\nx\r\n",
    b"replace k 0 0 1\r\nx\r\n",
    b"append k 0 0 1\r\nx\r\n",
    b"prepend k 0 0 1\r\nx\r\n",
    b"cas k 0 0 1 1\r\nx\r\n",
    b"incr n 1\r\n",
    b"decr n 1\r\n",
    b"delete k\r\n",
    b"touch k -1\r\n",
    b"gat -1 k\r\n",
    b"gats -1 k\r\n",
    b"ms k 1\r\nx\r\n",
    b"md k\r\n",
    b"ma n\r\n",
    b"mg k T-1 v\r\n",
    b"mg fresh N30\r\n",
]


@pytest.mark.parametrize("command", MUTATIONS, ids=lambda c: c.split(b" ")[0].decode())
def test_read_only_credential_cannot_change_anything(seeded: CacheHandle, command: bytes) -> None:
    wire = read_only_wire(seeded)
    assert wire.ask(command) == WRITE_DENIED
    assert wire.ask(b"get k n new fresh\r\n") == (
        b"VALUE k 0 5\r\nvalue\r\nVALUE n 0 1\r\n5\r\nEND\r\n"
    )


def test_read_only_credential_can_still_read(seeded: CacheHandle) -> None:
    wire = read_only_wire(seeded)
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 5\r\nvalue\r\nEND\r\n"
    assert wire.ask(b"mg k v\r\n") == b"VA 5\r\nvalue\r\n"
    assert wire.ask(b"stats\r\n").endswith(b"END\r\n")


def test_denied_noreply_write_answers_and_closes_so_the_client_cannot_desync(
    seeded: CacheHandle,
) -> None:
    wire = read_only_wire(seeded)
    wire.send(b"set k 0 0 1 noreply\r\nx\r\nget k\r\n")
    assert wire.read_to_close() == WRITE_DENIED


def test_flush_needs_the_flush_capability(seeded: CacheHandle) -> None:
    credential = add_credential(seeded, flush=False)
    wire = Wire.authenticated(seeded, credential["username"], credential["password"])
    assert wire.ask(b"flush_all\r\n") == FLUSH_DENIED
    assert wire.ask(b"set other 0 0 1\r\nx\r\n") == b"STORED\r\n"  # write still allowed
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 5\r\nvalue\r\nEND\r\n"


def test_auth_set_is_never_subject_to_write(seeded: CacheHandle) -> None:
    credential = add_credential(seeded, write=False, flush=False)
    wire = Wire.authenticated(seeded, credential["username"], credential["password"])
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 5\r\nvalue\r\nEND\r\n"


def test_capability_change_reaches_a_live_connection_on_its_next_command(
    seeded: CacheHandle,
) -> None:
    credential = add_credential(seeded)
    client = pymemcache_client(seeded, credential["username"], credential["password"])
    assert client.set("live", "1", noreply=False) is True
    set_capabilities(seeded, credential["username"], write=False)
    with pytest.raises(MemcacheClientError, match="lacks the 'write' capability"):
        client.set("live", "2", noreply=False)
    assert client.get("live") == b"1"
    set_capabilities(seeded, credential["username"], write=True)
    assert client.set("live", "3", noreply=False) is True
    assert client.get("live") == b"3"
