"""Every classic ASCII command, byte for byte, through a real socket."""

from __future__ import annotations

import re
import time

import pytest

from tests.backend.wire import Wire
from tests.conftest import CacheHandle


@pytest.fixture
def wire(cache: CacheHandle):
    w = Wire.authenticated(cache)
    yield w
    w.close()


def cas_of(wire: Wire, key: bytes) -> int:
    reply = wire.ask(b"gets " + key + b"\r\n")
    return int(reply.split(b"\r\n")[0].split()[-1])


def test_set_then_get_returns_value_and_flags(wire: Wire) -> None:
    assert wire.ask(b"set k 42 0 5\r\nhello\r\n") == b"STORED\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 42 5\r\nhello\r\nEND\r\n"


def test_empty_value_is_stored(wire: Wire) -> None:
    assert wire.ask(b"set e 0 0 0\r\n\r\n") == b"STORED\r\n"
    assert wire.ask(b"get e\r\n") == b"VALUE e 0 0\r\n\r\nEND\r\n"


def test_get_miss_is_just_end(wire: Wire) -> None:
    assert wire.ask(b"get nothing\r\n") == b"END\r\n"


def test_multi_get_returns_hits_in_request_order(wire: Wire) -> None:
    wire.ask(b"set a 0 0 1\r\n1\r\nset c 0 0 1\r\n3\r\n")
    assert wire.ask(b"get a b c\r\n") == b"VALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nEND\r\n"


def test_gets_returns_a_nonzero_cas_that_changes_on_update(wire: Wire) -> None:
    wire.ask(b"set k 0 0 1\r\nx\r\n")
    first = cas_of(wire, b"k")
    wire.ask(b"set k 0 0 1\r\ny\r\n")
    second = cas_of(wire, b"k")
    assert first > 0 and second > 0 and first != second


def test_add_stores_only_missing_keys(wire: Wire) -> None:
    assert wire.ask(b"add k 0 0 1\r\na\r\n") == b"STORED\r\n"
    assert wire.ask(b"add k 0 0 1\r\nb\r\n") == b"NOT_STORED\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 1\r\na\r\nEND\r\n"


def test_replace_stores_only_existing_keys(wire: Wire) -> None:
    assert wire.ask(b"replace k 0 0 1\r\na\r\n") == b"NOT_STORED\r\n"
    wire.ask(b"set k 0 0 1\r\na\r\n")
    assert wire.ask(b"replace k 7 0 1\r\nb\r\n") == b"STORED\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 7 1\r\nb\r\nEND\r\n"


