"""Bad input gets memcached's answer, the stream stays in step, the proxy survives."""

from __future__ import annotations

import contextlib
import socket

import pytest

from tests.backend.wire import Wire
from tests.conftest import CacheHandle

BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"


@pytest.fixture
def wire(cache: CacheHandle):
    w = Wire.authenticated(cache)
    yield w
    w.close()


@pytest.mark.parametrize("line", [b"bogus\r\n", b"GET k\r\n", b"xy\r\n", b" get k\r\n"])
def test_unknown_commands_answer_error(wire: Wire, line: bytes) -> None:
    assert wire.ask(line) == b"ERROR\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"\r\n",
        b"x\r\n",
        b"xy\n",
        b"get\r\n",
        b"gets\r\n",
        b"gat\r\n",
        b"gat 10\r\n",
        b"set k 0 0\r\n",
        b"incr k\r\n",
        b"touch k\r\n",
        b"delete\r\n",
        b"verbosity\r\n",
        b"mg\r\n",
        b"md\r\n",
        b"ma\r\n",
    ],
)
def test_known_commands_missing_arguments_and_tiny_lines_are_bad_format(
    wire: Wire, line: bytes
) -> None:
    """memcached 1.6.18 said ERROR to these; the newest says the line is malformed."""
    assert wire.ask(line) == BAD_FORMAT


def test_a_cas_without_its_unique_is_bad_format_and_its_data_is_skipped(wire: Wire) -> None:
    assert wire.ask(b"cas k 0 0 1\r\nx\r\n") == BAD_FORMAT
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_tokens_after_the_arguments_are_ignored_and_only_the_last_can_be_noreply(
    wire: Wire,
) -> None:
    """As memcached >= 1.6.4x (1.6.18 answered ERROR to all of these)."""
    assert wire.ask(b"set a 0 0 1 extra\r\n1\r\n") == b"STORED\r\n"
    assert wire.ask(b"set a 0 0 1 extra noreply\r\n2\r\n") == b""
    assert wire.ask(b"set a 0 0 1 noreply extra\r\n3\r\n") == b"STORED\r\n"
    assert wire.ask(b"incr a 1 2\r\n") == b"4\r\n"
    assert wire.ask(b"decr a 1 2 noreply\r\n") == b""
    assert wire.ask(b"touch a 0 2\r\n") == b"TOUCHED\r\n"
    assert wire.ask(b"verbosity 1 2\r\n") == b"OK\r\n"
    assert wire.ask(b"verbosity 1 2 noreply\r\n") == b""
    assert wire.ask(b"flush_all 0 0\r\n") == b"OK\r\n"
    assert wire.ask(b"get a\r\n") == b"END\r\n"


def test_too_long_key_is_refused_everywhere(wire: Wire) -> None:
    key = b"k" * 251
    assert wire.ask(b"get " + key + b"\r\n") == BAD_FORMAT
    assert wire.ask(b"delete " + key + b"\r\n") == BAD_FORMAT
    assert wire.ask(b"incr " + key + b" 1\r\n") == BAD_FORMAT
    assert wire.ask(b"touch " + key + b" 1\r\n") == BAD_FORMAT
    # the data block of a refused set is swallowed, so the next command is in step
    assert wire.ask(b"set " + key + b" 0 0 1\r\nx\r\n") == BAD_FORMAT
    assert wire.ask(b"set " + b"k" * 250 + b" 0 0 1\r\nx\r\n") == b"STORED\r\n"


def test_one_bad_key_fails_a_whole_multi_get(wire: Wire) -> None:
    wire.ask(b"set ok 0 0 1\r\nx\r\n")
    assert wire.ask(b"get ok " + b"k" * 251 + b"\r\n") == BAD_FORMAT


@pytest.mark.parametrize("key", [b"tab\tkey", b"bell\x07", b"nul\x00key", b"del\x7f"])
def test_keys_with_control_characters_are_refused(wire: Wire, key: bytes) -> None:
    assert wire.ask(b"set " + key + b" 0 0 1\r\nx\r\n") == BAD_FORMAT
    assert wire.ask(b"get " + key + b"\r\n") == BAD_FORMAT
    assert wire.ask(b"version\r\n") == b"VERSION 1.6.38\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"set k abc 0 1\r\n",
        b"set k -1 0 1\r\n",
        b"set k 4294967296 0 1\r\n",
        b"set k 0 abc 1\r\n",
        b"cas k 0 0 1 abc\r\n",
    ],
)
def test_bad_numbers_in_storage_commands(wire: Wire, line: bytes) -> None:
    assert wire.ask(line + b"x\r\n") == BAD_FORMAT
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_negative_or_junk_length_is_a_format_error(wire: Wire) -> None:
    assert wire.ask(b"set k 0 0 -1\r\n") == BAD_FORMAT
    assert wire.ask(b"set k 0 0 1x\r\n") == BAD_FORMAT


