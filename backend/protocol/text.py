"""Shared vocabulary of the text protocols (classic ASCII and meta): limits, replies, parsing."""

from __future__ import annotations

import re

from backend.protocol.commands import Mode, Outcome

MAX_KEY = 250
MAX_LINE = 2048
MAX_GET_LINE = 1024 * 1024
MAX_AUTH_DATA = 4096
# Before authentication the only line accepted is the auth set: "set", a username of at
# most MAX_KEY bytes, three numbers and "noreply" fit in well under this.
MAX_AUTH_LINE = 512
MAX_DATA_LEN = 2**31 - 3  # memcached's INT_MAX - 2 bound on <bytes>

CRLF = b"\r\n"
ERROR = b"ERROR\r\n"
END = b"END\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"
NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
LINE_TOO_LONG = b"CLIENT_ERROR line too long\r\n"
UNAUTHENTICATED = (
    b"CLIENT_ERROR unauthenticated: the first command must be "
    b"'set <username> <flags> <exptime> <bytes>' with the password as data\r\n"
)
BAD_AUTH_FORMAT = b"CLIENT_ERROR bad authentication token format\r\n"
OK = b"OK\r\n"
REPLIES = {o: o.value.encode() + CRLF for o in Outcome}
REPLIES[Outcome.TOO_LARGE] = TOO_LARGE
REPLIES[Outcome.NON_NUMERIC] = NON_NUMERIC

# Whole-server administration a tenant of a shared service may not run.
ADMIN_COMMANDS = (
    b"shutdown",
    b"slabs",
    b"lru",
    b"lru_crawler",
    b"watch",
    b"extstore",
    b"refresh_certs",
    b"misbehave",
    b"debugtime",
)

_BAD_KEY_CHAR = re.compile(rb"[\x00-\x20\x7f]").search
UINT32 = 0xFFFFFFFF
UINT64 = (1 << 64) - 1

STORAGE_MODES = {
    b"set": Mode.SET,
    b"add": Mode.ADD,
    b"replace": Mode.REPLACE,
    b"append": Mode.APPEND,
    b"prepend": Mode.PREPEND,
}


def bad_key(key: bytes) -> bool:
    """The product's rule: at most 250 bytes, no control characters (spaces cannot occur)."""
    return len(key) > MAX_KEY or _BAD_KEY_CHAR(key) is not None


def bad_key_lenient(key: bytes) -> bool:
    """memcached's own rule: only the length is checked (memcaslap's keys carry binary bytes)."""
    return len(key) > MAX_KEY


def parse_uint(token: bytes, limit: int) -> int | None:
    if not token.isdigit() or len(token) > 20:
        return None
    value = int(token)
    return value if value <= limit else None


def parse_int(token: bytes) -> int | None:
    """A signed decimal as strtol would take it (exptimes may be negative)."""
    digits = token[1:] if token[:1] == b"-" else token
    if not digits.isdigit() or len(digits) > 18:
        return None
    return int(token)
