"""A revoked credential's connection answers nothing more: the check is in commands.py, once.

Deleting a credential through the API also closes its sessions at once; these tests drive
a codec in-process to reach the check itself, as a session mid-batch would, in every
codec path: the ASCII and binary single-get fast paths, the general paths, meta, stats.
"""

from __future__ import annotations

import struct

import pytest

from backend.protocol.ascii import AsciiCodec
from backend.protocol.binary import BinaryCodec
from tests.backend.fuzzing import PASSWORD, USERNAME, FuzzTarget

HEADER = struct.Struct("!BBHBBHIIQ")


def ascii_codec(target: FuzzTarget) -> AsciiCodec:
    codec = target.codec(binary=False)
    assert isinstance(codec, AsciiCodec)
    auth = b"set %b 0 0 %d\r\n%b\r\n" % (USERNAME.encode(), len(PASSWORD), PASSWORD)
    assert codec.feed(auth) == b"STORED\r\n"
    assert codec.feed(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    return codec


def binary_codec(target: FuzzTarget) -> BinaryCodec:
    codec = target.codec(binary=True)
    assert isinstance(codec, BinaryCodec)
    plain = b"\0" + USERNAME.encode() + b"\0" + PASSWORD
    reply = codec.feed(HEADER.pack(0x80, 0x21, 5, 0, 0, 0, 5 + len(plain), 0, 0) + b"PLAIN" + plain)
    assert HEADER.unpack_from(reply)[5] == 0
    return codec


def revoke(target: FuzzTarget) -> None:
    target.dataplane.credentials[USERNAME].revoked = True


@pytest.mark.parametrize(
    "request_",
    [
        b"get k\r\n",
        b"get k\r\nget k\r\n",
        b"gets k\r\n",
        b"set k 0 0 1\r\nw\r\n",
        b"delete k\r\n",
        b"incr k 1\r\n",
        b"touch k 0\r\n",
        b"flush_all\r\n",
        b"stats\r\n",
        b"stats cachedump 1 0\r\n",
        b"mg k v\r\n",
        b"ms k 1\r\nw\r\n",
        b"md k\r\n",
        b"me k\r\n",
        b"cache_memlimit 10\r\n",
    ],
)
def test_revoked_credential_closes_an_ascii_connection_unanswered(request_: bytes) -> None:
    target = FuzzTarget()
    codec = ascii_codec(target)
    revoke(target)
    assert codec.feed(request_) == b""
    assert codec.closing


def test_revoked_credential_changes_nothing() -> None:
    target = FuzzTarget()
    codec = ascii_codec(target)
    reader = ascii_codec(target)
    revoke(target)
    codec.feed(b"set k 0 0 1\r\nw\r\n")
    target.dataplane.credentials[USERNAME].revoked = False
    assert reader.feed(b"get k\r\n") == b"VALUE k 0 1\r\nv\r\nEND\r\n"


@pytest.mark.parametrize("opcode", [0x00, 0x09, 0x0C, 0x01, 0x11, 0x04, 0x08, 0x10])
def test_revoked_credential_closes_a_binary_connection_unanswered(opcode: int) -> None:
    target = FuzzTarget()
    codec = binary_codec(target)
    revoke(target)
    extras = {0x01: b"\0" * 8, 0x11: b"\0" * 8}.get(opcode, b"")
    key = b"" if opcode in (0x08, 0x10) else b"k"
    value = b"v" if opcode in (0x01, 0x11) else b""
    body = extras + key + value
    packet = HEADER.pack(0x80, opcode, len(key), len(extras), 0, 0, len(body), 0, 0) + body
    assert codec.feed(packet) == b""
    assert codec.closing