def test_bad_data_chunk_stores_nothing_and_does_not_resync(wire: Wire) -> None:
    # memcached: exactly <bytes>+2 are read; the surplus is parsed as the next line
    # (the newest memcached calls the leftover "\r\n" a malformed line; 1.6.18 said ERROR)
    assert wire.ask(b"set k 0 0 3\r\nabcde\r\n") == b"CLIENT_ERROR bad data chunk\r\n" + BAD_FORMAT
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_oversize_value_is_swallowed_and_old_value_dropped(wire: Wire) -> None:
    wire.ask(b"set big 0 0 1\r\nx\r\n")
    size = 2 * 1024 * 1024
    wire.send(b"set big 0 0 %d\r\n" % size)
    chunk = b"y" * 65536
    for _ in range(size // len(chunk)):
        wire.send(chunk)
    wire.send(b"\r\n")
    assert wire.ask(b"get big\r\n") == b"SERVER_ERROR object too large for cache\r\nEND\r\n"


def test_oversize_noreply_is_silent(wire: Wire) -> None:
    size = 1024 * 1024 + 1
    assert wire.ask(b"set big 0 0 %d noreply\r\n" % size + b"z" * size + b"\r\n") == b""


def test_incr_errors(wire: Wire) -> None:
    wire.ask(b"set word 0 0 3\r\nabc\r\nset n 0 0 1\r\n1\r\n")
    non_numeric = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    assert wire.ask(b"incr word 1\r\n") == non_numeric
    assert wire.ask(b"incr n abc\r\n") == b"CLIENT_ERROR invalid numeric delta argument\r\n"
    assert wire.ask(b"incr n -1\r\n") == b"CLIENT_ERROR invalid numeric delta argument\r\n"
    assert wire.ask(b"incr n 18446744073709551616\r\n") == (
        b"CLIENT_ERROR invalid numeric delta argument\r\n"
    )
    assert wire.ask(b"get n\r\n") == b"VALUE n 0 1\r\n1\r\nEND\r\n"


def test_exptime_errors(wire: Wire) -> None:
    bad = b"CLIENT_ERROR invalid exptime argument\r\n"
    assert wire.ask(b"touch k abc\r\n") == bad
    assert wire.ask(b"gat abc k\r\n") == bad
    assert wire.ask(b"flush_all abc\r\n") == bad


def test_delete_ignores_tokens_after_the_key_as_current_memcached(wire: Wire) -> None:
    """memcached 1.6.18 refused ``delete k 5`` with a usage line; the newest deletes."""
    wire.ask(b"set k 0 0 1\r\nx\r\nset j 0 0 1\r\nx\r\n")
    assert wire.ask(b"delete k 5\r\n") == b"DELETED\r\n"
    assert wire.ask(b"delete k 0\r\n") == b"NOT_FOUND\r\n"
    assert wire.ask(b"delete j 5 noreply\r\n") == b""
    assert wire.ask(b"get j\r\n") == b"END\r\n"


def test_admin_commands_are_refused_clearly(wire: Wire) -> None:
    reply = wire.ask(b"shutdown\r\n")
    assert reply.startswith(b"CLIENT_ERROR shutdown is not available")


def test_cache_memlimit_is_refused_naming_the_plans_limit(wire: Wire) -> None:
    """The plan sets the limit; memcached's argument errors are kept."""
    assert wire.ask(b"cache_memlimit 50\r\n") == (
        b"CLIENT_ERROR cache_memlimit not allowed: this cache's memory limit is its plan's, "
        b"100 megabytes\r\n"
    )
    assert wire.ask(b"cache_memlimit 50 noreply\r\n") == b""
    assert wire.ask(b"cache_memlimit x\r\n") == b"ERROR\r\n"
    assert wire.ask(b"stats\r\n").count(b"STAT limit_maxbytes 104857600\r\n") == 1


def test_endless_line_is_cut_off_without_buffering_it(wire: Wire) -> None:
    wire.send(b"set " + b"a" * 4000)
    assert wire.read_to_close() == b"CLIENT_ERROR line too long\r\n"


def test_long_multi_get_line_is_allowed(wire: Wire) -> None:
    keys = b" ".join(b"key%04d" % i for i in range(1000))  # ~8 KB line
    assert wire.ask(b"get " + keys + b"\r\n") == b"END\r\n"


def test_http_request_is_dropped_silently(wire: Wire) -> None:
    wire.send(b"GET / HTTP/1.1\r\n")
    assert wire.read_to_close() == b""


def test_garbage_never_kills_the_listener(cache: CacheHandle) -> None:
    for junk in (bytes(range(256)), b"\r\n" * 100, b"set k 0 0 5\r\nab", b"\xff" * 3000):
        w = Wire.authenticated(cache)
        w.send(junk)
        w.sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionError):
            w.read_to_close()
        w.close()
    w = Wire.authenticated(cache)
    assert w.ask(b"version\r\n") == b"VERSION 1.6.38\r\n"
    w.close()
