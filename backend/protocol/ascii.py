"""memcached's ASCII protocol: framing, parsing and replies; semantics are in commands.py.

One codec per connection. ``feed`` takes the bytes of one ``data_received`` and returns the
bytes to write back (all replies of a pipelined batch in one write). Lines may end in
``\\n`` or ``\\r\\n``; data blocks must end in ``\\r\\n``. Memory stays bounded: a line may
not exceed ``MAX_LINE`` (``MAX_GET_LINE`` for multi-gets), a data block is buffered only up
to the item size limit and anything larger is swallowed as it streams by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from backend import MEMCACHED_VERSION
from backend.protocol import commands, stats
from backend.protocol.commands import CapabilityDenied, CredentialRevoked, Mode, Outcome, Refused
from backend.protocol.framing import Handoff, StreamCodec
from backend.protocol.meta import MetaCommands
from backend.protocol.text import (
    ADMIN_COMMANDS,
    BAD_AUTH_FORMAT,
    BAD_CHUNK,
    BAD_DELTA,
    BAD_EXPTIME,
    BAD_FORMAT,
    CRLF,
    END,
    ERROR,
    LINE_TOO_LONG,
    MAX_AUTH_DATA,
    MAX_AUTH_LINE,
    MAX_DATA_LEN,
    MAX_GET_LINE,
    MAX_LINE,
    OK,
    REPLIES,
    STORAGE_MODES,
    TOO_LARGE,
    UINT32,
    UINT64,
    UNAUTHENTICATED,
    bad_key,
    bad_key_lenient,
    parse_int,
    parse_uint,
)
from backend.session import AuthResult

if TYPE_CHECKING:
    from backend.session import AuthenticatedSession, Session


# ASCII names a refused flush by its command; other refusals name the capability.
DENIED_COMMANDS = {"flush": "flush_all"}


def denied_reply(denied: CapabilityDenied) -> bytes:
    return b"CLIENT_ERROR %b\r\n" % denied.text(DENIED_COMMANDS.get(denied.capability)).encode()


class AsciiCodec(StreamCodec):
    # Bound by a successful authentication; only the command table installed then uses it.
    auth: AuthenticatedSession

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.out: list[bytes] = []
        self.noreply = False
        self.pending: Callable[[bytes], None] | None = None  # awaits a data block
        self.pending_need = 0  # its length including the trailing CRLF
        self.handlers: dict[bytes, Callable[[list[bytes]], None]] = {b"set": self._auth_set}
        self.commands: dict[bytes, Callable[[list[bytes]], None]] | None = None  # once authed
        self.bad_key = bad_key_lenient if session.dataplane.lenient_keys else bad_key
        self.meta = MetaCommands(self)

    def release(self) -> None:
        super().release()
        self.handlers = {}
        self.commands = None
        self.pending = None
        self.out = []
        del self.meta  # it points back at this codec

    # -- framing ------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        if (
            data[:4] == b"get "
            and self.handlers is self.commands
            and data.find(b"\n") == len(data) - 1
            and not self.buf
            and self.pending is None
            and not self.swallow
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
        while pos < end and not self.closing:
            if self.pending is not None:
                need = self.pending_need
                if end - pos < need:
                    break
                handler, self.pending = self.pending, None
                block = data[pos : pos + need]
                pos += need
                self._run(handler, block)
                continue
            if self.swallow:
                skipped = min(self.swallow, end - pos)
                pos += skipped
                self.swallow -= skipped
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            line = data[pos:nl]
            short = nl - pos < 3  # under 4 bytes with its newline
            pos = nl + 1
            if line[-1:] == b"\r":
                line = line[:-1]
            if short and self.handlers is self.commands:
                out.append(BAD_FORMAT)  # as memcached >= 1.6.4x: too short to be a command
                continue
            self._dispatch(line)
        if pos < end and not self.closing:
            rest = data[pos:] if pos else data
            if self.pending is None and len(rest) > self._line_limit(rest):
                out.append(LINE_TOO_LONG)
                self.closing = True
            else:
                self.buf += rest
                if self.pending is not None:
                    self.need = self.pending_need
        elif self.handoff is not None:  # what followed the authentication goes along
            self.handoff.request += data[pos:]
        reply = b"".join(out)
        out.clear()  # sent: a failure in a later read must not send these replies again
        return reply

    def _get_one(self, data: bytes) -> bytes | None:
        """The hot path: a packet holding exactly one single-key ``get``.

        Same semantics as the general path (which handles anything unusual: it answers
        None here), minus tokenizing and dispatch — most traffic is exactly this.
        """
        key = data[4:-2] if data[-2:] == CRLF else data[4:-1]
        if not key or b" " in key or self.bad_key(key):
            return None
        try:
            item = commands.get(self.auth, key)
        except Refused:
            return None  # the general path answers it
        if item is None:
            reply = END
        else:
            value = item.value
            reply = b"VALUE %b %d %d\r\n%b\r\nEND\r\n" % (key, item.flags, len(value), value)
        return reply

    def _line_limit(self, partial_line: bytes) -> int:
        """How long an unfinished line may grow: before authentication an unauthenticated
        peer may make us hold no more than the auth set's line needs."""
        if self.handlers is not self.commands:
            return MAX_AUTH_LINE
        head = partial_line[:5]
        if head.startswith((b"get ", b"gets ", b"gat ", b"gats ")):
            return MAX_GET_LINE
        return MAX_LINE

    def _dispatch(self, line: bytes) -> None:
        tokens = line.split(b" ")
        if b"" in tokens:
            if not tokens[0] and self.handlers is self.commands:
                # memcached >= 1.6.4x reads the command name up to the first space: a line
                # starting with one names no command.
                self.out.append(ERROR)
                return
            tokens = [t for t in tokens if t]
            if not tokens:
                self._unknown([b""])  # a blank line: ERROR, or the end of an unauthenticated one
                return
        handler = self.handlers.get(tokens[0])
        if handler is None:
            self._unknown(tokens)
            return
        self.noreply = False
        self._run(handler, tokens)

    def _run(self, handler: Callable, arg: object) -> None:
        try:
            handler(arg)
        except CredentialRevoked:
            self.closing = True
        except CapabilityDenied as denied:
            self.auth.engine.stats.cmd_refused += 1  # only an authenticated session is denied
            self.out.append(denied_reply(denied))
            if self.noreply:
                # The client reads no reply to this command: close rather than leave an
                # unexpected line in its stream, so it reconnects and sees the error.
                self.closing = True

    def _unknown(self, tokens: list[bytes]) -> None:
        if not self.session.authenticated:
            self.out.append(UNAUTHENTICATED)
            self.closing = True
        elif tokens[-1].startswith(b"HTTP/"):
            self.closing = True  # memcached silently drops HTTP requests
        elif tokens[0] in ADMIN_COMMANDS:
            self.out.append(
                b"CLIENT_ERROR %b is not available on a shared cache service\r\n" % tokens[0]
            )
        else:
            self.out.append(ERROR)

    # -- what meta.py builds on ----------------------------------------------------------
    def reply(self, data: bytes) -> None:
        """Queue ``data`` for this read's single write."""
        self.out.append(data)

    def expect_data(self, length: int, handler: Callable[[bytes], None]) -> None:
        """Run ``handler`` on the next ``length`` bytes and their CRLF, once they arrived."""
        self.pending = handler
        self.pending_need = length + 2

    def skip_data(self, length: int) -> None:
        """Drop the data block of a refused storage command, keeping the stream in step."""
        self.swallow = length + 2

    # -- authentication -----------------------------------------------------------------
    def _auth_set(self, tokens: list[bytes]) -> None:
        """``set <username> <flags> <exptime> <bytes> [noreply]`` + password as data."""
        length = parse_uint(tokens[4], MAX_DATA_LEN) if len(tokens) in (5, 6) else None
        if length is None:
            self.out.append(UNAUTHENTICATED)
            self.closing = True
            return
        if length > MAX_AUTH_DATA:
            self.out.append(BAD_AUTH_FORMAT)
            self.closing = True
            return
        noreply = len(tokens) == 6 and tokens[5] == b"noreply"
        username = tokens[1]
        line = b" ".join(tokens) + CRLF
        self.expect_data(length, lambda block: self._auth_finish(username, block, noreply, line))

    def _auth_finish(self, username: bytes, block: bytes, noreply: bool, line: bytes) -> None:
        if block[-2:] != CRLF:
            self.out.append(BAD_AUTH_FORMAT)
            self.closing = True
            return
        result = self.session.authenticate(username, block[:-2])
        if result is AuthResult.RELAY:  # the remote proxy answers this set, and the rest
            unavailable = b"CLIENT_ERROR %b\r\n" % AuthResult.UNAVAILABLE.value.encode()
            self.handoff = Handoff(line + block, unavailable)
            self.closing = True
            return
        if result is not AuthResult.OK:
            self.out.append(b"CLIENT_ERROR %b\r\n" % result.value.encode())
            self.closing = True
            return
        assert self.session.auth is not None
        self.auth = self.session.auth
        self.handlers = self.commands = self._command_table()
        if not noreply:
            self.out.append(b"STORED\r\n")

    def _command_table(self) -> dict[bytes, Callable[[list[bytes]], None]]:
        table: dict[bytes, Callable[[list[bytes]], None]] = {
            b"get": self._get,
            b"gets": self._gets,
            b"gat": self._gat,
            b"gats": self._gats,
            b"cas": self._storage,
            b"incr": self._incr,
            b"decr": self._decr,
            b"delete": self._delete,
            b"touch": self._touch,
            b"flush_all": self._flush_all,
            b"stats": self._stats,
            b"version": self._version,
            b"verbosity": self._verbosity,
            b"cache_memlimit": self._cache_memlimit,
            b"quit": self._quit,
        }
        for name in STORAGE_MODES:
            table[name] = self._storage
        table.update(self._first_meta(self.meta.table()))
        return table

    def _first_meta(
        self, meta: dict[bytes, Callable[[list[bytes]], None]]
    ) -> dict[bytes, Callable[[list[bytes]], None]]:
        """The meta commands, each wrapped once: the session's first meta command marks
        its authentication as ``meta`` (``backend.activity``), then puts the plain
        handlers in the table, so later meta commands pay nothing for it."""

        def first(name: bytes) -> Callable[[list[bytes]], None]:
            def run(tokens: list[bytes]) -> None:
                self.auth.speaks_meta()
                if self.commands is not None:
                    self.commands.update(meta)  # in place: ``handlers`` is the same dict
                meta[name](tokens)

            return run

        return {name: first(name) for name in meta}

    # -- retrieval ----------------------------------------------------------------------
    def _get(self, tokens: list[bytes]) -> None:
        self._retrieve(tokens, 1, with_cas=False, exptime=None)

    def _gets(self, tokens: list[bytes]) -> None:
        self._retrieve(tokens, 1, with_cas=True, exptime=None)

    def _gat(self, tokens: list[bytes]) -> None:
        self._touch_retrieve(tokens, with_cas=False)

    def _gats(self, tokens: list[bytes]) -> None:
        self._touch_retrieve(tokens, with_cas=True)

    def _touch_retrieve(self, tokens: list[bytes], with_cas: bool) -> None:
        if len(tokens) < 3:
            self.out.append(BAD_FORMAT)  # no exptime or no key
            return
        exptime = parse_int(tokens[1])
        if exptime is None:
            self.out.append(BAD_EXPTIME)
            return
        self._retrieve(tokens, 2, with_cas, exptime)

    def _retrieve(
        self, tokens: list[bytes], first: int, with_cas: bool, exptime: int | None
    ) -> None:
        out = self.out
        if len(tokens) < 2:
            out.append(BAD_FORMAT)
            return
        auth = self.auth
        keys = tokens[first:]
        bad_key = self.bad_key
        for key in keys:
            if bad_key(key):  # as memcached: one bad key fails the whole request
                out.append(BAD_FORMAT)
                return
        for key in keys:
            if exptime is None:
                item = commands.get(auth, key)
            else:
                item = commands.get_and_touch(auth, key, exptime)
            if item is not None:
                value = item.value
                if with_cas:
                    out.append(b"VALUE %b %d %d %d\r\n" % (key, item.flags, len(value), item.cas))
                else:
                    out.append(b"VALUE %b %d %d\r\n" % (key, item.flags, len(value)))
                out.append(value)
                out.append(CRLF)
        out.append(END)

    # -- storage ------------------------------------------------------------------------
    def _storage(self, tokens: list[bytes]) -> None:
        is_cas = tokens[0] == b"cas"
        base = 6 if is_cas else 5
        n = len(tokens)
        if n < base:
            self.out.append(BAD_FORMAT)
            length = parse_int(tokens[4]) if n == 5 else None
            if length is not None and 0 <= length <= MAX_DATA_LEN:
                self.swallow = length + 2  # "cas k 0 0 <bytes>": its data still comes
            return
        # As memcached >= 1.6.4x: tokens after the last argument are ignored, and only the
        # last token of the line can be "noreply".
        noreply = self.noreply = n > base and tokens[-1] == b"noreply"
        key = tokens[1]
        flags = parse_uint(tokens[2], UINT32)
        exptime = parse_int(tokens[3])
        length = parse_int(tokens[4])
        compare = parse_uint(tokens[5], UINT64) if is_cas else None
        if length is None or length < 0 or length > MAX_DATA_LEN:
            if not noreply:
                self.out.append(BAD_FORMAT)
            return
        mode = Mode.CAS if is_cas else STORAGE_MODES[tokens[0]]
        if flags is None or exptime is None or (is_cas and compare is None) or self.bad_key(key):
            if not noreply:
                self.out.append(BAD_FORMAT)
            self.swallow = length + 2  # as memcached >= 1.6.40: keep the stream in step
            return
        if commands.too_large(key, length):
            self.swallow = length + 2
            commands.refuse_too_large(self.auth, mode, key)
            if not noreply:
                self.out.append(TOO_LARGE)
            return

        def finish(block: bytes) -> None:
            self.noreply = noreply
            if block[-2:] != CRLF:
                self.out.append(BAD_CHUNK)  # sent even with noreply: the stream is broken
                return
            outcome, _ = commands.store(self.auth, mode, key, block[:-2], flags, exptime, compare)
            if not noreply:
                self.out.append(REPLIES[outcome])

        self.expect_data(length, finish)

    # -- other keyed commands -----------------------------------------------------------
    def _incr(self, tokens: list[bytes]) -> None:
        self._arith(tokens, incr=True)

    def _decr(self, tokens: list[bytes]) -> None:
        self._arith(tokens, incr=False)

    def _arith(self, tokens: list[bytes], incr: bool) -> None:
        n = len(tokens)
        if n < 3:
            self.out.append(BAD_FORMAT)
            return
        noreply = self.noreply = n > 3 and tokens[-1] == b"noreply"  # extra tokens ignored
        key = tokens[1]
        if self.bad_key(key):
            reply = BAD_FORMAT
        else:
            delta = parse_uint(tokens[2], UINT64)
            if delta is None:
                reply = BAD_DELTA
            else:
                outcome, value, _ = commands.arithmetic(self.auth, key, incr, delta)
                reply = b"%d\r\n" % value if outcome is Outcome.STORED else REPLIES[outcome]
        if not noreply:
            self.out.append(reply)

    def _delete(self, tokens: list[bytes]) -> None:
        """``delete <key> [...] [noreply]``: as memcached >= 1.6.4x, tokens after the key
        (the long-gone delay argument, ``0`` or any other) are ignored, not refused."""
        if len(tokens) < 2:
            self.out.append(BAD_FORMAT)
            return
        noreply = self.noreply = tokens[-1] == b"noreply" and len(tokens) > 2
        key = tokens[1]
        reply = BAD_FORMAT if self.bad_key(key) else REPLIES[commands.delete(self.auth, key)]
        if not noreply:
            self.out.append(reply)

    def _touch(self, tokens: list[bytes]) -> None:
        n = len(tokens)
        if n < 3:
            self.out.append(BAD_FORMAT)
            return
        noreply = self.noreply = n > 3 and tokens[-1] == b"noreply"  # extra tokens ignored
        key = tokens[1]
        exptime = parse_int(tokens[2])
        if self.bad_key(key):
            reply = BAD_FORMAT
        elif exptime is None:
            reply = BAD_EXPTIME
        else:
            reply = REPLIES[commands.touch(self.auth, key, exptime)]
        if not noreply:
            self.out.append(reply)

    # -- whole-cache and connection commands --------------------------------------------
    def _flush_all(self, tokens: list[bytes]) -> None:
        n = len(tokens)
        noreply = self.noreply = tokens[-1] == b"noreply" and n > 1  # extra tokens ignored
        args = tokens[1 : n - 1] if noreply else tokens[1:]
        delay = 0
        if args:
            parsed = parse_int(args[0])
            if parsed is None:
                if not noreply:
                    self.out.append(BAD_EXPTIME)
                return
            delay = parsed
        commands.flush_all(self.auth, delay)
        if not noreply:
            self.out.append(OK)

    def _stats(self, tokens: list[bytes]) -> None:
        sub = tokens[1].decode("ascii", "replace") if len(tokens) > 1 else ""
        if sub == "cachedump":
            self._cachedump(tokens)
            return
        if sub == "reset" and len(tokens) == 2:
            commands.reset_stats(self.auth)
            self.out.append(b"RESET\r\n")
            return
        rows = commands.stats(self.auth, sub) if len(tokens) <= 2 else None
        if rows is None:
            self.out.append(ERROR)
            return
        self.out.append(
            b"".join(b"STAT %s %s\r\n" % (k.encode(), v.encode()) for k, v in rows) + END
        )

    def _cachedump(self, tokens: list[bytes]) -> None:
        """``stats cachedump <slab> <limit>``, with memcached's argument errors."""
        if len(tokens) < 4:
            self.out.append(b"CLIENT_ERROR bad command line\r\n")
            return
        slab = parse_uint(tokens[2], UINT32)
        limit = parse_uint(tokens[3], UINT32)
        if slab is None or limit is None:
            self.out.append(BAD_FORMAT)
        elif slab >= stats.SLAB_CLASSES:
            self.out.append(b"CLIENT_ERROR Illegal slab id\r\n")
        else:
            self.out.append(commands.cachedump(self.auth, slab, limit))

    def _cache_memlimit(self, tokens: list[bytes]) -> None:
        """``cache_memlimit <megabytes> [noreply]``: never changes the plan's limit.

        The argument is checked as memcached checks it (not a number: ``ERROR``); a valid
        one gets a CLIENT_ERROR naming the limit that applies, which clients raise as a
        client error (pymemcache: MemcacheClientError) instead of hanging on memcached's
        own ``MEMLIMIT_*`` words, which are not protocol replies they know.
        """
        noreply = tokens[-1] == b"noreply" and len(tokens) > 2
        megabytes = parse_uint(tokens[1], UINT32) if len(tokens) > 1 else None
        if megabytes is None:
            reply = ERROR
        else:
            limit = commands.memory_limit(self.auth, megabytes)
            reply = (
                b"CLIENT_ERROR cache_memlimit not allowed: this cache's memory limit is its "
                b"plan's, %d megabytes\r\n" % (limit // (1024 * 1024))
            )
        if not noreply:
            self.out.append(reply)

    def _version(self, tokens: list[bytes]) -> None:
        self.out.append(b"VERSION %s\r\n" % MEMCACHED_VERSION.encode())

    def _verbosity(self, tokens: list[bytes]) -> None:
        """As memcached >= 1.6.4x: the level must be a number, later tokens are ignored, and
        ``noreply`` (the last token) silences even the error ("verbosity noreply")."""
        n = len(tokens)
        noreply = self.noreply = n > 1 and tokens[-1] == b"noreply"
        level = parse_uint(tokens[1], UINT32) if n > 1 else None
        if not noreply:
            self.out.append(BAD_FORMAT if level is None else OK)

    def _quit(self, tokens: list[bytes]) -> None:
        self.closing = True
