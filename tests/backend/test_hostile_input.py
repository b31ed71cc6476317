"""What a hostile or unlucky client can make the data plane do: bounded memory before
authentication, memory freed when a connection goes, no input that kills a handler."""

from __future__ import annotations

import gc
import logging
import time
import weakref

import pytest

from backend.protocol import commands
from tests.backend.test_capabilities import WRITE_DENIED, add_credential
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService

UNAUTHENTICATED = (
    b"CLIENT_ERROR unauthenticated: the first command must be "
    b"'set <username> <flags> <exptime> <bytes>' with the password as data\r\n"
)


@pytest.mark.parametrize("start", [b"get ", b"gets ", b"set ", b"mg ", b"x"])
def test_before_authentication_a_partial_line_may_not_grow_past_the_auth_line(
    cache: CacheHandle, start: bytes
) -> None:
    wire = Wire(cache.endpoint)
    wire.send(start + b"a" * 600)  # no newline: it would wait for one up to 1 MiB before
    assert wire.read_to_close() == b"CLIENT_ERROR line too long\r\n"


def test_the_auth_set_itself_fits_the_pre_auth_bound(cache: CacheHandle) -> None:
    wire = Wire(cache.endpoint)
    line = b"set %s 0 0 %d noreply\r\n" % (cache.username.encode(), len(cache.password))
    for byte in line + cache.password.encode() + b"\r\nmn\r\n":  # one byte at a time
        wire.send(bytes([byte]))
    assert wire.read_until(b"MN\r\n") == b"MN\r\n"


@pytest.mark.parametrize("blank", [b"\r\n", b"\n", b"   \r\n", b"\r\n\r\n"])
def test_a_blank_first_line_is_refused_and_closed(cache: CacheHandle, blank: bytes) -> None:
    wire = Wire(cache.endpoint)
    wire.send(blank)
    assert wire.read_to_close() == UNAUTHENTICATED


def test_a_closed_connection_is_freed_without_a_full_collection(
    service: RunningService, cache: CacheHandle
) -> None:
    def codecs_of(ports: set[int]) -> list[weakref.ref]:
        return [
            weakref.ref(t.get_protocol().codec)
            for t in service.service.dataplane.transports
            if t.get_extra_info("peername")[1] in ports
        ]

    gc.collect()
    gc.disable()  # as if cli._tune_gc's thresholds never came round
    try:
        authenticated = Wire.authenticated(cache)
        authenticated.send(b"mg k v\r\n")
        assert authenticated.read_until(b"\r\n") == b"EN\r\n"
        authenticated.send(b"set k 0 0 100\r\n" + b"x" * 50)  # a value still arriving
        waiting = Wire(cache.endpoint)
        waiting.send(b"set " + cache.username.encode())  # half an auth line
        time.sleep(0.2)
        ports = {w.sock.getsockname()[1] for w in (authenticated, waiting)}
        refs = service.call(codecs_of, ports)
        assert len(refs) == 2 and all(ref() is not None for ref in refs)
        authenticated.sock.close()
        waiting.sock.close()
        deadline = time.monotonic() + 5
        while any(ref() is not None for ref in refs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [ref for ref in refs if ref() is not None] == []
    finally:
        gc.enable()


def test_a_touch_into_the_past_on_mg_answers_and_then_the_item_is_gone(
    cache: CacheHandle,
) -> None:
    wire = Wire.authenticated(cache)
    wire.send(b"set a 0 0 1\r\na\r\nset t 0 0 1\r\nx\r\nmg t T-1 v\r\nmg t v\r\nmn\r\n")
    assert wire.read_until(b"MN\r\n") == b"STORED\r\nSTORED\r\nVA 1\r\nx\r\nEN\r\nMN\r\n"


def test_a_failing_command_sends_what_was_answered_then_an_error_and_logs_once(
    cache: CacheHandle, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args, **kwargs):  # a bug in one command's semantics
        raise KeyError(b"secret-key-bytes")

    monkeypatch.setattr(commands, "meta_get", broken)
    caplog.set_level(logging.ERROR, logger="backend.listeners")
    for _ in range(2):
        wire = Wire.authenticated(cache)
        wire.send(b"set s 0 0 5\r\nhello\r\nget s\r\nmg secret-key-bytes v\r\nget s\r\n")
        assert wire.read_to_close() == (
            b"STORED\r\nVALUE s 0 5\r\nhello\r\nEND\r\n"
            b"SERVER_ERROR internal error; closing the connection\r\n"
        )
    records = [r.getMessage() for r in caplog.records if r.name == "backend.listeners"]
    assert len(records) == 1, records
    assert "KeyError" in records[0] and "first command 'set'" in records[0]
    assert "secret" not in records[0] and "hello" not in records[0]


def test_a_read_only_credential_cannot_claim_the_recache_token(cache: CacheHandle) -> None:
    reader = add_credential(cache, write=False)
    writer = Wire.authenticated(cache)
    writer.send(b"ms seed 1 T30\r\nx\r\n")
    assert writer.read_until(b"\r\n") == b"HD\r\n"
    read_only = Wire.authenticated(cache, reader["username"], reader["password"])
    read_only.send(b"mg seed R5000 v\r\n")
    assert read_only.read_until(b"\r\n") == WRITE_DENIED
    writer.send(b"md seed I\r\n")  # stale: the next fetch would win the recache
    assert writer.read_until(b"\r\n") == b"HD\r\n"
    read_only = Wire.authenticated(cache, reader["username"], reader["password"])
    read_only.send(b"mg seed v\r\n")
    assert read_only.read_until(b"x\r\n") == b"VA 1 X\r\nx\r\n"  # stale, but no win
    writer.send(b"mg seed v\r\n")
    assert writer.read_until(b"x\r\n") == b"VA 1 X W\r\nx\r\n"  # the writer still wins


def test_stats_reset_needs_write_because_it_rewrites_the_owners_graphs(
    cache: CacheHandle,
) -> None:
    reader = add_credential(cache, write=False)
    writer = Wire.authenticated(cache)
    writer.send(b"get nothing\r\n")
    assert writer.read_until(b"END\r\n") == b"END\r\n"
    read_only = Wire.authenticated(cache, reader["username"], reader["password"])
    read_only.send(b"stats reset\r\n")
    assert read_only.read_until(b"\r\n") == WRITE_DENIED
    writer.send(b"stats\r\n")
    assert b"STAT cmd_get 1\r\n" in writer.read_until(b"END\r\n")
    writer.send(b"stats reset\r\nstats\r\n")
    assert writer.read_until(b"RESET\r\n") == b"RESET\r\n"
    assert b"STAT cmd_get 0\r\n" in writer.read_until(b"END\r\n")
