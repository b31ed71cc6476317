"""Counters each counted in one place, whatever the protocol: auth_cmds, cmd_meta.

In-process codecs (no sockets): the counts are read from the cache's own ``stats``.
"""

from __future__ import annotations

import pytest

from backend.protocol.ascii import AsciiCodec
from tests.backend.fuzzing import PASSWORD, USERNAME, FuzzTarget
from tests.backend.test_revocation import HEADER, ascii_codec, binary_codec


def stats_of(codec: AsciiCodec) -> dict[bytes, bytes]:
    lines = codec.feed(b"stats\r\n").split(b"\r\n")
    return {p[1]: p[2] for p in (line.split(b" ") for line in lines) if p[0] == b"STAT"}


def test_auth_cmds_counts_every_authentication_of_both_protocols() -> None:
    target = FuzzTarget()
    ascii_codec(target)
    binary_codec(target)
    assert stats_of(ascii_codec(target))[b"auth_cmds"] == b"3"


@pytest.mark.parametrize(
    ("request_", "counted"),
    [
        (b"mg k v\r\n", 1),
        (b"ms k 1\r\nv\r\n", 1),
        (b"md k\r\n", 1),
        (b"ma k\r\n", 1),
        (b"ms k 1 Mzz\r\nv\r\n", 1),
        (b"ms k\r\n", 1),
        (b"mg\r\n", 0),
        (b"ms\r\n", 0),
        (b"mn\r\n", 0),
    ],
)
def test_cmd_meta_counts_each_meta_command_with_a_key_once(request_: bytes, counted: int) -> None:
    codec = ascii_codec(FuzzTarget())
    before = int(stats_of(codec)[b"cmd_meta"])
    codec.feed(request_)
    assert int(stats_of(codec)[b"cmd_meta"]) - before == counted


def sasl_auth(username: bytes, password: bytes) -> bytes:
    plain = b"\0" + username + b"\0" + password
    return HEADER.pack(0x80, 0x21, 5, 0, 0, 0, 5 + len(plain), 7, 0) + b"PLAIN" + plain


@pytest.mark.parametrize(
    ("username", "password", "status"),
    [
        (USERNAME.encode(), PASSWORD, 0x00),
        (USERNAME.encode(), PASSWORD[:-1] + b"x", 0x20),
        (b"FUZZREADER", PASSWORD, 0x20),
        (USERNAME.encode()[:-1], PASSWORD, 0x20),
    ],
)
def test_binary_reauthentication_succeeds_only_with_the_connections_own_credential(
    username: bytes, password: bytes, status: int
) -> None:
    codec = binary_codec(FuzzTarget())
    reply = codec.feed(sasl_auth(username, password))
    assert HEADER.unpack_from(reply)[5] == status
    assert not codec.closing
