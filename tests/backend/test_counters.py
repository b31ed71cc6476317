"""Counters each counted in one place, whatever the protocol: auth_cmds, cmd_meta.

In-process codecs (no sockets): the counts are read from the cache's own ``stats``.
"""

from __future__ import annotations

import pytest

from backend.protocol.ascii import AsciiCodec
from tests.backend.fuzzing import FuzzTarget
from tests.backend.test_revocation import ascii_codec, binary_codec


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
    [(b"mg k v\r\n", 1), (b"ms k 1\r\nv\r\n", 1), (b"md k\r\n", 1), (b"ma k\r\n", 1),
     (b"ms k 1 Mzz\r\nv\r\n", 1), (b"ms k\r\n", 1), (b"mg\r\n", 0), (b"ms\r\n", 0),
     (b"mn\r\n", 0)],
)  # fmt: skip
def test_cmd_meta_counts_each_meta_command_with_a_key_once(request_: bytes, counted: int) -> None:
    codec = ascii_codec(FuzzTarget())
    before = int(stats_of(codec)[b"cmd_meta"])
    codec.feed(request_)
    assert int(stats_of(codec)[b"cmd_meta"]) - before == counted
