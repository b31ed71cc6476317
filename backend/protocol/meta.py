"""memcached's meta commands (mg, ms, md, ma, mn, me) on top of the ASCII framing.

Syntax ``<cmd> <key> [<datalen>] <flag>*``: one-character flags, some with a value glued
on (``T30``, ``Oabc``). Return flags come back in request order, then ``Z``/``X``/``W``.
``q`` hides only the "nothing to report" answer of each command (mg: EN; ms/md/ma: HD), as
memcached does; errors are never hidden. ``k`` and ``O`` are echoed on misses too, so a
pipelining client can match every answer to its request.
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from backend.protocol import commands
from backend.protocol.commands import Mode, Outcome
from backend.protocol.text import (
    BAD_CHUNK,
    BAD_FORMAT,
    CRLF,
    MAX_DATA_LEN,
    NON_NUMERIC,
    TOO_LARGE,
    UINT32,
    UINT64,
    parse_int,
    parse_uint,
)

if TYPE_CHECKING:
    from backend.engine import ItemView
    from backend.protocol.ascii import AsciiCodec

MAX_OPAQUE = 32
IGNORED_FLAGS = frozenset(b"PL")  # proxy hints, accepted and ignored
MG_FLAGS = frozenset(b"bcfhklOqstuvENRT") | IGNORED_FLAGS
MS_FLAGS = frozenset(b"bcCEFIkOqsSTMN") | IGNORED_FLAGS
MD_FLAGS = frozenset(b"bCEIkOqTx") | IGNORED_FLAGS
MA_FLAGS = frozenset(b"bCENJDTMqtcvkO") | IGNORED_FLAGS
NUMERIC_FLAGS = {
    ord("T"): parse_int,
    ord("N"): parse_int,
    ord("R"): parse_int,
    ord("F"): lambda t: parse_uint(t, UINT32),
    ord("C"): lambda t: parse_uint(t, UINT64),
    ord("E"): lambda t: parse_uint(t, UINT64),
    ord("D"): lambda t: parse_uint(t, UINT64),
    ord("J"): lambda t: parse_uint(t, UINT64),
}
MS_MODES = {
    b"S": Mode.SET,
    b"E": Mode.ADD,
    b"A": Mode.APPEND,
    b"P": Mode.PREPEND,
    b"R": Mode.REPLACE,
}
MA_MODES = {b"I": True, b"+": True, b"D": False, b"-": False}


class MetaError(Exception):
    """A malformed meta request; the message is the reply line."""


class Request:
    """A parsed meta request: its key (decoded if ``b``) and its flags in order."""

    __slots__ = ("key", "key_token", "flags", "order")

    def __init__(self, key_token: bytes, flag_tokens: list[bytes], allowed: frozenset[int]) -> None:
        self.key_token = key_token
        self.flags: dict[int, bytes] = {}
        self.order: list[int] = []
        for token in flag_tokens:
            flag = token[0]
            if flag not in allowed:
                # memcached <= 1.6.3x said "CLIENT_ERROR invalid flag"; the newest parser
                # refuses an unknown flag as a malformed line.
                raise MetaError(BAD_FORMAT.rstrip())
            if flag in self.flags:
                raise MetaError(b"CLIENT_ERROR duplicate flag")
            self.flags[flag] = token[1:]
            self.order.append(flag)
        opaque = self.flags.get(ord("O"))
        if opaque is not None and len(opaque) > MAX_OPAQUE:
            raise MetaError(b"CLIENT_ERROR opaque token too long")
        if ord("b") in self.flags:
            try:
                self.key = base64.b64decode(key_token, validate=True)
            except (binascii.Error, ValueError):
                raise MetaError(b"CLIENT_ERROR error decoding key") from None
        else:
            self.key = key_token

    def has(self, flag: str) -> bool:
        return ord(flag) in self.flags

    def number(self, flag: str) -> int | None:
        """The numeric value of a flag, None if absent; MetaError if malformed."""
        raw = self.flags.get(ord(flag))
        if raw is None:
            return None
        value = NUMERIC_FLAGS[ord(flag)](raw)
        if value is None:
            raise MetaError(BAD_FORMAT.rstrip())
        return value

    def render(
        self,
        item: ItemView | None = None,
        now: float = 0.0,
        fetch: commands.MetaFetch | None = None,
        cas: int | None = None,
    ) -> bytes:
        """The requested return flags, in request order; without an item (a miss or a
        failure) only the echoes k, O and b remain — and c, as 0, when ``cas`` says so."""
        parts = []
        for flag in self.order:
            if flag == 107:  # k
                parts.append(b"k" + self.key_token)
            elif flag == 79:  # O
                parts.append(b"O" + self.flags[79])
            elif flag == 99 and cas is not None:  # c, of a store
                parts.append(b"c%d" % cas)
            elif item is None:
                continue
            elif flag == 99:  # c
                parts.append(b"c%d" % item.cas)
            elif flag == 102:  # f
                parts.append(b"f%d" % item.flags)
            elif flag == 115:  # s
                parts.append(b"s%d" % len(item.value))
            elif flag == 116:  # t
                parts.append(b"t%d" % ttl_of(item.exptime, now))
            elif flag == 104 and fetch is not None:  # h
                parts.append(b"h1" if fetch.hit_before else b"h0")
            elif flag == 108 and fetch is not None:  # l
                parts.append(b"l%d" % int(fetch.idle_s))
        if 98 in self.flags and 107 in self.flags:  # b with k: the key is base64
            parts.append(b"b")
        return b"".join(b" " + p for p in parts)


def ttl_of(exptime: float, now: float) -> int:
    return -1 if not exptime else max(math.ceil(exptime - now), 0)


class MetaCommands:
    """The meta commands of one ASCII connection, built on the codec's public surface
    (``reply``, ``expect_data``, ``skip_data``, ``bad_key``, ``session``)."""

    def __init__(self, codec: AsciiCodec) -> None:
        self.codec = codec

    def table(self) -> dict[bytes, Callable[[list[bytes]], None]]:
        return {
            b"mg": self._guarded(self.mg),
            b"ms": self._guarded(self.ms, check_key=False),
            b"md": self._guarded(self.md),
            b"ma": self._guarded(self.ma),
            b"mn": self.mn,
            b"me": self.me,
        }

    def _guarded(
        self, handler: Callable[[list[bytes]], bytes], check_key: bool = True
    ) -> Callable[[list[bytes]], None]:
        """Run a meta handler: count it (the one place ``cmd_meta`` is counted), check the
        key (ms checks it itself, after its length), turn MetaError into its reply."""
        codec = self.codec

        def run(tokens: list[bytes]) -> None:
            if len(tokens) < 2:
                codec.reply(BAD_FORMAT)  # a known command without its key (1.6.4x)
                return
            codec.auth.engine.stats.cmd_meta += 1
            if check_key and codec.bad_key(tokens[1]):
                codec.reply(BAD_FORMAT)
                return
            try:
                reply = handler(tokens)
            except MetaError as err:
                reply = err.args[0] + CRLF
            if reply:
                codec.reply(reply)

        return run

    # -- mg -----------------------------------------------------------------------------
    def mg(self, tokens: list[bytes]) -> bytes:
        req = Request(tokens[1], tokens[2:], MG_FLAGS)
        fetch = commands.meta_get(
            self.codec.auth,
            req.key,
            touch=req.number("T"),
            vivify=req.number("N"),
            recache=req.number("R"),
            bump=not req.has("u"),
        )
        if fetch is None:
            return b"" if req.has("q") else b"EN" + req.render() + CRLF
        item = fetch.item
        tail = req.render(item, time.time(), fetch)
        status = []
        if fetch.token_before:
            status.append(b" Z")
        if item.stale:
            status.append(b" X")
        if fetch.won:
            status.append(b" W")
        tail += b"".join(status)
        if req.has("v"):
            return b"VA %d%b\r\n%b\r\n" % (len(item.value), tail, item.value)
        return b"HD" + tail + CRLF

    # -- ms -----------------------------------------------------------------------------
    def ms(self, tokens: list[bytes]) -> bytes:
        """``ms <key> <datalen> <flag>*``: answered once its data block has arrived."""
        codec = self.codec
        length = parse_int(tokens[2]) if len(tokens) > 2 else None
        if length is None or length < 0 or length > MAX_DATA_LEN:
            return BAD_FORMAT
        try:
            if codec.bad_key(tokens[1]):
                raise MetaError(BAD_FORMAT.rstrip())
            req = Request(tokens[1], tokens[3:], MS_FLAGS)
            mode = MS_MODES.get(req.flags.get(ord("M"), b"S"))
            if mode is None:
                raise MetaError(b"CLIENT_ERROR invalid mode for ms M token")
            flags = req.number("F") or 0
            exptime = req.number("T") or 0
            compare = req.number("C")
            new_cas = req.number("E")
            vivify = req.number("N")
        except MetaError:
            codec.skip_data(length)
            raise
        if commands.too_large(req.key, length):
            codec.skip_data(length)
            commands.refuse_too_large(codec.auth, mode, req.key)
            return TOO_LARGE

        def finish(block: bytes) -> None:
            if block[-2:] != CRLF:
                codec.reply(BAD_CHUNK)
                return
            outcome, cas = commands.store(
                codec.auth,
                mode,
                req.key,
                block[:-2],
                flags,
                exptime,
                compare,
                invalidate=req.has("I"),
                new_cas=new_cas,
                vivify=vivify,
            )
            if outcome is Outcome.TOO_LARGE:  # an append that would outgrow the item limit
                codec.reply(TOO_LARGE)
                return
            code = MS_CODES[outcome]
            if code == b"HD" and req.has("q"):
                return
            codec.reply(code + req.render(cas=cas if code == b"HD" else 0) + CRLF)

        codec.expect_data(length, finish)
        return b""

    # -- md -----------------------------------------------------------------------------
    def md(self, tokens: list[bytes]) -> bytes:
        req = Request(tokens[1], tokens[2:], MD_FLAGS)
        outcome = commands.delete(
            self.codec.auth,
            req.key,
            compare_cas=req.number("C"),
            invalidate=req.has("I"),
            exptime=req.number("T"),
            new_cas=req.number("E"),
            drop_value=req.has("x"),
        )
        if outcome is Outcome.DELETED:
            return b"" if req.has("q") else b"HD" + req.render() + CRLF
        return (b"NF" if outcome is Outcome.NOT_FOUND else b"EX") + req.render() + CRLF

    # -- ma -----------------------------------------------------------------------------
    def ma(self, tokens: list[bytes]) -> bytes:
        req = Request(tokens[1], tokens[2:], MA_FLAGS)
        incr = MA_MODES.get(req.flags.get(ord("M"), b"I"))
        if incr is None:
            raise MetaError(b"CLIENT_ERROR invalid mode for ma M token")
        delta = req.number("D")
        vivify = req.number("N")
        initial = req.number("J") or 0
        outcome, value, item = commands.arithmetic(
            self.codec.auth,
            req.key,
            incr,
            1 if delta is None else delta,
            initial=initial if vivify is not None else None,
            exptime=vivify or 0,
            compare_cas=req.number("C"),
            touch=req.number("T"),
            new_cas=req.number("E"),
        )
        if outcome is Outcome.NON_NUMERIC:
            return NON_NUMERIC
        if outcome is not Outcome.STORED:
            return (b"NF" if outcome is Outcome.NOT_FOUND else b"EX") + req.render() + CRLF
        if req.has("q"):
            return b""
        parts = req.render(item, time.time())
        if req.has("v"):
            number = b"%d" % value
            return b"VA %d%b\r\n%b\r\n" % (len(number), parts, number)
        return b"HD" + parts + CRLF

    # -- mn, me -------------------------------------------------------------------------
    def mn(self, tokens: list[bytes]) -> None:
        self.codec.reply(b"MN\r\n")

    def me(self, tokens: list[bytes]) -> None:
        codec = self.codec
        if len(tokens) < 2 or codec.bad_key(tokens[1]):
            codec.reply(BAD_FORMAT)
            return
        key = tokens[1]
        if len(tokens) > 2 and tokens[2] == b"b":
            try:
                key = base64.b64decode(key, validate=True)
            except (binascii.Error, ValueError):
                codec.reply(b"CLIENT_ERROR error decoding key\r\n")
                return
        item = commands.peek(codec.auth, key)
        if item is None:
            codec.reply(b"EN\r\n")
            return
        now = time.time()
        codec.reply(
            b"ME %b exp=%d la=%d cas=%d fetch=%b cls=1 size=%d\r\n"
            % (
                tokens[1],
                ttl_of(item.exptime, now),
                int(now - item.atime),
                item.cas,
                b"yes" if item.fetched else b"no",
                item.size,
            )
        )


MS_CODES = {
    Outcome.STORED: b"HD",
    Outcome.NOT_STORED: b"NS",
    Outcome.EXISTS: b"EX",
    Outcome.NOT_FOUND: b"NF",
}
