"""memcached's binary protocol: framing, opcodes, quiet rules and SASL PLAIN.

Like the ASCII codec it only translates: packets become calls of ``commands`` and their
outcomes become packets. Every response echoes the request's opcode and opaque. Memory
stays bounded: a packet is buffered only if its body fits an item; a larger storage
request is answered "too large" and its body skipped as it streams by; anything else that
large is malformed and closes the connection.

Keys are length-delimited in this protocol, so any byte may occur in them (memcached does
not restrict them either); only the 250-byte limit applies.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend import MEMCACHED_VERSION
from backend.protocol import commands
from backend.protocol.commands import (
    CapabilityDenied,
    ItemView,
    Mode,
    Outcome,
    Refused,
)
from backend.protocol.framing import Handoff, StreamCodec
from backend.session import AuthResult
from backend.store import MAX_ITEM_SIZE

if TYPE_CHECKING:
    from backend.session import AuthenticatedSession, Session

HEADER = struct.Struct("!BBHBBHIIQ")
HEADER_LEN = HEADER.size
REQUEST_MAGIC = 0x80
RESPONSE_MAGIC = 0x81
MAX_KEY = 250
MAX_BODY = MAX_ITEM_SIZE + 20 + MAX_KEY  # the largest value plus extras and key
MAX_UNAUTHENTICATED_BODY = 4096
FLAGS = struct.Struct("!I")
EXPIRY = struct.Struct("!I")
STORE_EXTRAS = struct.Struct("!II")
ARITH_EXTRAS = struct.Struct("!QQI")
COUNTER = struct.Struct("!Q")
NO_CREATE = 0xFFFFFFFF  # incr/decr expiration meaning "do not create on miss"

# Status codes.
SUCCESS = 0x00
KEY_ENOENT = 0x01
KEY_EEXISTS = 0x02
E2BIG = 0x03
EINVAL = 0x04
NOT_STORED = 0x05
DELTA_BADVAL = 0x06
AUTH_ERROR = 0x20
UNKNOWN_COMMAND = 0x81

MESSAGES = {
    KEY_ENOENT: b"Not found",
    KEY_EEXISTS: b"Data exists for key.",
    E2BIG: b"Too large.",
    EINVAL: b"Invalid arguments",
    NOT_STORED: b"Not stored.",
    DELTA_BADVAL: b"Non-numeric server-side value for incr or decr",
    AUTH_ERROR: b"Auth failure.",
    UNKNOWN_COMMAND: b"Unknown command",
}

# Opcodes.
GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH = range(0x00, 0x09)
GETQ, NOOP, VERSION, GETK, GETKQ, APPEND, PREPEND, STAT = range(0x09, 0x11)
SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ, QUITQ, FLUSHQ = range(0x11, 0x19)
APPENDQ, PREPENDQ, VERBOSITY, TOUCH, GAT, GATQ = range(0x19, 0x1F)
SASL_LIST_MECHS, SASL_AUTH, SASL_STEP, GATK, GATKQ = 0x20, 0x21, 0x22, 0x23, 0x24

# A quiet opcode is its base opcode with noreply, decided here once, as memcached's
# dispatch_bin_command does: handlers see the base opcode and ``noreply``; every reply
# still echoes the opcode of the request.
QUIET_BASE = {
    GETQ: GET,
    GETKQ: GETK,
    SETQ: SET,
    ADDQ: ADD,
    REPLACEQ: REPLACE,
    DELETEQ: DELETE,
    INCRQ: INCR,
    DECRQ: DECR,
    QUITQ: QUIT,
    FLUSHQ: FLUSH,
    APPENDQ: APPEND,
    PREPENDQ: PREPEND,
    GATQ: GAT,
    GATKQ: GATK,
}
QUIET = frozenset(QUIET_BASE)
WITH_KEY_IN_REPLY = frozenset({GETK, GETKQ, GATK, GATKQ})
FAST_GETS = frozenset({GET, GETQ, GETK, GETKQ})
STORAGE = {
    SET: Mode.SET,
    ADD: Mode.ADD,
    REPLACE: Mode.REPLACE,
    APPEND: Mode.APPEND,
    PREPEND: Mode.PREPEND,
}
PRE_AUTH = frozenset({SASL_LIST_MECHS, SASL_AUTH, SASL_STEP, VERSION})

# (extras lengths allowed, key: "required" | "optional" | "none", value allowed)
Shape = tuple[frozenset[int], str, bool]
SHAPES: dict[int, Shape] = {}
for _ops, _shape in (
    ((GET, GETQ, GETK, GETKQ), (frozenset({0}), "required", False)),
    ((SET, SETQ, ADD, ADDQ, REPLACE, REPLACEQ), (frozenset({8}), "required", True)),
    ((APPEND, APPENDQ, PREPEND, PREPENDQ), (frozenset({0}), "required", True)),
    ((DELETE, DELETEQ), (frozenset({0}), "required", False)),
    ((INCR, INCRQ, DECR, DECRQ), (frozenset({20}), "required", False)),
    ((QUIT, QUITQ, NOOP, VERSION, SASL_LIST_MECHS), (frozenset({0}), "none", False)),
    ((FLUSH, FLUSHQ), (frozenset({0, 4}), "none", False)),
    ((STAT,), (frozenset({0}), "optional", False)),
    ((VERBOSITY,), (frozenset({4}), "none", False)),
    ((TOUCH, GAT, GATQ, GATK, GATKQ), (frozenset({4}), "required", False)),
    ((SASL_AUTH, SASL_STEP), (frozenset({0}), "required", True)),
):
    for _op in _ops:
        SHAPES[_op] = _shape


def _shape_ok(shape: Shape, extlen: int, keylen: int, valuelen: int) -> bool:
    extras, key, value = shape
    if extlen not in extras or (valuelen and not value):
        return False
    return keylen > 0 if key == "required" else (keylen == 0 if key == "none" else True)


class BinaryCodec(StreamCodec):
    # Bound by a successful authentication; _dispatch runs no other handler before.
    auth: AuthenticatedSession

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.out: list[bytes] = []
        self.opcode = 0  # the request being answered: every reply echoes its opcode
        self.noreply = False  # it was quiet: success (a get: a miss) is not answered
        # Keyed by base opcode (see QUIET_BASE).
        self.handlers: dict[int, Callable[[int, bytes, bytes, bytes, int, int], None]] = {
            GET: self._get,
            GETK: self._get,
            GAT: self._gat,
            GATK: self._gat,
            SET: self._store,
            ADD: self._store,
            REPLACE: self._store,
            APPEND: self._store,
            PREPEND: self._store,
            INCR: self._arith,
            DECR: self._arith,
            DELETE: self._delete,
            TOUCH: self._touch,
            FLUSH: self._flush,
            NOOP: self._noop,
            VERSION: self._version,
            STAT: self._stat,
            VERBOSITY: self._noop,
            QUIT: self._quit,
            SASL_LIST_MECHS: self._list_mechs,
            SASL_AUTH: self._auth,
            SASL_STEP: self._step,
        }

    def release(self) -> None:
        super().release()
        self.handlers = {}
        self.out = []

    # -- framing ------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        if (
            len(data) > HEADER_LEN
            and data[1] in FAST_GETS
            and not self.buf
            and not self.swallow
            and self.session.auth is not None
        ):
            reply = self._get_one(data)
            if reply is not None:
                return reply
        joined = self._unbuffer(data)
        if joined is None:
            return b""
        data = joined
        out = self.out = []
        pos = 0
        end = len(data)
        while end - pos >= HEADER_LEN and not self.closing:
            magic, opcode, keylen, extlen, _, _, bodylen, opaque, cas = HEADER.unpack_from(
                data, pos
            )
            if magic != REQUEST_MAGIC:
                self.closing = True  # not a binary request: memcached closes too
                break
            self.opcode = opcode
            if keylen + extlen > bodylen or keylen > MAX_KEY:
                self._error(opaque, EINVAL if keylen > MAX_KEY else UNKNOWN_COMMAND)
                self.closing = True
                break
            limit = MAX_BODY if self.session.auth is not None else MAX_UNAUTHENTICATED_BODY
            if bodylen > limit:
                base = QUIET_BASE.get(opcode, opcode)
                if base not in STORAGE or not self.session.authenticated:
                    self._error(opaque, EINVAL)
                    self.closing = True
                    break
                head = HEADER_LEN + extlen + keylen
                if end - pos < head:
                    break  # wait for the key: a refused set must drop the old value
                key = data[pos + HEADER_LEN + extlen : pos + head]
                self._refuse_too_large(STORAGE[base], key, opaque)
                remaining = bodylen - extlen - keylen
                available = end - pos - head
                if available >= remaining:
                    pos += head + remaining
                    continue
                self.swallow = remaining - available
                pos = end
                break
            total = HEADER_LEN + bodylen
            if end - pos < total:
                self.need = total
                break
            body_start = pos + HEADER_LEN
            extras = data[body_start : body_start + extlen]
            key = data[body_start + extlen : body_start + extlen + keylen]
            value = data[body_start + extlen + keylen : pos + total]
            pos += total
            self._dispatch(opcode, keylen, extlen, extras, key, value, opaque, cas)
        if pos < end and not self.closing:
            self.buf += data[pos:]
        elif self.handoff is not None:  # what followed the authentication goes along
            self.handoff.request += data[pos:]
        return b"".join(out)

    def _get_one(self, data: bytes) -> bytes | None:
        """The hot path: a read holding exactly one well-formed Get-family request.

        Anything else (None) takes the general path, which applies the same rules.
        """
        magic, opcode, keylen, extlen, _, _, bodylen, opaque, _ = HEADER.unpack_from(data)
        if (
            magic != REQUEST_MAGIC
            or extlen
            or keylen != bodylen
            or bodylen != len(data) - HEADER_LEN
            or keylen > MAX_KEY
        ):
            return None
        key = data[HEADER_LEN:]
        try:
            item = commands.get(self.auth, key)
        except Refused:
            return None  # the general path answers it
        self.out = []
        self.opcode = opcode
        self.noreply = opcode in QUIET
        self._send_item(opcode in WITH_KEY_IN_REPLY, key, opaque, item)
        return b"".join(self.out)

    def _dispatch(
        self,
        opcode: int,
        keylen: int,
        extlen: int,
        extras: bytes,
        key: bytes,
        value: bytes,
        opaque: int,
        cas: int,
    ) -> None:
        session = self.session
        if session.auth is None and opcode not in PRE_AUTH:
            self._error(opaque, AUTH_ERROR)
            self.closing = True
            return
        base = QUIET_BASE.get(opcode)
        self.noreply = base is not None
        if base is None:
            base = opcode
        handler = self.handlers.get(base)
        if handler is None:
            self._error(opaque, UNKNOWN_COMMAND)
            if keylen or extlen or value:
                # memcached loses its place in the stream after an unknown request with a
                # body (it skips the wrong number of bytes) and ends up closing; close
                # cleanly, after the answer, rather than guess what the client meant.
                self.closing = True
            return
        if not _shape_ok(SHAPES[opcode], extlen, keylen, len(value)):
            self._error(opaque, EINVAL)
            self.closing = True
            return
        try:
            handler(base, key, extras, value, opaque, cas)
        except Refused as refused:
            self._refused(opaque, refused)

    def _refused(self, opaque: int, refused: Refused) -> None:
        if isinstance(refused, CapabilityDenied):
            self.auth.engine.stats.cmd_refused += 1
            self._error(opaque, AUTH_ERROR, refused.text().encode())
        else:  # CredentialRevoked
            self.closing = True

    # -- replies ------------------------------------------------------------------------
    def _reply(
        self, opaque: int, cas: int = 0, extras: bytes = b"", key: bytes = b"", value: bytes = b""
    ) -> None:
        body = len(extras) + len(key) + len(value)
        header = HEADER.pack(
            RESPONSE_MAGIC, self.opcode, len(key), len(extras), 0, SUCCESS, body, opaque, cas
        )
        self.out.append(header + extras + key + value)

    def _error(
        self, opaque: int, status: int, message: bytes | None = None, key: bytes = b""
    ) -> None:
        if message is None:  # a GetK miss carries its key instead of a message, as memcached
            message = b"" if key else MESSAGES.get(status, b"")
        text = message
        header = HEADER.pack(
            RESPONSE_MAGIC, self.opcode, len(key), 0, 0, status, len(key) + len(text), opaque, 0
        )
        self.out.append(header + key + text)

    # -- retrieval ----------------------------------------------------------------------
    def _get(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        self._send_item(opcode == GETK, key, opaque, commands.get(self.auth, key))

    def _gat(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        (exptime,) = EXPIRY.unpack(extras)
        item = commands.get_and_touch(self.auth, key, exptime)
        self._send_item(opcode == GATK, key, opaque, item)

    def _send_item(self, with_key: bool, key: bytes, opaque: int, item: ItemView | None) -> None:
        """A get's answer; quiet gets answer hits only."""
        if item is None:
            if not self.noreply:
                self._error(opaque, KEY_ENOENT, key=key if with_key else b"")
            return
        self._reply(opaque, item.cas, FLAGS.pack(item.flags), key if with_key else b"", item.value)

    def _touch(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        (exptime,) = EXPIRY.unpack(extras)
        item = commands.get_and_touch(self.auth, key, exptime)
        if item is None:
            self._error(opaque, KEY_ENOENT)
        else:
            self._reply(opaque, item.cas, FLAGS.pack(item.flags))

    # -- storage ------------------------------------------------------------------------
    def _store(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        mode = STORAGE[opcode]
        flags, exptime = STORE_EXTRAS.unpack(extras) if extras else (0, 0)
        if cas and extras:
            # As memcached: a Set, Add or Replace carrying a CAS is a compare-and-swap
            # whatever its opcode (so an Add with the item's CAS replaces it).
            mode = Mode.CAS
        outcome, new_cas = commands.store(self.auth, mode, key, value, flags, exptime, cas or None)
        if outcome is Outcome.STORED:
            if not self.noreply:
                self._reply(opaque, new_cas)
            return
        self._error(opaque, _store_status(mode, outcome))

    def _refuse_too_large(self, mode: Mode, key: bytes, opaque: int) -> None:
        try:
            commands.refuse_too_large(self.auth, mode, key)
        except Refused as refused:
            self._refused(opaque, refused)
            return
        self._error(opaque, E2BIG)

    def _delete(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        outcome = commands.delete(self.auth, key, cas or None)
        if outcome is Outcome.DELETED:
            if not self.noreply:
                self._reply(opaque)
            return
        self._error(opaque, KEY_ENOENT if outcome is Outcome.NOT_FOUND else KEY_EEXISTS)

    def _arith(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        delta, initial, exptime = ARITH_EXTRAS.unpack(extras)
        outcome, number, item = commands.arithmetic(
            self.auth,
            key,
            opcode == INCR,
            delta,
            initial=None if exptime == NO_CREATE else initial,
            exptime=exptime,
            compare_cas=cas or None,
        )
        if item is not None:  # stored
            if not self.noreply:
                self._reply(opaque, item.cas, value=COUNTER.pack(number))
            return
        status = {
            Outcome.NOT_FOUND: KEY_ENOENT,
            Outcome.EXISTS: KEY_EEXISTS,
            Outcome.NON_NUMERIC: DELTA_BADVAL,
        }[outcome]
        self._error(opaque, status)

    # -- whole cache and connection -----------------------------------------------------
    def _flush(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        delay = EXPIRY.unpack(extras)[0] if extras else 0
        commands.flush_all(self.auth, delay)
        if not self.noreply:
            self._reply(opaque)

    def _noop(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        self._reply(opaque)

    def _version(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        self._reply(opaque, value=MEMCACHED_VERSION.encode())

    def _stat(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        sub = key.decode("ascii", "replace")
        if sub == "reset":
            commands.reset_stats(self.auth)
        else:
            rows = commands.stats(self.auth, sub)
            if rows is None:
                self._error(opaque, KEY_ENOENT)
                return
            for name, stat in rows:
                self._reply(opaque, key=name.encode(), value=stat.encode())
        self._reply(opaque)

    def _quit(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        if not self.noreply:
            self._reply(opaque)
        self.closing = True

    # -- SASL ---------------------------------------------------------------------------
    def _list_mechs(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        # The trailing separator is for libmemcached, which passes the list on to libsasl2
        # as a C string without terminating it: "PLAIN" followed by whatever its stack
        # held was no mechanism at all ("No worthy mechs found", pylibmc error 40).
        self._reply(opaque, value=b"PLAIN ")

    def _auth(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        """PLAIN (RFC 4616): ``[authzid] NUL authcid NUL password``; authcid logs in."""
        parts = value.split(b"\0")
        if key != b"PLAIN" or len(parts) != 3:
            self._error(opaque, AUTH_ERROR)
            return
        username, password = parts[1], parts[2]
        session = self.session
        if session.auth is not None:
            if session.is_own_credential(username, password):
                self._reply(opaque, value=b"Authenticated")
            else:
                self._error(opaque, AUTH_ERROR, b"Auth failure: already authenticated")
            return
        result = session.authenticate(username, password, "binary")
        if result is AuthResult.RELAY:  # the remote proxy answers this request, and the rest
            self._relay(opcode, key, extras, value, opaque, cas)
        elif result is AuthResult.OK:
            assert session.auth is not None
            self.auth = session.auth
            self._reply(opaque, value=b"Authenticated")
        else:
            self._error(opaque, AUTH_ERROR, b"Auth failure: " + result.value.encode())

    def _step(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        self._error(opaque, AUTH_ERROR)  # PLAIN has no second step

    def _relay(
        self, opcode: int, key: bytes, extras: bytes, value: bytes, opaque: int, cas: int
    ) -> None:
        """Hand the connection over, with the SASL request as the client sent it (its
        datatype and vbucket fields, which memcached ignores here, are sent as 0)."""
        body = len(extras) + len(key) + len(value)
        header = HEADER.pack(REQUEST_MAGIC, opcode, len(key), len(extras), 0, 0, body, opaque, cas)
        self._error(opaque, AUTH_ERROR, b"Auth failure: " + AuthResult.UNAVAILABLE.value.encode())
        unavailable = self.out.pop()  # sent only if no proxy of the cluster can be reached
        self.handoff = Handoff(header + extras + key + value, unavailable)
        self.closing = True


def _store_status(mode: Mode, outcome: Outcome) -> int:
    """Binary storage statuses differ from ASCII's NOT_STORED, as in memcached."""
    if outcome is Outcome.TOO_LARGE:
        return E2BIG
    if outcome is Outcome.EXISTS:
        return KEY_EEXISTS
    if outcome is Outcome.NOT_FOUND:
        # An append/prepend with a CAS on a missing key is "not stored", as without one.
        return NOT_STORED if mode in (Mode.APPEND, Mode.PREPEND) else KEY_ENOENT
    if mode is Mode.ADD:
        return KEY_EEXISTS
    if mode is Mode.REPLACE:
        return KEY_ENOENT
    return NOT_STORED
