"""memcached's binary protocol, byte-exact over a real socket: framing, every opcode, quiet
rules, SASL PLAIN, malformed input, capabilities and flush logging."""

from __future__ import annotations

import itertools
import socket
import struct
import time
from typing import NamedTuple

import httpx
import pytest

from tests.backend.test_api import flush_events
from tests.backend.wire import Wire, arith_extras, store_extras, u32
from tests.conftest import CacheHandle, RunningService

HEADER = struct.Struct("!BBHBBHIIQ")
REQUEST, RESPONSE = 0x80, 0x81

# Opcodes.
GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH = range(0x00, 0x09)
GETQ, NOOP, VERSION, GETK, GETKQ, APPEND, PREPEND, STAT = range(0x09, 0x11)
SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ, QUITQ, FLUSHQ = range(0x11, 0x19)
APPENDQ, PREPENDQ, VERBOSITY, TOUCH, GAT, GATQ = range(0x19, 0x1F)
LIST_MECHS, SASL_AUTH, SASL_STEP, GATK, GATKQ = 0x20, 0x21, 0x22, 0x23, 0x24

# Statuses.
OK, NOT_FOUND, EXISTS, TOO_LARGE, EINVAL, NOT_STORED, NON_NUMERIC = range(7)
AUTH_ERROR, UNKNOWN_COMMAND = 0x20, 0x81

OPCODE_NAMES = (
    "GET SET ADD REPLACE DELETE INCR DECR QUIT FLUSH GETQ NOOP VERSION GETK GETKQ APPEND PREPEND "
    "STAT SETQ ADDQ REPLACEQ DELETEQ INCRQ DECRQ QUITQ FLUSHQ APPENDQ PREPENDQ VERBOSITY TOUCH "
    "GAT GATQ LIST_MECHS SASL_AUTH SASL_STEP GATK GATKQ"
)
NAMES = {globals()[name]: name.lower() for name in OPCODE_NAMES.split(" ")}


def op_id(value: object) -> str | None:
    """Test ids: opcodes by name, anything else by pytest's default."""
    return NAMES.get(value) if type(value) is int else None


NO_CREATE = 0xFFFFFFFF
PAST = 2_592_001  # an absolute Unix time in 1970: "already expired"
MIB = 1024 * 1024


def u64(n: int) -> bytes:
    return struct.pack("!Q", n)


class Reply(NamedTuple):
    magic: int
    opcode: int
    keylen: int
    extlen: int
    datatype: int
    status: int
    bodylen: int
    opaque: int
    cas: int
    extras: bytes
    key: bytes
    value: bytes


def packet(
    opcode: int,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    opaque: int = 0,
    cas: int = 0,
    *,
    magic: int = REQUEST,
    keylen: int | None = None,
    extlen: int | None = None,
    bodylen: int | None = None,
) -> bytes:
    """One request; the length fields can be overridden to build malformed headers."""
    keylen = len(key) if keylen is None else keylen
    extlen = len(extras) if extlen is None else extlen
    bodylen = len(extras) + len(key) + len(value) if bodylen is None else bodylen
    header = HEADER.pack(magic, opcode, keylen, extlen, 0, 0, bodylen, opaque, cas)
    return header + extras + key + value


