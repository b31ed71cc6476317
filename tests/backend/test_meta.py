"""Meta commands (mg, ms, md, ma, mn, me) byte for byte."""

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


def test_mn_marks_the_end_of_a_pipeline(wire: Wire) -> None:
    wire.send(b"mn\r\n")
    assert wire.read_exactly(4) == b"MN\r\n"


def test_ms_then_mg_with_return_flags_in_request_order(wire: Wire) -> None:
    assert wire.ask(b"ms k 5 F7 T0\r\nhello\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k s v f t k Oop\r\n") == b"VA 5 s5 f7 t-1 kk Oop\r\nhello\r\n"
    assert wire.ask(b"mg k\r\n") == b"HD\r\n"


def test_mg_miss_echoes_key_and_opaque_and_q_hides_it(wire: Wire) -> None:
    assert wire.ask(b"mg nope v\r\n") == b"EN\r\n"
    assert wire.ask(b"mg nope k O9\r\n") == b"EN knope O9\r\n"
    assert wire.ask(b"mg nope v q\r\n") == b""
    wire.ask(b"ms hit 1\r\nx\r\n")
    assert wire.ask(b"mg hit v q\r\n") == b"VA 1\r\nx\r\n"


def test_mg_hit_before_and_last_access(wire: Wire) -> None:
    wire.ask(b"ms k 1\r\nx\r\n")
    assert wire.ask(b"mg k h l\r\n") == b"HD h0 l0\r\n"
    assert wire.ask(b"mg k h\r\n") == b"HD h1\r\n"


def test_mg_touch_sets_the_ttl(wire: Wire) -> None:
    wire.ask(b"ms k 1\r\nx\r\n")
    assert wire.ask(b"mg k T100 t v\r\n") == b"VA 1 t100\r\nx\r\n"
    assert wire.ask(b"mg k t\r\n") == b"HD t100\r\n"


def test_mg_cas_matches_gets(wire: Wire) -> None:
    wire.ask(b"ms k 1\r\nx\r\n")
    cas = re.fullmatch(rb"HD c(\d+)\r\n", wire.ask(b"mg k c\r\n")).group(1)
    assert wire.ask(b"gets k\r\n") == b"VALUE k 0 1 " + cas + b"\r\nx\r\nEND\r\n"


def test_mg_vivify_hands_out_one_win(wire: Wire) -> None:
    assert wire.ask(b"mg fresh N30 v t\r\n") == b"VA 0 t30 W\r\n\r\n"
    assert wire.ask(b"mg fresh v\r\n") == b"VA 0 Z\r\n\r\n"


def test_mg_recache_wins_once_when_ttl_is_low(wire: Wire) -> None:
    wire.ask(b"ms k 1 T10\r\nx\r\n")
    assert wire.ask(b"mg k R30 v\r\n") == b"VA 1 W\r\nx\r\n"
    assert wire.ask(b"mg k R30 v\r\n") == b"VA 1 Z\r\nx\r\n"
    wire.ask(b"ms never 1\r\nx\r\n")
    assert wire.ask(b"mg never R30 v\r\n") == b"VA 1\r\nx\r\n"


def test_md_invalidate_marks_stale_and_one_client_wins(wire: Wire) -> None:
    wire.ask(b"ms k 1\r\nx\r\n")
    assert wire.ask(b"md k I T30\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k v t\r\n") == b"VA 1 t30 X W\r\nx\r\n"
    assert wire.ask(b"mg k v\r\n") == b"VA 1 Z X\r\nx\r\n"
    assert wire.ask(b"ms k 1\r\ny\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k v\r\n") == b"VA 1\r\ny\r\n"


def test_ms_modes(wire: Wire) -> None:
    assert wire.ask(b"ms k 1 ME\r\na\r\n") == b"HD\r\n"
    assert wire.ask(b"ms k 1 ME\r\nb\r\n") == b"NS\r\n"
    assert wire.ask(b"ms k 1 MA\r\nz\r\n") == b"HD\r\n"
    assert wire.ask(b"ms k 1 MP\r\n_\r\n") == b"HD\r\n"
    assert wire.ask(b"ms missing 1 MR\r\nx\r\n") == b"NS\r\n"
    assert wire.ask(b"ms k 1 MR\r\nr\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k v\r\n") == b"VA 1\r\nr\r\n"
    assert wire.ask(b"ms k 1 MX\r\nx\r\n") == b"CLIENT_ERROR invalid mode for ms M token\r\n"


def test_ms_append_with_vivify_creates_the_item(wire: Wire) -> None:
    assert wire.ask(b"ms log 1 MA N60\r\na\r\n") == b"HD\r\n"
    assert wire.ask(b"ms log 1 MA\r\nb\r\n") == b"HD\r\n"
    assert wire.ask(b"mg log v t\r\n") == b"VA 2 t60\r\nab\r\n"