def test_append_and_prepend_keep_flags_and_need_the_key(wire: Wire) -> None:
    assert wire.ask(b"append k 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n"
    assert wire.ask(b"prepend k 0 0 1\r\nx\r\n") == b"NOT_STORED\r\n"
    wire.ask(b"set k 9 0 3\r\nmid\r\n")
    assert wire.ask(b"append k 1 0 4\r\n-end\r\n") == b"STORED\r\n"
    assert wire.ask(b"prepend k 1 0 6\r\nstart-\r\n") == b"STORED\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 9 13\r\nstart-mid-end\r\nEND\r\n"


def test_cas_succeeds_once_then_exists(wire: Wire) -> None:
    assert wire.ask(b"cas k 0 0 1 1\r\nx\r\n") == b"NOT_FOUND\r\n"
    wire.ask(b"set k 0 0 1\r\nx\r\n")
    unique = cas_of(wire, b"k")
    assert wire.ask(b"cas k 0 0 1 %d\r\ny\r\n" % unique) == b"STORED\r\n"
    assert wire.ask(b"cas k 0 0 1 %d\r\nz\r\n" % unique) == b"EXISTS\r\n"
    assert wire.ask(b"cas k 0 0 1 0\r\nz\r\n") == b"EXISTS\r\n"
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 1\r\ny\r\nEND\r\n"


def test_delete_hit_and_miss_and_legacy_zero(wire: Wire) -> None:
    wire.ask(b"set k 0 0 1\r\nx\r\nset j 0 0 1\r\nx\r\n")
    assert wire.ask(b"delete k\r\n") == b"DELETED\r\n"
    assert wire.ask(b"delete k\r\n") == b"NOT_FOUND\r\n"
    assert wire.ask(b"delete j 0\r\n") == b"DELETED\r\n"


def test_decr_keeps_the_values_length_padded_with_spaces(wire: Wire) -> None:
    """As memcached: a shorter result is written in place over the old digits."""
    wire.ask(b"set n 0 0 3\r\n100\r\n")
    assert wire.ask(b"decr n 1\r\n") == b"99\r\n"
    assert wire.ask(b"get n\r\n") == b"VALUE n 0 3\r\n99 \r\nEND\r\n"
    assert wire.ask(b"incr n 1\r\n") == b"100\r\n"
    assert wire.ask(b"incr n 900\r\n") == b"1000\r\n"
    assert wire.ask(b"get n\r\n") == b"VALUE n 0 4\r\n1000\r\nEND\r\n"


def test_stats_cachedump_lists_this_caches_keys_newest_first(
    wire: Wire, cache: CacheHandle, service
) -> None:
    other = Wire.authenticated(CacheHandle(service.create_cache("cachedump-neighbour")))
    other.ask(b"set secret 0 0 1\r\nx\r\n")
    assert wire.ask(b"stats cachedump 1 1\r\n") == b"END\r\n"
    wire.ask(b"set a 0 0 3\r\nabc\r\nset b 0 2000000000 1\r\nx\r\n")
    assert wire.ask(b"stats cachedump 1 0\r\n") == (
        b"ITEM b [1 b; 2000000000 s]\r\nITEM a [3 b; 0 s]\r\nEND\r\n"
    )
    assert wire.ask(b"stats cachedump 1 1\r\n") == b"ITEM b [1 b; 2000000000 s]\r\nEND\r\n"
    assert wire.ask(b"stats cachedump 2 0\r\n") == b"END\r\n"
    assert wire.ask(b"stats cachedump 64 0\r\n") == b"CLIENT_ERROR Illegal slab id\r\n"
    assert wire.ask(b"stats cachedump 1\r\n") == b"CLIENT_ERROR bad command line\r\n"
    assert wire.ask(b"stats cachedump 1 x\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    other.close()


def test_incr_decr_arithmetic_wrap_and_floor(wire: Wire) -> None:
    assert wire.ask(b"incr n 1\r\n") == b"NOT_FOUND\r\n"
    wire.ask(b"set n 5 0 2\r\n10\r\n")
    assert wire.ask(b"incr n 5\r\n") == b"15\r\n"
    assert wire.ask(b"decr n 100\r\n") == b"0\r\n"
    wire.ask(b"set n 0 0 20\r\n18446744073709551615\r\n")
    assert wire.ask(b"incr n 2\r\n") == b"1\r\n"
    assert wire.ask(b"get n\r\n") == b"VALUE n 0 20\r\n1%b\r\nEND\r\n" % (b" " * 19)


def test_touch_changes_ttl(wire: Wire) -> None:
    assert wire.ask(b"touch k 10\r\n") == b"NOT_FOUND\r\n"
    wire.ask(b"set k 0 0 1\r\nx\r\n")
    assert wire.ask(b"touch k -1\r\n") == b"TOUCHED\r\n"
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_gat_and_gats_return_values_and_update_ttl(wire: Wire) -> None:
    wire.ask(b"set k 3 1 1\r\nx\r\n")
    assert wire.ask(b"gat 100 k\r\n") == b"VALUE k 3 1\r\nx\r\nEND\r\n"
    assert re.fullmatch(rb"VALUE k 3 1 \d+\r\nx\r\nEND\r\n", wire.ask(b"gats 100 k missing\r\n"))
    time.sleep(2.1)  # the original 1 s TTL would have expired by now
    assert wire.ask(b"get k\r\n") == b"VALUE k 3 1\r\nx\r\nEND\r\n"
    assert wire.ask(b"gat 100\r\n") == b"CLIENT_ERROR bad command line format\r\n"


def test_relative_expiry(wire: Wire) -> None:
    wire.ask(b"set k 0 1 1\r\nx\r\n")
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"
    time.sleep(1.2)
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_absolute_and_negative_expiry(wire: Wire) -> None:
    future = int(time.time()) + 3600
    wire.ask(b"set a 0 %d 1\r\nx\r\n" % future)
    assert wire.ask(b"get a\r\n") == b"VALUE a 0 1\r\nx\r\nEND\r\n"
    past = 2592000 + 1000  # absolute time in 1970: already expired
    assert wire.ask(b"set p 0 %d 1\r\nx\r\n" % past) == b"STORED\r\n"
    assert wire.ask(b"set n 0 -1 1\r\nx\r\n") == b"STORED\r\n"
    assert wire.ask(b"get p n\r\n") == b"END\r\n"


def test_flush_all_now_and_delayed(wire: Wire) -> None:
    wire.ask(b"set a 0 0 1\r\nx\r\n")
    assert wire.ask(b"flush_all\r\n") == b"OK\r\n"
    assert wire.ask(b"get a\r\n") == b"END\r\n"
    wire.ask(b"set b 0 0 1\r\nx\r\n")
    assert wire.ask(b"flush_all 2\r\n") == b"OK\r\n"
    wire.ask(b"set c 0 0 1\r\nx\r\n")  # written before the deadline: also flushed
    assert wire.ask(b"get b c\r\n").count(b"VALUE") == 2
    time.sleep(2.5)
    assert wire.ask(b"get b c\r\n") == b"END\r\n"
    wire.ask(b"set d 0 0 1\r\nx\r\n")  # written after the deadline: survives
    assert wire.ask(b"get d\r\n") == b"VALUE d 0 1\r\nx\r\nEND\r\n"


def test_noreply_suppresses_every_answer(wire: Wire) -> None:
    request = (
        b"set k 0 0 1 noreply\r\nx\r\n"
        b"add k 0 0 1 noreply\r\nx\r\n"
        b"replace k 0 0 1 noreply\r\ny\r\n"
        b"append k 0 0 1 noreply\r\nz\r\n"
        b"prepend k 0 0 1 noreply\r\nw\r\n"
        b"cas k 0 0 1 1 noreply\r\nq\r\n"
        b"set n 0 0 1 noreply\r\n1\r\n"
        b"incr n 1 noreply\r\n"
        b"decr n 1 noreply\r\n"
        b"incr k 1 noreply\r\n"
        b"touch k 100 noreply\r\n"
        b"delete n noreply\r\n"
        b"delete n noreply\r\n"
        b"verbosity 1 noreply\r\n"
    )
    assert wire.ask(request) == b""
    assert wire.ask(b"get k\r\n") == b"VALUE k 0 3\r\nwyz\r\nEND\r\n"
    assert wire.ask(b"flush_all 0 noreply\r\n") == b""
    assert wire.ask(b"get k\r\n") == b"END\r\n"


def test_pipelined_commands_answer_in_order_in_one_batch(wire: Wire) -> None:
    batch = b"".join(b"set k%d 0 0 1\r\n%d\r\n" % (i, i % 10) for i in range(200))
    batch += b"".join(b"get k%d\r\n" % i for i in range(200))
    reply = wire.ask(batch)
    expected = b"STORED\r\n" * 200 + b"".join(
        b"VALUE k%d 0 1\r\n%d\r\nEND\r\n" % (i, i % 10) for i in range(200)
    )
    assert reply == expected


def test_commands_split_across_segments_byte_by_byte(wire: Wire) -> None:
    request = b"set split 0 0 10\r\n0123456789\r\nget split\r\n"
    for byte in request:
        wire.send(bytes([byte]))
        time.sleep(0.001)
    assert wire.read_until(b"END\r\n") == b"STORED\r\nVALUE split 0 10\r\n0123456789\r\nEND\r\n"


def test_newline_only_line_endings_are_accepted(wire: Wire) -> None:
    assert wire.ask(b"set k 0 0 1\nx\r\nget k\n") == b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n"


def test_large_value_near_the_limit_round_trips(wire: Wire) -> None:
    value = bytes(range(256)) * 4000  # 1 024 000 bytes: under 1 MiB with its key
    wire.send(b"set big 0 0 %d\r\n" % len(value) + value + b"\r\n")
    assert wire.read_until(b"\r\n") == b"STORED\r\n"
    reply = wire.ask(b"get big\r\n")
    assert reply == b"VALUE big 0 %d\r\n" % len(value) + value + b"\r\nEND\r\n"


def test_version_and_verbosity(wire: Wire) -> None:
    assert wire.ask(b"version\r\n") == b"VERSION 1.6.38\r\n"
    assert wire.ask(b"version extra tokens\r\n") == b"VERSION 1.6.38\r\n"
    assert wire.ask(b"verbosity 1\r\n") == b"OK\r\n"
    assert wire.ask(b"verbosity noreply\r\n") == b""
    assert wire.ask(b"verbosity\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    assert wire.ask(b"verbosity foo bar my\r\n") == b"CLIENT_ERROR bad command line format\r\n"


def test_quit_closes_the_connection(wire: Wire) -> None:
    wire.send(b"quit\r\n")
    assert wire.read_to_close() == b""


def parse_stats(reply: bytes) -> dict[str, str]:
    lines = reply.split(b"\r\n")
    assert lines[-2:] == [b"END", b""]
    return {
        name.decode(): value.decode()
        for _, name, value in (line.split(b" ", 2) for line in lines[:-2])
    }


def test_stats_count_this_caches_commands(wire: Wire) -> None:
    wire.ask(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\ndelete a\r\nincr z 1\r\ntouch q 1\r\n")
    stats = parse_stats(wire.ask(b"stats\r\n"))
    assert stats["cmd_set"] == "1"
    assert stats["cmd_get"] == "2"
    assert (stats["get_hits"], stats["get_misses"]) == ("1", "1")
    assert (stats["delete_hits"], stats["incr_misses"], stats["touch_misses"]) == ("1", "1", "1")
    assert stats["curr_items"] == "0"
    assert stats["limit_maxbytes"] == str(100 * 1024 * 1024)
    assert stats["curr_connections"] == "1"
    assert stats["version"] == "1.6.38"


def test_stats_families_and_reset(wire: Wire) -> None:
    wire.ask(b"set a 0 0 1\r\nx\r\nget a\r\n")
    assert parse_stats(wire.ask(b"stats settings\r\n"))["item_size_max"] == "1048576"
    assert parse_stats(wire.ask(b"stats items\r\n"))["items:1:number"] == "1"
    assert "total_malloced" in parse_stats(wire.ask(b"stats slabs\r\n"))
    assert parse_stats(wire.ask(b"stats sizes\r\n")) == {"sizes_status": "disabled"}
    assert "0:addr" in parse_stats(wire.ask(b"stats conns\r\n"))
    assert wire.ask(b"stats reset\r\n") == b"RESET\r\n"
    assert parse_stats(wire.ask(b"stats\r\n"))["cmd_get"] == "0"
    assert wire.ask(b"stats noreply\r\n") == b"ERROR\r\n"
    assert wire.ask(b"stats bogus\r\n") == b"ERROR\r\n"


def test_items_and_bytes_stats_follow_the_store(wire: Wire) -> None:
    wire.ask(b"set a 0 0 10\r\n0123456789\r\nset b 0 0 1\r\nx\r\n")
    stats = parse_stats(wire.ask(b"stats\r\n"))
    assert stats["curr_items"] == "2"
    assert int(stats["bytes"]) > 11
    wire.ask(b"flush_all\r\n")
    stats = parse_stats(wire.ask(b"stats\r\n"))
    assert (stats["curr_items"], stats["bytes"], stats["cmd_flush"]) == ("0", "0", "1")