class Binary:
    """A tiny raw binary-protocol client: every request gets a fresh opaque."""

    _opaques = itertools.count(0xDEAD0000)

    def __init__(self, address: tuple[str, int], timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.pending = b""

    @classmethod
    def authenticated(
        cls, cache: CacheHandle, username: str | None = None, password: str | None = None
    ) -> Binary:
        client = cls(cache.endpoint)
        reply = client.sasl(username or cache.username, password or cache.password)
        assert reply.status == OK, reply
        return client

    def next_opaque(self) -> int:
        return next(self._opaques)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(
        self,
        opcode: int,
        key: bytes = b"",
        extras: bytes = b"",
        value: bytes = b"",
        cas: int = 0,
    ) -> int:
        """Send one request; returns the opaque it carries."""
        opaque = self.next_opaque()
        self.send_raw(packet(opcode, key, extras, value, opaque, cas))
        return opaque

    def _read_exactly(self, n: int) -> bytes:
        while len(self.pending) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"closed after {self.pending!r}")
            self.pending += chunk
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def read(self) -> Reply:
        fields = HEADER.unpack(self._read_exactly(HEADER.size))
        keylen, extlen, bodylen = fields[2], fields[3], fields[6]
        body = self._read_exactly(bodylen)
        assert fields[0] == RESPONSE, fields
        assert fields[4] == 0, "data type must be raw"
        return Reply(
            *fields, body[:extlen], body[extlen : extlen + keylen], body[extlen + keylen :]
        )

    def expect(self, opcode: int, opaque: int) -> Reply:
        """Read one reply and check it answers this request (opcode and opaque echoed)."""
        reply = self.read()
        assert (reply.opcode, reply.opaque) == (opcode, opaque), reply
        return reply

    def call(
        self,
        opcode: int,
        key: bytes = b"",
        extras: bytes = b"",
        value: bytes = b"",
        cas: int = 0,
    ) -> Reply:
        return self.expect(opcode, self.send(opcode, key, extras, value, cas))

    def fenced(self, *requests: tuple) -> list[Reply]:
        """Send ``requests`` (argument tuples of ``send``) then a Noop; returns every packet
        that arrived before the Noop's reply, each checked to echo one request's opaque."""
        sent = {self.send(*request): request[0] for request in requests}
        fence = self.send(NOOP)
        replies = []
        while True:
            reply = self.read()
            if reply.opaque == fence:
                assert (reply.opcode, reply.status) == (NOOP, OK), reply
                return replies
            assert sent.get(reply.opaque) == reply.opcode, reply
            replies.append(reply)

    def sasl(self, username: str, password: str, authzid: str = "") -> Reply:
        return self.call(SASL_AUTH, b"PLAIN", value=f"{authzid}\0{username}\0{password}".encode())

    def set(self, key: bytes, value: bytes, flags: int = 0) -> int:
        reply = self.call(SET, key, store_extras(flags), value)
        assert reply.status == OK, reply
        return reply.cas

    def value_of(self, key: bytes) -> bytes | None:
        reply = self.call(GET, key)
        assert reply.status in (OK, NOT_FOUND), reply
        return reply.value if reply.status == OK else None

    def read_to_close(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes; fails if it does not close."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                data, self.pending = self.pending, b""
                return data
            self.pending += chunk
        raise AssertionError(f"connection still open; got {self.pending!r}")

    def close(self) -> None:
        self.sock.close()


def assert_error(reply: Reply, status: int) -> None:
    """Error packets: the status, no extras, no key, CAS 0 and a human-readable body."""
    assert reply.status == status, reply
    assert (reply.extlen, reply.keylen, reply.cas) == (0, 0, 0), reply
    assert reply.value, reply


@pytest.fixture
def client(cache: CacheHandle):
    binary = Binary.authenticated(cache)
    yield binary
    binary.close()


# -- SASL ---------------------------------------------------------------------------------
def test_list_mechs_offers_plain_before_authentication(cache: CacheHandle) -> None:
    reply = Binary(cache.endpoint).call(LIST_MECHS)
    assert reply.status == OK
    assert reply.value.split() == [b"PLAIN"]


def test_list_mechs_ends_with_a_separator_for_libmemcached(cache: CacheHandle) -> None:
    # libmemcached reads the list into an uninitialised stack buffer and hands it to
    # libsasl2 as a C string: "PLAIN" ran on into stack bytes ("No worthy mechs found",
    # pylibmc error 40, depending on what the caller's stack held). After a space, the
    # stray bytes are a separate word and PLAIN is still found.
    reply = Binary(cache.endpoint).call(LIST_MECHS)
    assert reply.value == b"PLAIN "


def test_plain_auth_succeeds_and_unlocks_commands(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    assert binary.sasl(cache.username, cache.password).status == OK
    assert binary.call(SET, b"k", store_extras(), b"v").status == OK
    assert binary.value_of(b"k") == b"v"


def test_wrong_password_is_an_auth_error_and_leaves_the_connection_unauthenticated(
    cache: CacheHandle,
) -> None:
    binary = Binary(cache.endpoint)
    assert_error(binary.sasl(cache.username, "not-the-password"), AUTH_ERROR)
    assert_error(binary.call(GET, b"k"), AUTH_ERROR)
    assert binary.read_to_close() == b""


def test_a_failed_auth_can_be_retried_on_the_same_connection(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    assert_error(binary.sasl(cache.username, "not-the-password"), AUTH_ERROR)
    assert binary.sasl(cache.username, cache.password).status == OK
    assert binary.value_of(b"k") is None


def test_unknown_username_is_an_auth_error(cache: CacheHandle) -> None:
    assert_error(Binary(cache.endpoint).sasl("NOSUCHUSER", cache.password), AUTH_ERROR)


@pytest.mark.parametrize("opcode", [GET, NOOP, STAT, QUIT], ids=op_id)
def test_command_before_auth_is_refused_and_closed(cache: CacheHandle, opcode: int) -> None:
    binary = Binary(cache.endpoint)
    assert_error(binary.call(opcode, b"k" if opcode == GET else b""), AUTH_ERROR)
    assert binary.read_to_close() == b""


def test_unknown_opcode_before_auth_is_refused_and_closed(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    assert_error(binary.call(0x3F, b"k", value=b"body"), AUTH_ERROR)
    assert binary.read_to_close() == b""


def test_version_works_before_auth_and_auth_still_follows(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    reply = binary.call(VERSION)
    assert (reply.status, reply.value, reply.cas) == (OK, b"1.6.38", 0)
    assert binary.sasl(cache.username, cache.password).status == OK


def test_sasl_step_is_refused_because_plain_has_no_second_step(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    auth = f"\0{cache.username}\0{cache.password}".encode()
    assert_error(binary.call(SASL_STEP, b"PLAIN", value=auth), AUTH_ERROR)


def test_auth_with_another_mechanism_is_refused(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    auth = f"\0{cache.username}\0{cache.password}".encode()
    assert_error(binary.call(SASL_AUTH, b"CRAM-MD5", value=auth), AUTH_ERROR)


def test_plain_with_an_authzid_authenticates_the_authcid(cache: CacheHandle) -> None:
    binary = Binary(cache.endpoint)
    assert binary.sasl(cache.username, cache.password, authzid="someone-else").status == OK
    assert binary.value_of(b"k") is None


# -- retrieval ----------------------------------------------------------------------------
def test_get_hit_returns_flags_value_and_the_items_cas(client: Binary) -> None:
    cas = client.set(b"k", b"hello", flags=0xCAFEBABE)
    reply = client.call(GET, b"k")
    assert (reply.status, reply.extras, reply.key, reply.value) == (
        OK,
        u32(0xCAFEBABE),
        b"",
        b"hello",
    )
    assert reply.cas == cas != 0


def test_getk_hit_carries_the_key(client: Binary) -> None:
    client.set(b"k", b"hello", flags=7)
    reply = client.call(GETK, b"k")
    assert (reply.status, reply.extras, reply.key, reply.value) == (OK, u32(7), b"k", b"hello")
    assert reply.cas != 0


@pytest.mark.parametrize(("opcode", "key_in_reply"), [(GETQ, b""), (GETKQ, b"k")], ids=op_id)
def test_quiet_get_hit_is_sent_with_the_quiet_opcode(
    client: Binary, opcode: int, key_in_reply: bytes
) -> None:
    client.set(b"k", b"hello", flags=3)
    (reply,) = client.fenced((opcode, b"k"))
    assert (reply.opcode, reply.status, reply.extras, reply.key, reply.value) == (
        opcode,
        OK,
        u32(3),
        key_in_reply,
        b"hello",
    )


def test_get_miss_is_not_found(client: Binary) -> None:
    assert_error(client.call(GET, b"missing"), NOT_FOUND)


def test_getk_miss_is_not_found_and_carries_the_key(client: Binary) -> None:
    reply = client.call(GETK, b"missing")
    assert (reply.status, reply.extlen, reply.key, reply.cas) == (NOT_FOUND, 0, b"missing", 0)


@pytest.mark.parametrize("opcode", [GETK, GATK], ids=op_id)
def test_key_carrying_miss_has_the_key_as_its_whole_body(client: Binary, opcode: int) -> None:
    extras = u32(60) if opcode == GATK else b""
    reply = client.call(opcode, b"missing", extras)
    assert (reply.status, reply.bodylen, reply.key, reply.value) == (NOT_FOUND, 7, b"missing", b"")


@pytest.mark.parametrize(
    ("opcode", "extras"),
    [(GETQ, b""), (GETKQ, b""), (GATQ, u32(0)), (GATKQ, u32(0))],
    ids=["getq", "getkq", "gatq", "gatkq"],
)
def test_quiet_get_miss_sends_no_packet(client: Binary, opcode: int, extras: bytes) -> None:
    assert client.fenced((opcode, b"missing", extras)) == []


def test_getkq_pipeline_returns_exactly_the_hits_then_the_noop(client: Binary) -> None:
    for key in (b"a", b"c", b"e"):
        client.set(key, key.upper())
    replies = client.fenced(*[(GETKQ, key) for key in (b"a", b"b", b"c", b"d", b"e", b"f")])
    assert [(r.opcode, r.status, r.key, r.value) for r in replies] == [
        (GETKQ, OK, b"a", b"A"),
        (GETKQ, OK, b"c", b"C"),
        (GETKQ, OK, b"e", b"E"),
    ]


def test_keys_may_hold_any_byte(client: Binary) -> None:
    key = b"sp ace\r\nnul\0\xff"
    client.set(key, b"odd")
    assert client.call(GETK, key).key == key
    assert client.value_of(key) == b"odd"


# -- storage ------------------------------------------------------------------------------
def test_set_answers_an_empty_body_and_a_fresh_nonzero_cas(client: Binary) -> None:
    first = client.call(SET, b"k", store_extras(), b"one")
    second = client.call(SET, b"k", store_extras(), b"two")
    for reply in (first, second):
        assert (reply.status, reply.bodylen) == (OK, 0)
    assert 0 != first.cas != second.cas != 0
    assert client.value_of(b"k") == b"two"


def test_empty_value_can_be_stored(client: Binary) -> None:
    client.set(b"k", b"")
    reply = client.call(GET, b"k")
    assert (reply.status, reply.value) == (OK, b"")


def test_add_stores_a_missing_key_but_is_exists_on_an_existing_one(client: Binary) -> None:
    added = client.call(ADD, b"k", store_extras(), b"first")
    assert (added.status, added.bodylen) == (OK, 0) and added.cas != 0
    assert_error(client.call(ADD, b"k", store_extras(), b"second"), EXISTS)
    assert client.value_of(b"k") == b"first"


def test_replace_is_not_found_on_a_missing_key_and_replaces_an_existing_one(
    client: Binary,
) -> None:
    assert_error(client.call(REPLACE, b"k", store_extras(), b"x"), NOT_FOUND)
    assert client.value_of(b"k") is None
    client.set(b"k", b"old")
    replaced = client.call(REPLACE, b"k", store_extras(), b"new")
    assert replaced.status == OK and replaced.cas != 0
    assert client.value_of(b"k") == b"new"


def test_set_with_the_current_cas_succeeds_and_with_a_stale_one_is_exists(client: Binary) -> None:
    cas = client.set(b"k", b"one")
    swapped = client.call(SET, b"k", store_extras(), b"two", cas=cas)
    assert swapped.status == OK and swapped.cas not in (0, cas)
    assert_error(client.call(SET, b"k", store_extras(), b"three", cas=cas), EXISTS)
    assert client.value_of(b"k") == b"two"


def test_set_with_a_cas_on_a_missing_key_is_not_found(client: Binary) -> None:
    assert_error(client.call(SET, b"missing", store_extras(), b"x", cas=12345), NOT_FOUND)
    assert client.value_of(b"missing") is None


def test_replace_with_a_stale_cas_is_exists(client: Binary) -> None:
    cas = client.set(b"k", b"one")
    client.set(b"k", b"two")
    assert_error(client.call(REPLACE, b"k", store_extras(), b"three", cas=cas), EXISTS)
    assert client.value_of(b"k") == b"two"


@pytest.mark.parametrize(
    ("opcode", "preset", "expected"),
    [
        (SETQ, None, b"new"),
        (ADDQ, None, b"new"),
        (REPLACEQ, b"old", b"new"),
        (APPENDQ, b"old", b"oldnew"),
        (PREPENDQ, b"old", b"newold"),
    ],
    ids=["setq", "addq", "replaceq", "appendq", "prependq"],
)
def test_quiet_storage_success_sends_nothing(
    client: Binary, opcode: int, preset: bytes | None, expected: bytes
) -> None:
    if preset is not None:
        client.set(b"k", preset)
    extras = b"" if opcode in (APPENDQ, PREPENDQ) else store_extras()
    assert client.fenced((opcode, b"k", extras, b"new")) == []
    assert client.value_of(b"k") == expected


@pytest.mark.parametrize(
    ("opcode", "preset", "status"),
    [
        (ADDQ, b"old", EXISTS),
        (REPLACEQ, None, NOT_FOUND),
        (APPENDQ, None, NOT_STORED),
        (PREPENDQ, None, NOT_STORED),
    ],
    ids=["addq-exists", "replaceq-missing", "appendq-missing", "prependq-missing"],
)
def test_quiet_storage_failure_is_reported_under_the_quiet_opcode(
    client: Binary, opcode: int, preset: bytes | None, status: int
) -> None:
    if preset is not None:
        client.set(b"k", preset)
    extras = b"" if opcode in (APPENDQ, PREPENDQ) else store_extras()
    (reply,) = client.fenced((opcode, b"k", extras, b"new"))
    assert reply.opcode == opcode
    assert_error(reply, status)
    assert client.value_of(b"k") == preset


def test_quiet_set_with_a_stale_cas_is_reported(client: Binary) -> None:
    cas = client.set(b"k", b"one")
    client.set(b"k", b"two")
    (reply,) = client.fenced((SETQ, b"k", store_extras(), b"three", cas))
    assert_error(reply, EXISTS)


def test_append_and_prepend_join_values_and_keep_the_flags(client: Binary) -> None:
    cas = client.set(b"k", b"mid", flags=42)
    appended = client.call(APPEND, b"k", value=b">>")
    prepended = client.call(PREPEND, b"k", value=b"<<")
    assert appended.status == prepended.status == OK
    assert len({cas, appended.cas, prepended.cas}) == 3 and 0 not in (appended.cas, prepended.cas)
    reply = client.call(GET, b"k")
    assert (reply.extras, reply.value) == (u32(42), b"<<mid>>")


@pytest.mark.parametrize("opcode", [APPEND, PREPEND], ids=op_id)
def test_append_or_prepend_to_a_missing_key_is_not_stored(client: Binary, opcode: int) -> None:
    assert_error(client.call(opcode, b"missing", value=b"x"), NOT_STORED)
    assert client.value_of(b"missing") is None


# -- delete -------------------------------------------------------------------------------
def test_delete_removes_a_hit_and_is_not_found_on_a_miss(client: Binary) -> None:
    client.set(b"k", b"v")
    deleted = client.call(DELETE, b"k")
    assert (deleted.status, deleted.bodylen, deleted.cas) == (OK, 0, 0)
    assert client.value_of(b"k") is None
    assert_error(client.call(DELETE, b"k"), NOT_FOUND)


def test_delete_with_a_wrong_cas_is_exists_and_with_the_right_one_deletes(client: Binary) -> None:
    cas = client.set(b"k", b"v")
    assert_error(client.call(DELETE, b"k", cas=cas + 1000), EXISTS)
    assert client.value_of(b"k") == b"v"
    assert client.call(DELETE, b"k", cas=cas).status == OK
    assert client.value_of(b"k") is None


def test_quiet_delete_is_silent_on_success_and_reports_a_miss(client: Binary) -> None:
    client.set(b"k", b"v")
    assert client.fenced((DELETEQ, b"k")) == []
    assert client.value_of(b"k") is None
    (reply,) = client.fenced((DELETEQ, b"k"))
    assert_error(reply, NOT_FOUND)


# -- incr / decr --------------------------------------------------------------------------
def test_incr_adds_to_a_counter_and_answers_the_new_value(client: Binary) -> None:
    cas = client.set(b"n", b"41", flags=9)
    reply = client.call(INCR, b"n", arith_extras(1))
    assert (reply.status, reply.extlen, reply.value) == (OK, 0, u64(42))
    assert reply.cas not in (0, cas)
    got = client.call(GET, b"n")
    assert (got.extras, got.value, got.cas) == (u32(9), b"42", reply.cas)


@pytest.mark.parametrize("opcode", [INCR, DECR], ids=op_id)
def test_arith_on_a_missing_key_creates_it_with_initial_and_answers_initial(
    client: Binary, opcode: int
) -> None:
    reply = client.call(opcode, b"n", arith_extras(5, initial=100))
    assert (reply.status, reply.value) == (OK, u64(100))
    assert reply.cas != 0
    got = client.call(GET, b"n")
    assert (got.extras, got.value) == (u32(0), b"100")
    again = client.call(opcode, b"n", arith_extras(5, initial=100))
    assert again.value == u64(105 if opcode == INCR else 95)


@pytest.mark.parametrize("opcode", [INCR, DECR], ids=op_id)
def test_arith_with_no_create_expiration_is_not_found_on_a_miss(
    client: Binary, opcode: int
) -> None:
    assert_error(client.call(opcode, b"n", arith_extras(1, 7, NO_CREATE)), NOT_FOUND)
    assert client.value_of(b"n") is None


def test_incr_wraps_at_two_to_the_64(client: Binary) -> None:
    client.set(b"n", b"%d" % (2**64 - 1))
    assert client.call(INCR, b"n", arith_extras(2)).value == u64(1)
    assert client.value_of(b"n") == b"1".ljust(20)  # memcached keeps the length


def test_decr_stops_at_zero(client: Binary) -> None:
    client.set(b"n", b"5")
    assert client.call(DECR, b"n", arith_extras(10)).value == u64(0)
    assert client.value_of(b"n") == b"0"


@pytest.mark.parametrize("opcode", [INCR, DECR, INCRQ, DECRQ], ids=op_id)
def test_arith_on_a_non_numeric_value_is_refused(client: Binary, opcode: int) -> None:
    client.set(b"n", b"twelve")
    (reply,) = client.fenced((opcode, b"n", arith_extras(1)))
    assert reply.opcode == opcode
    assert_error(reply, NON_NUMERIC)
    assert client.value_of(b"n") == b"twelve"


def test_quiet_incr_and_decr_change_the_counter_silently(client: Binary) -> None:
    client.set(b"n", b"10")
    assert client.fenced((INCRQ, b"n", arith_extras(5)), (DECRQ, b"n", arith_extras(2))) == []
    assert client.value_of(b"n") == b"13"


def test_incr_with_a_wrong_cas_is_exists(client: Binary) -> None:
    cas = client.set(b"n", b"1")
    assert_error(client.call(INCR, b"n", arith_extras(1), cas=cas + 1000), EXISTS)
    assert client.value_of(b"n") == b"1"


# -- touch / gat --------------------------------------------------------------------------
def test_touch_replaces_the_ttl(client: Binary) -> None:
    client.set(b"k", b"v", flags=5)
    touched = client.call(TOUCH, b"k", u32(3600))
    assert (touched.status, touched.extras, touched.value) == (OK, u32(5), b"")
    assert client.value_of(b"k") == b"v"
    assert client.call(TOUCH, b"k", u32(PAST)).status == OK  # a past time: expires now
    assert client.value_of(b"k") is None


def test_touch_on_a_missing_key_is_not_found(client: Binary) -> None:
    assert_error(client.call(TOUCH, b"missing", u32(60)), NOT_FOUND)


@pytest.mark.parametrize(("opcode", "key_in_reply"), [(GAT, b""), (GATK, b"k")], ids=op_id)
def test_gat_returns_the_item_and_replaces_its_ttl(
    client: Binary, opcode: int, key_in_reply: bytes
) -> None:
    cas = client.set(b"k", b"v", flags=8)
    reply = client.call(opcode, b"k", u32(PAST))
    assert (reply.status, reply.extras, reply.key, reply.value, reply.cas) == (
        OK,
        u32(8),
        key_in_reply,
        b"v",
        cas,
    )
    assert client.value_of(b"k") is None  # the new TTL (in the past) took effect


@pytest.mark.parametrize(("opcode", "key_in_reply"), [(GATQ, b""), (GATKQ, b"k")], ids=op_id)
def test_quiet_gat_hit_is_sent_with_the_quiet_opcode(
    client: Binary, opcode: int, key_in_reply: bytes
) -> None:
    client.set(b"k", b"v", flags=8)
    (reply,) = client.fenced((opcode, b"k", u32(3600)))
    assert (reply.opcode, reply.status, reply.extras, reply.key, reply.value) == (
        opcode,
        OK,
        u32(8),
        key_in_reply,
        b"v",
    )


def test_gat_miss_is_not_found_and_gatk_miss_carries_the_key(client: Binary) -> None:
    assert_error(client.call(GAT, b"missing", u32(60)), NOT_FOUND)
    gatk = client.call(GATK, b"missing", u32(60))
    assert (gatk.status, gatk.key, gatk.cas) == (NOT_FOUND, b"missing", 0)


# -- flush, noop, version, stat, verbosity, quit ------------------------------------------
@pytest.mark.parametrize("extras", [b"", u32(0)], ids=["no-extras", "4-byte-extras"])
def test_flush_empties_the_cache(client: Binary, extras: bytes) -> None:
    client.set(b"a", b"1")
    client.set(b"b", b"2")
    reply = client.call(FLUSH, extras=extras)
    assert (reply.status, reply.bodylen, reply.cas) == (OK, 0, 0)
    assert client.value_of(b"a") is None and client.value_of(b"b") is None


@pytest.mark.parametrize("extras", [b"", u32(0)], ids=["no-extras", "4-byte-extras"])
def test_quiet_flush_empties_the_cache_silently(client: Binary, extras: bytes) -> None:
    client.set(b"a", b"1")
    assert client.fenced((FLUSHQ, b"", extras)) == []
    assert client.value_of(b"a") is None


def test_flush_with_a_delay_keeps_items_until_then(client: Binary) -> None:
    client.set(b"a", b"1")
    assert client.call(FLUSH, extras=u32(3600)).status == OK
    assert client.value_of(b"a") == b"1"


def test_noop_answers_an_empty_success(client: Binary) -> None:
    reply = client.call(NOOP)
    assert (reply.status, reply.bodylen, reply.cas) == (OK, 0, 0)


def test_version_reports_the_memcached_version(client: Binary) -> None:
    reply = client.call(VERSION)
    assert (reply.status, reply.value, reply.cas) == (OK, b"1.6.38", 0)


def read_stats(client: Binary, sub: bytes = b"") -> dict[bytes, bytes]:
    """All stat packets up to the terminator (keylen 0, bodylen 0), as a dict."""
    opaque = client.send(STAT, sub)
    stats: dict[bytes, bytes] = {}
    while True:
        reply = client.expect(STAT, opaque)
        assert (reply.status, reply.extlen, reply.cas) == (OK, 0, 0), reply
        if reply.bodylen == 0:
            assert reply.keylen == 0
            return stats
        assert reply.key and reply.key not in stats, reply
        stats[reply.key] = reply.value


def test_stat_lists_the_general_stats_then_a_terminator(client: Binary) -> None:
    client.set(b"a", b"1")
    client.value_of(b"a")
    stats = read_stats(client)
    assert stats[b"version"] == b"1.6.38"
    assert (stats[b"curr_items"], stats[b"get_hits"], stats[b"cmd_set"]) == (b"1", b"1", b"1")
    assert {b"pid", b"uptime", b"limit_maxbytes", b"curr_connections"} <= set(stats)
    assert client.call(NOOP).status == OK  # nothing left over after the terminator


def test_gat_counts_as_a_touch_not_a_get(client: Binary) -> None:
    client.set(b"k", b"v")
    client.call(GAT, b"k", u32(3600))
    client.call(GAT, b"missing", u32(3600))
    stats = read_stats(client)
    assert (stats[b"cmd_touch"], stats[b"touch_hits"], stats[b"touch_misses"]) == (b"2", b"1", b"1")
    assert (stats[b"cmd_get"], stats[b"get_hits"], stats[b"get_misses"]) == (b"0", b"0", b"0")


def test_bytes_read_counts_a_request_arriving_in_two_parts_once(client: Binary) -> None:
    request = packet(SET, b"k", store_extras(), b"v" * 10_000, opaque=5)
    before = int(read_stats(client)[b"bytes_read"])
    client.send_raw(request[:100])
    time.sleep(0.1)  # let the server read (and buffer) the first part on its own
    client.send_raw(request[100:])
    assert client.expect(SET, 5).status == OK
    after = int(read_stats(client)[b"bytes_read"])
    assert after - before == len(request) + HEADER.size  # plus the first Stat request


def test_stat_settings_lists_the_settings(client: Binary) -> None:
    stats = read_stats(client, b"settings")
    assert stats[b"item_size_max"] == b"1048576"
    assert stats[b"auth_enabled_sasl"] == b"yes"
    assert b"pid" not in stats


def test_stat_with_an_unknown_sub_command_is_not_found(client: Binary) -> None:
    assert_error(client.call(STAT, b"bogus"), NOT_FOUND)
    assert client.call(NOOP).status == OK


def test_verbosity_is_accepted(client: Binary) -> None:
    reply = client.call(VERBOSITY, extras=u32(1))
    assert (reply.status, reply.bodylen) == (OK, 0)


def test_quit_answers_then_closes(client: Binary) -> None:
    reply = client.call(QUIT)
    assert (reply.status, reply.bodylen, reply.cas) == (OK, 0, 0)
    assert client.read_to_close() == b""


def test_quitq_closes_without_an_answer(client: Binary) -> None:
    client.send(QUITQ)
    assert client.read_to_close() == b""


def test_requests_pipelined_after_quit_are_not_executed(cache: CacheHandle) -> None:
    client = Binary.authenticated(cache)
    client.send_raw(packet(QUITQ) + packet(SET, b"k", store_extras(), b"after-quit"))
    assert client.read_to_close() == b""
    assert Binary.authenticated(cache).value_of(b"k") is None


# -- malformed input ----------------------------------------------------------------------
def test_a_packet_with_bad_magic_closes_the_connection(client: Binary) -> None:
    client.send_raw(packet(NOOP, opaque=1) + packet(NOOP, opaque=2, magic=0x00))
    assert client.read().opaque == 1
    assert client.read_to_close() == b""


def test_key_and_extras_longer_than_the_body_is_unknown_command_then_close(
    client: Binary,
) -> None:
    client.send_raw(packet(GET, b"abcdef", opaque=7, bodylen=3))
    reply = client.expect(GET, 7)
    assert_error(reply, UNKNOWN_COMMAND)
    assert client.read_to_close() == b""


@pytest.mark.parametrize(
    "request_",
    [
        packet(SET, b"k", b"", b"v", opaque=7),  # Set without its 8-byte extras
        packet(GET, b"k", u32(0), opaque=7),  # Get with extras
        packet(DELETE, b"k", b"", b"v", opaque=7),  # Delete with a value
        packet(VERSION, b"", b"", b"v", opaque=7),  # Version with a body
        packet(INCR, b"n", u32(1), opaque=7),  # Incr with 4-byte extras
        packet(VERBOSITY, opaque=7),  # Verbosity without its level
        packet(TOUCH, b"", u32(0), opaque=7),  # Touch without a key
    ],
    ids=[
        "set-no-extras",
        "get-extras",
        "delete-value",
        "version-body",
        "incr-short-extras",
        "verbosity-no-extras",
        "touch-no-key",
    ],
)
def test_a_request_of_the_wrong_shape_is_invalid_then_closed(
    client: Binary, request_: bytes
) -> None:
    opcode = request_[1]
    client.send_raw(request_)
    assert_error(client.expect(opcode, 7), EINVAL)
    assert client.read_to_close() == b""


def test_a_key_longer_than_250_bytes_is_invalid_then_closed(client: Binary) -> None:
    opaque = client.send(SET, b"k" * 251, store_extras(), b"v")
    assert_error(client.expect(SET, opaque), EINVAL)
    assert client.read_to_close() == b""


def test_a_key_of_exactly_250_bytes_is_fine(client: Binary) -> None:
    client.set(b"k" * 250, b"v")
    assert client.value_of(b"k" * 250) == b"v"


def test_an_unknown_opcode_without_a_body_is_refused_and_the_connection_stays_usable(
    client: Binary,
) -> None:
    client.set(b"k", b"v")
    assert_error(client.call(0x3F), UNKNOWN_COMMAND)
    assert client.value_of(b"k") == b"v"


def test_an_unknown_opcode_with_a_body_is_refused_then_the_connection_closed(
    client: Binary,
) -> None:
    """memcached skips the wrong number of bytes after such a request and then closes."""
    opaque = client.send(0x3F, b"some-key", u32(1), b"a body to skip")
    client.send_raw(packet(NOOP, opaque=1))
    assert_error(client.expect(0x3F, opaque), UNKNOWN_COMMAND)
    assert client.read_to_close() == b""


def test_an_add_with_the_items_cas_replaces_it_as_a_cas(client: Binary) -> None:
    """memcached turns Set/Add/Replace with a non-zero CAS into a compare-and-swap."""
    assert client.call(ADD, b"a", store_extras(), b"1", cas=5).status == NOT_FOUND
    unique = client.set(b"a", b"1")
    assert client.call(ADD, b"a", store_extras(), b"2", cas=unique + 1).status == EXISTS
    reply = client.call(ADD, b"a", store_extras(7), b"3", cas=unique)
    assert (reply.status, reply.cas != unique) == (OK, True), reply
    assert client.call(GET, b"a").value == b"3"


def test_an_append_with_a_cas_on_a_missing_key_is_not_stored(client: Binary) -> None:
    assert_error(client.call(APPEND, b"nothing", value=b"x", cas=9), NOT_STORED)


def test_a_decremented_counter_keeps_its_length_padded_with_spaces(client: Binary) -> None:
    """memcached rewrites a shorter result in place: "100" - 1 reads back as "99 "."""
    client.set(b"n", b"100")
    reply = client.call(DECR, b"n", arith_extras(1))
    assert reply.value == u64(99)
    assert client.value_of(b"n") == b"99 "
    client.call(INCR, b"n", arith_extras(1000))
    assert client.value_of(b"n") == b"1099"


def test_a_set_over_the_item_limit_is_too_large_swallowed_and_drops_the_old_value(
    client: Binary,
) -> None:
    client.set(b"big", b"old")
    client.set(b"other", b"kept")
    opaque = client.next_opaque()
    size = 2 * MIB
    client.send_raw(HEADER.pack(REQUEST, SET, 3, 8, 0, 0, 8 + 3 + size, opaque, 0))
    client.send_raw(store_extras() + b"big")
    for _ in range(size // 65536):
        client.send_raw(b"x" * 65536)
    assert_error(client.expect(SET, opaque), TOO_LARGE)
    assert client.value_of(b"other") == b"kept"  # the stream is still in step
    assert client.value_of(b"big") is None


def test_a_one_mib_value_is_too_large_quiet_or_not_and_drops_the_old_value(
    client: Binary,
) -> None:
    client.set(b"big", b"old")
    assert_error(client.call(SET, b"big", store_extras(), b"x" * MIB), TOO_LARGE)
    assert client.value_of(b"big") is None
    (reply,) = client.fenced((SETQ, b"big", store_extras(), b"x" * MIB))
    assert reply.opcode == SETQ
    assert_error(reply, TOO_LARGE)


def test_a_value_just_under_the_item_limit_is_stored(client: Binary) -> None:
    value = b"y" * (MIB - 1024)
    client.set(b"big", value)
    assert client.value_of(b"big") == value


def test_a_huge_body_on_a_non_storage_opcode_is_invalid_and_closed_without_waiting(
    client: Binary,
) -> None:
    client.sock.settimeout(2)
    client.send_raw(HEADER.pack(REQUEST, GET, 1, 0, 0, 0, 100_000_000, 9, 0))
    assert_error(client.expect(GET, 9), EINVAL)
    assert client.read_to_close(timeout=2) == b""


# -- capabilities -------------------------------------------------------------------------
def add_credential(cache: CacheHandle, **capabilities: bool) -> dict:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        created = api.post("/credentials")
        assert created.status_code == 201, created.text
        credential = created.json()
        patched = api.patch(f"/credentials/{credential['username']}", json=capabilities)
        assert patched.status_code == 200, patched.text
        return patched.json()


@pytest.fixture
def seeded(cache: CacheHandle) -> CacheHandle:
    binary = Binary.authenticated(cache)
    binary.set(b"k", b"value", flags=1)
    binary.set(b"n", b"5")
    binary.close()
    return cache


WRITES = [
    (SET, b"k", store_extras(), b"x"),
    (SETQ, b"k", store_extras(), b"x"),
    (ADD, b"new", store_extras(), b"x"),
    (REPLACE, b"k", store_extras(), b"x"),
    (APPEND, b"k", b"", b"x"),
    (PREPENDQ, b"k", b"", b"x"),
    (DELETE, b"k", b"", b""),
    (DELETEQ, b"k", b"", b""),
    (INCR, b"n", arith_extras(1), b""),
    (DECRQ, b"n", arith_extras(1), b""),
    (INCR, b"new", arith_extras(1, 0, 0), b""),
    (TOUCH, b"k", u32(PAST), b""),
    (GAT, b"k", u32(PAST), b""),
    (GATKQ, b"k", u32(PAST), b""),
]


@pytest.mark.parametrize("request_", WRITES, ids=[f"{NAMES[r[0]]}-{r[1].decode()}" for r in WRITES])
def test_read_only_credential_cannot_change_anything(seeded: CacheHandle, request_: tuple) -> None:
    credential = add_credential(seeded, write=False)
    binary = Binary.authenticated(seeded, credential["username"], credential["password"])
    (reply,) = binary.fenced(request_)
    assert reply.opcode == request_[0]
    assert_error(reply, AUTH_ERROR)
    assert b"write" in reply.value
    got = binary.fenced((GETK, b"k"), (GETK, b"n"), (GETK, b"new"))
    assert [(r.status, r.key, r.extras, r.value[:5]) for r in got[:2]] == [
        (OK, b"k", u32(1), b"value"),
        (OK, b"n", u32(0), b"5"),
    ]
    assert (got[2].status, got[2].key) == (NOT_FOUND, b"new")


def test_read_only_credential_can_still_read(seeded: CacheHandle) -> None:
    credential = add_credential(seeded, write=False)
    binary = Binary.authenticated(seeded, credential["username"], credential["password"])
    assert binary.value_of(b"k") == b"value"
    (hit,) = binary.fenced((GETKQ, b"k"), (GETKQ, b"missing"))
    assert hit.value == b"value"
    assert read_stats(binary)[b"curr_items"] == b"2"


def test_read_only_oversized_set_is_denied_and_keeps_the_old_value(seeded: CacheHandle) -> None:
    credential = add_credential(seeded, write=False)
    binary = Binary.authenticated(seeded, credential["username"], credential["password"])
    opaque = binary.next_opaque()
    size = 2 * MIB
    binary.send_raw(HEADER.pack(REQUEST, SET, 1, 8, 0, 0, 8 + 1 + size, opaque, 0))
    binary.send_raw(store_extras() + b"k" + b"x" * size)
    reply = binary.expect(SET, opaque)
    assert_error(reply, AUTH_ERROR)
    assert b"write" in reply.value
    assert binary.value_of(b"k") == b"value"


@pytest.mark.parametrize("opcode", [FLUSH, FLUSHQ], ids=op_id)
def test_flush_needs_the_flush_capability(seeded: CacheHandle, opcode: int) -> None:
    credential = add_credential(seeded, flush=False)
    binary = Binary.authenticated(seeded, credential["username"], credential["password"])
    (reply,) = binary.fenced((opcode, b"", u32(0)))
    assert reply.opcode == opcode
    assert_error(reply, AUTH_ERROR)
    assert b"flush" in reply.value
    assert binary.value_of(b"k") == b"value"
    assert binary.call(SET, b"other", store_extras(), b"x").status == OK  # writes still allowed


# -- flush logging and protocol interplay -------------------------------------------------
def test_binary_flush_is_logged_with_origin_and_the_sessions_proxy(
    service: RunningService, cache: CacheHandle
) -> None:
    binary = Binary.authenticated(cache)
    assert flush_events(service, cache) == []
    assert binary.call(FLUSH).status == OK
    assert binary.fenced((FLUSHQ,)) == []
    port = read_stats(binary, b"settings")[b"tcpport"].decode()
    (proxy,) = [h for h, a in service.listening.proxies.items() if a.endswith(f":{port}")]
    assert proxy.endswith(f".{cache.info['cluster']}.local.cachier.internal")
    assert flush_events(service, cache) == [("memcache client", proxy)] * 2


def test_refused_flush_is_not_logged(service: RunningService, cache: CacheHandle) -> None:
    credential = add_credential(cache, flush=False)
    binary = Binary.authenticated(cache, credential["username"], credential["password"])
    assert binary.call(FLUSH).status == AUTH_ERROR
    assert flush_events(service, cache) == []


def test_ascii_and_binary_sessions_see_the_same_items(cache: CacheHandle) -> None:
    wire = Wire.authenticated(cache)
    binary = Binary.authenticated(cache)
    assert wire.ask(b"set from-ascii 17 0 5\r\nhello\r\n") == b"STORED\r\n"
    got = binary.call(GET, b"from-ascii")
    assert (got.status, got.extras, got.value) == (OK, u32(17), b"hello")
    assert wire.ask(b"gets from-ascii\r\n") == b"VALUE from-ascii 17 5 %d\r\nhello\r\nEND\r\n" % (
        got.cas
    )
    cas = binary.set(b"from-binary", b"world", flags=23)
    assert wire.ask(b"gets from-binary\r\n") == (
        b"VALUE from-binary 23 5 %d\r\nworld\r\nEND\r\n" % cas
    )
    assert binary.call(INCR, b"counter", arith_extras(1, initial=40)).value == u64(40)
    assert wire.ask(b"incr counter 2\r\n") == b"42\r\n"
    assert binary.value_of(b"counter") == b"42"
    assert wire.ask(b"delete from-binary\r\n") == b"DELETED\r\n"
    assert binary.value_of(b"from-binary") is None