def test_ms_cas_compare_and_return_flags(wire: Wire) -> None:
    assert wire.ask(b"ms none 1 C5\r\nx\r\n") == b"NF\r\n"
    first = wire.ask(b"ms k 1 c\r\nx\r\n")
    cas = int(re.fullmatch(rb"HD c(\d+)\r\n", first).group(1))
    assert wire.ask(b"ms k 1 C%d k O1 c\r\ny\r\n" % (cas + 1000)) == b"EX kk O1 c0\r\n"
    assert re.fullmatch(rb"HD c\d+\r\n", wire.ask(b"ms k 1 C%d c\r\nz\r\n" % cas))
    assert wire.ask(b"ms k 1 q\r\nq\r\n") == b""
    assert wire.ask(b"ms k 1 E777\r\nx\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k c\r\n") == b"HD c777\r\n"


def test_ms_errors(wire: Wire) -> None:
    assert wire.ask(b"ms k 3\r\nabcde\r\n") == (
        b"CLIENT_ERROR bad data chunk\r\nCLIENT_ERROR bad command line format\r\n"
    )
    assert wire.ask(b"ms k abc\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    # an unknown flag: the newest memcached's words (1.6.18: "invalid flag"); the data
    # block is still skipped, which the newest forgets to do for ms
    assert wire.ask(b"ms k 1 !\r\nx\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    big = 1024 * 1024 + 10
    assert wire.ask(b"ms k %d\r\n" % big + b"x" * big + b"\r\n") == (
        b"SERVER_ERROR object too large for cache\r\n"
    )


def test_md_results_and_quiet_mode(wire: Wire) -> None:
    wire.ask(b"ms k 1\r\nx\r\n")
    assert wire.ask(b"md k q\r\n") == b""
    assert wire.ask(b"md k q k Oz\r\n") == b"NF kk Oz\r\n"
    wire.ask(b"ms k 1\r\nx\r\n")
    assert wire.ask(b"md k C1\r\n") == b"EX\r\n"
    assert wire.ask(b"md k x\r\n") == b"HD\r\n"
    assert wire.ask(b"mg k v f\r\n") == b"VA 0 f0\r\n\r\n"


def test_ma_counts_creates_and_reports(wire: Wire) -> None:
    assert wire.ask(b"ma n\r\n") == b"NF\r\n"
    assert wire.ask(b"ma n N0 J10 v\r\n") == b"VA 2\r\n10\r\n"
    assert wire.ask(b"ma n v D5\r\n") == b"VA 2\r\n15\r\n"
    assert wire.ask(b"ma n v MD D100 t\r\n") == b"VA 1 t-1\r\n0\r\n"
    assert wire.ask(b"ma n q\r\n") == b""
    assert wire.ask(b"mg n v\r\n") == b"VA 2\r\n1 \r\n"  # memcached keeps the length
    wire.ask(b"ms big 20\r\n18446744073709551615\r\n")
    assert wire.ask(b"ma big v\r\n") == b"VA 1\r\n0\r\n"
    wire.ask(b"ms word 3\r\nabc\r\n")
    assert wire.ask(b"ma word\r\n") == (
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    )
    assert wire.ask(b"ma n MX\r\n") == b"CLIENT_ERROR invalid mode for ma M token\r\n"


def test_base64_keys(wire: Wire) -> None:
    # "c2s=" is base64 for "sk"
    assert wire.ask(b"ms c2s= 2 b k\r\nhi\r\n") == b"HD kc2s= b\r\n"
    assert wire.ask(b"get sk\r\n") == b"VALUE sk 0 2\r\nhi\r\nEND\r\n"
    assert wire.ask(b"mg c2s= b k v\r\n") == b"VA 2 kc2s= b\r\nhi\r\n"
    assert wire.ask(b"mg !!! b v\r\n") == b"CLIENT_ERROR error decoding key\r\n"


def test_flag_errors(wire: Wire) -> None:
    assert wire.ask(b"mg k v v\r\n") == b"CLIENT_ERROR duplicate flag\r\n"
    assert wire.ask(b"mg k !\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    assert wire.ask(b"mg k O" + b"x" * 33 + b"\r\n") == b"CLIENT_ERROR opaque token too long\r\n"
    assert wire.ask(b"mg " + b"k" * 251 + b" v\r\n") == b"CLIENT_ERROR bad command line format\r\n"
    assert wire.ask(b"mg\r\n") == b"CLIENT_ERROR bad command line format\r\n"


def test_me_describes_an_item(wire: Wire) -> None:
    wire.ask(b"ms k 3 T100\r\nabc\r\n")
    reply = wire.ask(b"me k\r\n")
    assert re.fullmatch(rb"ME k exp=100 la=0 cas=\d+ fetch=no cls=1 size=\d+\r\n", reply)
    assert wire.ask(b"me nope\r\n") == b"EN\r\n"


def test_mg_expired_item_is_a_miss(wire: Wire) -> None:
    wire.ask(b"ms k 1 T1\r\nx\r\n")
    time.sleep(1.2)
    assert wire.ask(b"mg k v\r\n") == b"EN\r\n"
