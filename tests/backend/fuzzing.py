"""Protocol fuzzing of both codecs: generated request streams, fed in random pieces.

One generator serves three harnesses: the CI test (hypothesis drives the ``random.Random``
it is given, so a failure shrinks to a small stream), ``bench/fuzz.py`` in-process (a
seeded generator, a million inputs a protocol) and ``bench/fuzz.py --socket`` against a
live backend. Streams mix well-formed commands with every argument drawn from the values
that break parsers (negative, huge, non-numeric, empty, over-long keys, control bytes),
declared lengths that lie, mutations of the bytes, and random splits across reads.

The invariants checked for each codec: ``feed`` never raises (a bug ends in the
connection's SERVER_ERROR at worst, see ``listeners.handler_failed``), it always returns
bytes, and what it buffers stays under the bound for its state (before authentication
only the auth ``set`` may be held).

The bench script imports it from here (it puts the repository on ``sys.path``).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.control.models import Cache, Credential
from backend.dataplane import DataPlane
from backend.protocol.ascii import AsciiCodec
from backend.protocol.binary import SHAPES, BinaryCodec
from backend.session import Session
from backend.throttle import AuthThrottle
from backend.topology import default_topology

USERNAME, PASSWORD = "FUZZUSER01", b"0123456789abcdef0123456789abcdef"
READER, READER_PASSWORD = "FUZZREADER", b"fedcba9876543210fedcba9876543210"
# What a codec may hold between reads: before authentication only the auth line and its
# data; after it a multi-get line (1 MiB) or one item (1 MiB) plus its command line.
PRE_AUTH_BUFFER_MAX = 8 * 1024
BUFFER_MAX = 2 * 1024 * 1024 + 4096

NUMBERS = [
    b"0",
    b"1",
    b"-1",
    b"2",
    b"10",
    b"100",
    b"4294967295",
    b"4294967296",
    b"18446744073709551615",
    b"18446744073709551616",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"2592000",
    b"2592001",
    b"abc",
    b"",
    b"1e5",
    b"-0",
    b"+5",
    b"0x10",
    b" ",
    b"99999999999999999999999",
]
ASCII_VERBS = [
    b"set",
    b"add",
    b"replace",
    b"append",
    b"prepend",
    b"cas",
    b"get",
    b"gets",
    b"gat",
    b"gats",
    b"delete",
    b"incr",
    b"decr",
    b"touch",
    b"flush_all",
    b"version",
    b"verbosity",
    b"stats",
    b"cache_memlimit",
    b"mg",
    b"ms",
    b"md",
    b"ma",
    b"mn",
    b"me",
    b"quit",
    b"shutdown",
    b"lru_crawler",
    b"watch",
    b"GET",
    b"bogus",
    b"",
]
META_FLAGS = b"bcfhklOqstvENRTIMDJSCPLxZ"
STATS = [
    b"",
    b"items",
    b"slabs",
    b"settings",
    b"sizes",
    b"conns",
    b"reset",
    b"detail",
    b"cachedump",
    b"cachedump 1 0",
    b"cachedump 1 5",
    b"cachedump 99 1",
    b"nope",
]


@dataclass
class FuzzTarget:
    """A data plane with one cache and a writer and a read-only credential: what a codec
    needs to run every command, without sockets or an event loop."""

    dataplane: DataPlane = field(init=False)

    def __post_init__(self) -> None:
        dataplane = DataPlane(default_topology(), AuthThrottle(limit=10**9, user_limit=10**9))
        cluster = next(iter(dataplane.topology.clusters()))
        cache = Cache("cfuzz", "fuzz", "free", cluster.region, cluster.name)
        for username, password, write in (
            (USERNAME, PASSWORD, True),
            (READER, READER_PASSWORD, False),
        ):
            credential = Credential(username, password, cache.id, write=write, flush=write)
            cache.credentials.append(credential)
            dataplane.credentials[username] = credential
        dataplane.caches[cache.id] = cache
        self.dataplane = dataplane
        self.region = cluster.region

    def codec(self, binary: bool) -> AsciiCodec | BinaryCodec:
        session = Session(self.dataplane, "127.0.0.1", self.region, lambda: None)
        return BinaryCodec(session) if binary else AsciiCodec(session)


class InvariantBroken(AssertionError):
    """A codec did what it must never do; the message says what, the input is attached."""


def feed_all(codec: AsciiCodec | BinaryCodec, chunks: list[bytes]) -> int:
    """Feed every chunk until the codec closes; returns the bytes it answered."""
    answered = 0
    for chunk in chunks:
        if codec.closing:
            break
        try:
            reply = codec.feed(chunk)
        except Exception as exc:
            raise InvariantBroken(f"feed raised {type(exc).__name__}: {exc}") from exc
        if not isinstance(reply, bytes):
            raise InvariantBroken(f"feed returned {type(reply).__name__}")
        answered += len(reply)
        limit = BUFFER_MAX if codec.session.authenticated else PRE_AUTH_BUFFER_MAX
        if len(codec.buf) > limit:
            raise InvariantBroken(f"buffered {len(codec.buf)} bytes (limit {limit})")
    codec.release()  # as the listener does when the connection goes
    codec.session.connection_lost()
    return answered


# -- streams ------------------------------------------------------------------------------
def _key(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.7:
        return b"k%d" % rng.randrange(5)  # few keys: commands meet each other's items
    if roll < 0.8:
        return b"x" * rng.choice([0, 249, 250, 251, 300])
    if roll < 0.9:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
    return rng.choice([b"", b" ", b"\r", b"k\x00", b"k\x7f", b"\xff\xfe", b"k%d" % 1])


def _number(rng: random.Random) -> bytes:
    return rng.choice(NUMBERS) if rng.random() < 0.6 else b"%d" % rng.randrange(-5, 70)


@dataclass(frozen=True)
class Logins:
    """Who the generated streams log in as: a writer and a read-only credential."""

    writer: tuple[str, bytes] = (USERNAME, PASSWORD)
    reader: tuple[str, bytes] = (READER, READER_PASSWORD)


LOGINS = Logins()


def _ascii_auth(rng: random.Random, logins: Logins, reader: bool = False) -> bytes:
    user, password = logins.reader if reader else logins.writer
    noreply = b" noreply" if rng.random() < 0.5 else b""
    return b"set %s 0 0 %d%s\r\n%s\r\n" % (user.encode(), len(password), noreply, password)


# Storage and meta commands are where items change state: drawn more often.
FREQUENT_VERBS = [
    b"set",
    b"set",
    b"add",
    b"cas",
    b"append",
    b"incr",
    b"get",
    b"gat",
    b"mg",
    b"mg",
    b"mg",
    b"ms",
    b"ms",
    b"md",
    b"ma",
    b"touch",
    b"delete",
]


def _ascii_command(rng: random.Random) -> bytes:
    verb = rng.choice(FREQUENT_VERBS) if rng.random() < 0.6 else rng.choice(ASCII_VERBS)
    noreply = b" noreply" if rng.random() < 0.2 else b""
    if verb in (b"set", b"add", b"replace", b"append", b"prepend", b"cas"):
        data = bytes(rng.randrange(48, 58) for _ in range(rng.choice([0, 1, 3, 10, 50])))
        declared = len(data) if rng.random() < 0.85 else int(rng.choice([b"0", b"2", b"5"]))
        args = [_key(rng), _number(rng), _number(rng), b"%d" % declared]
        if verb == b"cas":
            args.append(_number(rng))
        ending = b"\r\n" if rng.random() < 0.9 else rng.choice([b"\n", b"", b"\r\r\n"])
        return verb + b" " + b" ".join(args) + noreply + b"\r\n" + data + ending
    if verb in (b"get", b"gets"):
        return verb + b" " + b" ".join(_key(rng) for _ in range(rng.randrange(0, 4))) + b"\r\n"
    if verb in (b"gat", b"gats"):
        keys = b" ".join(_key(rng) for _ in range(rng.randrange(0, 3)))
        return verb + b" " + _number(rng) + b" " + keys + b"\r\n"
    if verb in (b"delete", b"touch", b"incr", b"decr"):
        extra = b" " + _number(rng) if verb != b"delete" or rng.random() < 0.3 else b""
        return verb + b" " + _key(rng) + extra + noreply + b"\r\n"
    if verb in (b"flush_all", b"verbosity", b"cache_memlimit"):
        argument = b" " + _number(rng) if rng.random() < 0.6 else b""
        return verb + argument + noreply + b"\r\n"
    if verb == b"stats":
        return b"stats " + rng.choice(STATS) + b"\r\n"
    if verb in (b"mg", b"ms", b"md", b"ma", b"me"):
        flags = []
        for _ in range(rng.randrange(0, 5)):
            flag = bytes([rng.choice(META_FLAGS)])
            flags.append(flag + (_number(rng) if rng.random() < 0.5 else b""))
        flag_text = b"".join(b" " + f for f in flags)
        if verb == b"ms":  # ms <key> <datalen> <flags>*, then the data
            data = b"v" * rng.choice([0, 1, 5])
            declared = len(data) if rng.random() < 0.85 else _number(rng)
            length = b"%d" % declared if isinstance(declared, int) else declared
            return b"ms %s %s%s\r\n%s\r\n" % (_key(rng), length, flag_text, data)
        return verb + b" " + _key(rng) + flag_text + b"\r\n"
    return verb + b"\r\n"


def _mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        if not data:
            break
        where = rng.randrange(len(data))
        roll = rng.random()
        if roll < 0.4:
            data[where] = rng.randrange(256)
        elif roll < 0.7:
            data[where:where] = rng.choice([b"\r\n", b"\n", b" ", b"\x00", b"9" * 12])
        else:
            del data[where : where + rng.randrange(1, 8)]
    return bytes(data)


def _split(rng: random.Random, stream: bytes) -> list[bytes]:
    """The stream as a client's reads would deliver it: whole, or in random pieces."""
    if rng.random() < 0.4 or len(stream) < 2:
        return [stream]
    cuts = sorted(rng.sample(range(1, len(stream)), min(rng.randrange(1, 6), len(stream) - 1)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]


def ascii_stream(
    rng: random.Random, commands: int, logins: Logins = LOGINS
) -> tuple[list[bytes], bool]:
    """(chunks, authenticates first): a stream of ``commands`` ASCII inputs."""
    authenticated = rng.random() < 0.8
    parts = [_ascii_auth(rng, logins, reader=rng.random() < 0.3)] if authenticated else []
    for _ in range(commands):
        command = _ascii_command(rng)
        parts.append(_mutate(rng, command) if rng.random() < 0.15 else command)
    return _split(rng, b"".join(parts)), authenticated


# Binary: opcodes of memcached 1.6 (0x00-0x24 less the gaps) and a few beyond.
HEADER = struct.Struct(">BBHBBHIIQ")
OPCODES = list(range(0x00, 0x25)) + [0x30, 0x3D, 0xFF]
KNOWN_OPCODES = sorted(SHAPES)
QUITS = (0x07, 0x17)


def _binary_request(rng: random.Random) -> bytes:
    """Mostly requests of the shape their opcode wants (so the codec goes deep, past its
    framing checks), sometimes any shape, length or magic at all."""
    opcode = rng.choice(KNOWN_OPCODES) if rng.random() < 0.95 else rng.choice(OPCODES)
    if opcode in QUITS and rng.random() < 0.9:  # a quit ends the stream: keep it rare
        opcode = rng.choice(KNOWN_OPCODES)
    shape = SHAPES.get(opcode)
    well_formed = shape is not None and rng.random() < 0.97
    if well_formed:
        assert shape is not None
        extras_allowed, key_rule, value_allowed = shape
        extlen = rng.choice(sorted(extras_allowed))
        key = (
            b""
            if key_rule == "none"
            else _key(rng)
            if rng.random() < 0.1
            else b"k%d" % (rng.randrange(5))
        )
        value = b"9" * rng.choice([0, 1, 5, 20]) if value_allowed else b""
    else:
        extlen = rng.choice([0, 4, 8, 12, 20, 3])
        key = _key(rng) if rng.random() < 0.8 else b""
        value = b"9" * rng.choice([0, 0, 1, 5, 20])
    extras = bytes(rng.randrange(256) for _ in range(extlen))
    if extlen in (4, 8) and rng.random() < 0.7:  # flags and an expiry that means something
        expiry = rng.choice([0, 1, 100, 2**31, 2**32 - 1])
        extras = struct.pack(">II", 0, expiry) if extlen == 8 else struct.pack(">I", expiry)
    if extlen == 20 and rng.random() < 0.7:  # incr/decr: delta, initial, expiry
        extras = struct.pack(
            ">QQI",
            rng.choice([0, 1, 2**64 - 1]),
            rng.choice([0, 5]),
            rng.choice([0, 0xFFFFFFFF, 100]),
        )
    body = len(extras) + len(key) + len(value)
    if not well_formed and rng.random() < 0.3:
        body = rng.choice([0, body - 1, body + 1, 2**32 - 1, 2**20 + 100])
    magic = 0x80 if well_formed or rng.random() < 0.9 else rng.randrange(256)
    cas = 0 if rng.random() < 0.7 else rng.randrange(2**64)
    header = HEADER.pack(
        magic,
        opcode,
        min(len(key), 0xFFFF),
        extlen,
        0,
        0,
        max(body, 0) & 0xFFFFFFFF,
        rng.randrange(2**32),
        cas,
    )
    return header + extras + key + value


def _binary_auth(rng: random.Random, logins: Logins, reader: bool = False) -> bytes:
    user, password = logins.reader if reader else logins.writer
    key, value = b"PLAIN", b"\x00" + user.encode() + b"\x00" + password
    if rng.random() < 0.1:
        value = value[:-1]  # a wrong password
    return HEADER.pack(0x80, 0x21, len(key), 0, 0, 0, len(key) + len(value), 0, 0) + key + value


def binary_stream(
    rng: random.Random, commands: int, logins: Logins = LOGINS
) -> tuple[list[bytes], bool]:
    authenticated = rng.random() < 0.8
    parts = [_binary_auth(rng, logins, reader=rng.random() < 0.3)] if authenticated else []
    for _ in range(commands):
        request = _binary_request(rng)
        parts.append(_mutate(rng, request) if rng.random() < 0.03 else request)
    return _split(rng, b"".join(parts)), authenticated


STREAMS: dict[str, Callable[[random.Random, int, Logins], tuple[list[bytes], bool]]] = {
    "ascii": ascii_stream,
    "binary": binary_stream,
}


def run_case(target: FuzzTarget, protocol: str, rng: random.Random, commands: int) -> int:
    """One generated connection through a fresh codec; InvariantBroken on a violation."""
    chunks, _ = STREAMS[protocol](rng, commands, LOGINS)
    codec = target.codec(binary=protocol == "binary")
    try:
        return feed_all(codec, chunks)
    except InvariantBroken as broken:
        broken.args = (f"{broken.args[0]}; input {b''.join(chunks)[:2000]!r}",)
        raise
