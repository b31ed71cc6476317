"""A differential runner: the same requests to memcached and to cachier, replies compared.

Used by ``test_differential.py`` (CI, Debian's memcached, well-formed input only) and by
``bench/memcached_diff.py`` (any memcached build, malformed input too). Each case runs on
a fresh connection to each server; cachier's connection logs in first (ASCII ``set`` or
SASL PLAIN), which memcached's does not need. Replies are compared byte for byte after
masking only what is nondeterministic between two servers:

- CAS uniques: each distinct value becomes ``#1``, ``#2``... in order of appearance, so
  "same CAS" and "different CAS" still compare, but not the counters' absolute values;
- the version string (``VERSION 1.6.18`` vs cachier's);
- meta ``t<ttl>``/``l<secs>`` values above zero (a second may tick between the servers).

A request may say ``{cas}``: it is replaced by the last CAS that server sent on this
connection, so ``gets`` then ``cas`` works against both servers.
"""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.backend.wire import arith_extras, store_extras, u32
from tests.conftest import free_fixed_ports

HEADER = struct.Struct("!BBHBBHIIQ")
NOOP, SASL_AUTH = 0x0A, 0x21
FENCE_OPAQUE = 0xFE11CE00
TEXT_FENCE = b"mn\r\n"


# -- requests -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Bin:
    """One binary request; ``cas=-1`` means "the last CAS this server sent"."""

    opcode: int
    key: bytes = b""
    extras: bytes = b""
    value: bytes = b""
    cas: int = 0
    opaque: int = 0

    def encode(self, last_cas: int) -> bytes:
        cas = last_cas if self.cas == -1 else self.cas
        body = len(self.extras) + len(self.key) + len(self.value)
        header = HEADER.pack(
            0x80, self.opcode, len(self.key), len(self.extras), 0, 0, body, self.opaque, cas
        )
        return header + self.extras + self.key + self.value


Step = bytes | Bin


@dataclass(frozen=True)
class Case:
    """A named sequence of requests on one connection.

    ``closes``: the last step makes the server close, so its reply is read to the close.
    ``fence``: after each step, send ``mn`` (text) or NOOP (binary) and read up to its
    reply; off for input after which a fence would itself be misparsed.
    """

    name: str
    steps: Sequence[Step]
    closes: bool = False
    fence: bool = True

    @property
    def binary(self) -> bool:
        return isinstance(self.steps[0], Bin)


# -- servers ------------------------------------------------------------------------------
@dataclass
class Server:
    """An endpoint and how to log in on it (memcached: nothing to do)."""

    name: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def connect(self, binary: bool, timeout: float = 3.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        if self.username is None:
            return sock
        secret = (self.password or "").encode()
        if binary:
            plain = b"\0%s\0%s" % (self.username.encode(), secret)
            sock.sendall(Bin(SASL_AUTH, b"PLAIN", value=plain).encode(0))
            reply = _read_packet(sock, b"")[0]
            if reply is None or reply[5:7] != b"\0\0":
                raise RuntimeError(f"{self.name}: SASL login refused: {reply!r}")
        else:
            sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (self.username.encode(), len(secret), secret))
            reply = _recv_exactly(sock, 8)
            if reply != b"STORED\r\n":
                raise RuntimeError(f"{self.name}: login refused: {reply!r}")
        return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_packet(sock: socket.socket, pending: bytes) -> tuple[bytes | None, bytes]:
    """One whole binary response (or None at close) and the bytes after it."""
    while True:
        if len(pending) >= 24:
            total = 24 + struct.unpack_from("!I", pending, 8)[0]
            if len(pending) >= total:
                return pending[:total], pending[total:]
        chunk = sock.recv(65536)
        if not chunk:
            return None, pending
        pending += chunk


# -- running ------------------------------------------------------------------------------
class Transcript:
    """What one server answered to one case: one normalised reply per step."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self.cas_names: dict[int, int] = {}
        self.last_cas = 0

    def cas_name(self, cas: int) -> bytes:
        self.last_cas = cas
        number = self.cas_names.setdefault(cas, len(self.cas_names) + 1)
        return b"#%d" % number


_VALUE_CAS = re.compile(rb"^(VALUE \S+ \d+ \d+) (\d+)\r$", re.MULTILINE)
_META_LINE = re.compile(rb"^(HD|VA|EX|NF|NS|EN|ME|OK)( [^\r\n]*)?\r$", re.MULTILINE)
_VERSION = re.compile(rb"^VERSION [^\r\n]+\r$", re.MULTILINE)


def _normalise_text(reply: bytes, transcript: Transcript) -> bytes:
    def value_cas(match: re.Match[bytes]) -> bytes:
        return match.group(1) + b" " + transcript.cas_name(int(match.group(2))) + b"\r"

    def meta_flags(match: re.Match[bytes]) -> bytes:
        flags = (match.group(2) or b"").split(b" ")
        for i, flag in enumerate(flags):
            if flag[:1] == b"c" and flag[1:].isdigit():
                flags[i] = b"c" + transcript.cas_name(int(flag[1:]))
            elif flag[:1] in (b"t", b"l") and flag[1:].isdigit() and int(flag[1:]) > 0:
                flags[i] = flag[:1] + b"<secs>"
        return match.group(1) + b" ".join(flags) + b"\r"

    reply = _VALUE_CAS.sub(value_cas, reply)
    reply = _META_LINE.sub(meta_flags, reply)
    return _VERSION.sub(b"VERSION <version>\r", reply)


def _normalise_packet(packet: bytes, transcript: Transcript) -> bytes:
    magic, opcode, keylen, extlen, dtype, status, bodylen, opaque, cas = HEADER.unpack_from(packet)
    body = packet[24:]
    cas_text = transcript.cas_name(cas) if cas else b"0"
    if opcode == 0x0B and status == 0:
        body = b"<version>"
    return b"[op=%02x status=%02x key=%d ext=%d opaque=%x cas=%s] %r\n" % (
        opcode,
        status,
        keylen,
        extlen,
        opaque,
        cas_text,
        body,
    )


def run_case(server: Server, case: Case, timeout: float = 2.0) -> list[bytes]:
    """Run one case on a fresh connection; the normalised reply to each step."""
    binary = case.binary
    transcript = Transcript()
    sock = server.connect(binary, timeout)
    pending = b""
    try:
        for index, step in enumerate(case.steps):
            last = index == len(case.steps) - 1
            if isinstance(step, Bin):
                request = step.encode(transcript.last_cas)
            else:
                request = step.replace(b"{cas}", b"%d" % transcript.last_cas)
            if last and case.closes:
                sock.sendall(request)
                raw, closed = _read_to_close(sock, pending, timeout)
                reply = _decode(raw, binary, transcript) + (b"<closed>" if closed else b"<open>")
                transcript.replies.append(reply)
                break
            if not case.fence:
                sock.sendall(request)
                time.sleep(0.05)
                continue
            if binary:
                sock.sendall(request + Bin(NOOP, opaque=FENCE_OPAQUE).encode(0))
                raw, pending = _read_to_fence_binary(sock, pending)
            else:
                sock.sendall(request + TEXT_FENCE)
                raw, pending = _read_to_fence_text(sock, pending)
            transcript.replies.append(_decode(raw, binary, transcript))
    except (TimeoutError, ConnectionError) as exc:
        transcript.replies.append(b"<%s>" % type(exc).__name__.encode())
    finally:
        sock.close()
    return transcript.replies


def _decode(raw: bytes, binary: bool, transcript: Transcript) -> bytes:
    if not binary:
        return _normalise_text(raw, transcript)
    out = b""
    while len(raw) >= 24:
        total = 24 + struct.unpack_from("!I", raw, 8)[0]
        out += _normalise_packet(raw[:total], transcript)
        raw = raw[total:]
    return out + (b"<partial %r>" % raw if raw else b"")


def _read_to_fence_text(sock: socket.socket, pending: bytes) -> tuple[bytes, bytes]:
    while True:
        at = pending.find(b"MN\r\n")
        if at >= 0 and (at == 0 or pending[at - 1 : at] == b"\n"):
            return pending[:at], pending[at + 4 :]
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {pending!r}")
        pending += chunk


def _read_to_fence_binary(sock: socket.socket, pending: bytes) -> tuple[bytes, bytes]:
    out = b""
    while True:
        packet, pending = _read_packet(sock, pending)
        if packet is None:
            raise ConnectionError(f"closed after {out + pending!r}")
        if packet[1] == NOOP and struct.unpack_from("!I", packet, 12)[0] == FENCE_OPAQUE:
            return out, pending
        out += packet


def _read_to_close(sock: socket.socket, pending: bytes, timeout: float) -> tuple[bytes, bool]:
    """Everything until the server closes (True) or stays silent for ``timeout`` (False)."""
    data = pending
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except ConnectionResetError:
        return data, True
    except TimeoutError:
        return data, False


@dataclass
class Difference:
    case: str
    step: int
    request: bytes
    replies: dict[str, bytes] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"{self.case} step {self.step}: {self.request!r}"]
        lines += [f"  {name:>12}: {reply!r}" for name, reply in self.replies.items()]
        return "\n".join(lines)


def compare(servers: Sequence[Server], cases: Sequence[Case]) -> list[Difference]:
    """Run every case on every server; the steps whose replies differ."""
    found: list[Difference] = []
    for case in cases:
        transcripts = {server.name: run_case(server, case) for server in servers}
        longest = max(len(t) for t in transcripts.values())
        for step in range(longest):
            replies = {
                name: (t[step] if step < len(t) else b"<no reply>")
                for name, t in transcripts.items()
            }
            if len(set(replies.values())) > 1:
                request = case.steps[step] if step < len(case.steps) else b""
                if isinstance(request, Bin):
                    request = repr(request).encode()
                found.append(Difference(case.name, step, request, replies))
    return found


# -- a memcached process ------------------------------------------------------------------
@contextmanager
def memcached(binary: str, name: str = "memcached") -> Iterator[Server]:
    """A memcached on a free loopback port, stopped on exit (root runs it as nobody)."""
    import os

    port = free_fixed_ports(1)[0]  # below the ephemeral range: nothing else takes it
    command = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-t", "1", "-m", "64"]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    stderr = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"{binary} did not start: {stderr}") from None
                time.sleep(0.02)
        yield Server(name, "127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(5)


def memcached_version(binary: str) -> str:
    result = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


# -- the cases ----------------------------------------------------------------------------
CaseSource = Callable[[], list[Case]]
GET, SET, ADD, REPLACE, DELETE, INCR, DECR, QUIT, FLUSH = range(0x00, 0x09)
GETQ, VERSION, GETK, GETKQ, APPEND, PREPEND = 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F
SETQ, ADDQ, REPLACEQ, DELETEQ, INCRQ, DECRQ, QUITQ, FLUSHQ = range(0x11, 0x19)
APPENDQ, PREPENDQ, VERBOSITY, TOUCH, GAT, GATQ = range(0x19, 0x1F)
GATK, GATKQ = 0x23, 0x24
NO_CREATE = 0xFFFFFFFF


def text(name: str, *steps: bytes, closes: bool = False, fence: bool = True) -> Case:
    """A text case; it starts with ``flush_all`` so no case sees another's keys."""
    return Case(name, (b"flush_all\r\n", *steps), closes=closes, fence=fence)


def binary(name: str, *steps: Bin, closes: bool = False) -> Case:
    return Case(name, (Bin(FLUSH), *steps), closes=closes)


def well_formed_cases() -> list[Case]:
    """Requests every memcached since 1.6 answers the same way, byte for byte."""
    return [
        # -- classic ASCII storage and retrieval ----------------------------------------
        text(
            "set-get",
            b"set a 5 0 3\r\nabc\r\n",
            b"get a\r\n",
            b"get a missing a\r\n",
            b"set e 0 0 0\r\n\r\n",
            b"get e\r\n",
            b"set " + b"k" * 250 + b" 1 0 1\r\nx\r\n",
            b"get " + b"k" * 250 + b"\r\n",
            b"set big 4294967295 0 1\r\nx\r\n",
            b"get big\r\n",
        ),
        text(
            "noreply",
            b"set a 0 0 1 noreply\r\n1\r\n",
            b"add a 0 0 1 noreply\r\n2\r\n",
            b"append a 0 0 1 noreply\r\n3\r\n",
            b"get a\r\n",
            b"incr a 1 noreply\r\n",
            b"delete a noreply\r\n",
            b"get a\r\n",
            b"touch a 1 noreply\r\n",
        ),
        text(
            "add-replace",
            b"add a 0 0 1\r\n1\r\n",
            b"add a 0 0 1\r\n2\r\n",
            b"replace b 0 0 1\r\n1\r\n",
            b"replace a 7 0 1\r\n3\r\n",
            b"get a b\r\n",
        ),
        text(
            "append-prepend",
            b"append a 0 0 1\r\nx\r\n",
            b"prepend a 0 0 1\r\nx\r\n",
            b"set a 3 0 2\r\nmm\r\n",
            b"append a 9 0 2\r\n>>\r\n",
            b"prepend a 9 0 2\r\n<<\r\n",
            b"get a\r\n",
        ),
        text(
            "gets-cas",
            b"cas a 0 0 1 1\r\nx\r\n",
            b"set a 0 0 1\r\n1\r\n",
            b"gets a\r\n",
            b"cas a 4 0 1 {cas}\r\n2\r\n",
            b"cas a 0 0 1 {cas}\r\n3\r\n",
            b"gets a\r\n",
            b"cas a 0 0 1 {cas} noreply\r\n4\r\n",
            b"gets a\r\n",
        ),
        text(
            "expired-store",
            b"set a 0 -1 1\r\nx\r\n",
            b"get a\r\n",
            b"add a 0 0 1\r\ny\r\n",
            b"get a\r\n",
        ),
        text(
            "incr-decr",
            b"incr n 1\r\n",
            b"set n 0 0 2\r\n10\r\n",
            b"incr n 5\r\n",
            b"decr n 100\r\n",
            b"get n\r\n",
            b"set n 0 0 20\r\n18446744073709551615\r\n",
            b"incr n 1\r\n",
            b"get n\r\n",
            b"set s 0 0 3\r\nabc\r\n",
            b"incr s 1\r\n",
            b"set w 0 0 2\r\n99\r\n",
            b"incr w 1\r\n",
            b"get w\r\n",
        ),
        text(
            "decr-keeps-length",
            b"set n 0 0 3\r\n100\r\n",
            b"decr n 1\r\n",
            b"get n\r\n",
            b"decr n 95\r\n",
            b"gets n\r\n",
            # No "incr" and "get" after the gets: memcached rewrites in place (padded)
            # only while nothing else holds the item, and the gets reply may still hold it
            # when the incr arrives on a busy machine: "11" or "11 " by timing.
        ),
        text(
            "touch-gat",
            b"touch a 10\r\n",
            b"set a 1 0 1\r\nx\r\n",
            b"touch a 100\r\n",
            b"gat 100 a b\r\n",
            b"gats 0 a\r\n",
            b"gat -1 a\r\n",
            b"get a\r\n",
        ),
        text(
            "delete",
            b"delete a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"delete a\r\n",
            b"get a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"delete a 0\r\n",
            b"get a\r\n",
        ),
        text(
            "flush",
            b"set a 0 0 1\r\nx\r\n",
            b"flush_all 0\r\n",
            b"get a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"flush_all noreply\r\n",
            b"get a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"flush_all 100\r\n",
            b"get a\r\n",
        ),
        text("admin", b"verbosity 1\r\n", b"verbosity 0 noreply\r\n", b"version\r\n"),
        text(
            "multi-get",
            b"set a 1 0 1\r\n1\r\n",
            b"set c 3 0 1\r\n3\r\n",
            b"get a b c a\r\n",
            b"gets c b\r\n",
        ),
        text(
            "pipelined",
            b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a b\r\ndelete a\r\nget a b\r\n",
        ),
        text("quit", b"set a 0 0 1\r\nx\r\n", b"quit\r\n", closes=True),
        # -- meta ------------------------------------------------------------------------
        text(
            "meta-basic",
            b"mn\r\n",
            b"ms a 2\r\nhi\r\n",
            b"mg a v\r\n",
            b"mg a\r\n",
            b"mg a s v f k\r\n",
            b"mg b v\r\n",
            b"mg b k O99 q\r\n",
            b"mg a k O1 q v\r\n",
            b"ms a 2 F7 T0\r\nho\r\n",
            b"mg a f t v\r\n",
        ),
        text(
            "meta-cas",
            b"ms a 1 c\r\n1\r\n",
            b"mg a c\r\n",
            b"ms a 1 C{cas}\r\n2\r\n",
            b"ms a 1 C{cas}\r\n3\r\n",
            b"mg a c v\r\n",
            b"md a C1\r\n",
            b"md a C{cas}\r\n",
            b"mg a\r\n",
        ),
        text(
            "meta-modes",
            b"ms a 1 MA\r\nx\r\n",
            b"ms a 1 ME\r\n1\r\n",
            b"ms a 1 ME\r\n2\r\n",
            b"ms a 1 MA\r\n3\r\n",
            b"ms a 1 MP\r\n0\r\n",
            b"ms a 1 MR\r\n9\r\n",
            b"mg a v\r\n",
            b"ms b 1 MR\r\n9\r\n",
            b"ms b 1 MS\r\n9\r\n",
            b"mg b v\r\n",
        ),
        text(
            "meta-flags",
            b"ms a 1 q\r\n1\r\n",
            b"ms a 1 O5 k\r\n1\r\n",
            b"mg a O6 k q\r\n",
            b"mg a s v O7\r\n",
            b"md a q\r\n",
            b"md a O8\r\n",
            b"md a q\r\n",
            b"mn\r\n",
        ),
        text(
            "meta-delete",
            b"md a\r\n",
            b"ms a 1\r\nx\r\n",
            b"md a\r\n",
            b"mg a v\r\n",
            b"ms a 1 T0\r\nx\r\n",
            b"md a I T30\r\n",
            b"mg a v c\r\n",
            b"mg a v\r\n",
        ),
        text(
            "meta-arith",
            b"ma n\r\n",
            b"ma n N0 J13\r\n",
            b"mg n v\r\n",
            b"ma n v\r\n",
            b"ma n MD D20 v\r\n",
            b"ma n D5 v\r\n",
            b"ma n MI D3 v c\r\n",
            b"ma n q D1\r\n",
            b"mg n v\r\n",
            b"ms s 1\r\nx\r\n",
            b"ma s\r\n",
        ),
        text(
            "meta-touch",
            b"ms a 1\r\nx\r\n",
            b"mg a t\r\n",
            b"mg a T100 t v\r\n",
            b"mg a T0 t\r\n",
            b"mg b T10\r\n",
        ),
        text("meta-hit-last", b"ms a 1\r\nx\r\n", b"mg a h\r\n", b"mg a h l\r\n", b"mg a h\r\n"),
        text(
            "meta-base64-key",
            b"ms YWJj 1 b\r\nx\r\n",
            b"mg abc v\r\n",
            b"mg YWJj b v k\r\n",
            b"md YWJj b q\r\n",
            b"mg abc v\r\n",
        ),
        text(
            "meta-vivify",
            b"mg a N30 v c\r\n",
            b"mg a v\r\n",
            b"mg a N30 v\r\n",
            b"ms a 1 T0\r\nx\r\n",
            b"mg a v\r\n",
        ),
        # -- binary ----------------------------------------------------------------------
        binary(
            "bin-get-set",
            Bin(GET, b"a", opaque=1),
            Bin(SET, b"a", store_extras(5), b"v1"),
            Bin(GET, b"a", opaque=2),
            Bin(GETK, b"a", opaque=3),
            Bin(GETK, b"b", opaque=4),
            Bin(GETQ, b"b", opaque=5),
            Bin(GETQ, b"a", opaque=6),
            Bin(GETKQ, b"a"),
            Bin(GETKQ, b"b"),
        ),
        binary(
            "bin-quiet-stores",
            Bin(SETQ, b"a", store_extras(1), b"1"),
            Bin(ADDQ, b"a", store_extras(), b"2", opaque=7),
            Bin(ADDQ, b"b", store_extras(), b"2"),
            Bin(REPLACEQ, b"c", store_extras(), b"3", opaque=8),
            Bin(APPENDQ, b"a", value=b">"),
            Bin(PREPENDQ, b"a", value=b"<"),
            Bin(APPENDQ, b"z", value=b">", opaque=9),
            Bin(GET, b"a"),
            Bin(DELETEQ, b"a"),
            Bin(DELETEQ, b"a", opaque=10),
            Bin(GET, b"a"),
        ),
        binary(
            "bin-add-replace",
            Bin(ADD, b"a", store_extras(), b"1"),
            Bin(ADD, b"a", store_extras(), b"2"),
            Bin(REPLACE, b"b", store_extras(), b"1"),
            Bin(REPLACE, b"a", store_extras(3), b"3"),
            Bin(GET, b"a"),
            Bin(APPEND, b"b", value=b"x"),
            Bin(PREPEND, b"a", value=b"x"),
            Bin(GET, b"a"),
        ),
        binary(
            "bin-cas",
            Bin(SET, b"a", store_extras(), b"1"),
            Bin(SET, b"a", store_extras(), b"2", cas=-1),
            Bin(SET, b"a", store_extras(), b"3", cas=1),
            Bin(REPLACE, b"a", store_extras(), b"4", cas=-1),
            Bin(GET, b"a"),
            Bin(DELETE, b"a", cas=1),
            Bin(DELETE, b"a", cas=-1),
            Bin(SET, b"b", store_extras(), b"5", cas=77),
        ),
        binary(
            "bin-add-with-cas",
            Bin(ADD, b"a", store_extras(), b"1", cas=5),
            Bin(SET, b"a", store_extras(), b"1"),
            Bin(ADD, b"a", store_extras(), b"2", cas=1),
            Bin(GET, b"a"),
            Bin(ADD, b"a", store_extras(), b"3", cas=-1),
            Bin(GET, b"a"),
        ),
        binary(
            "bin-append-cas",
            Bin(SET, b"a", store_extras(), b"1"),
            Bin(APPEND, b"a", value=b"2", cas=1),
            Bin(GET, b"a"),
            Bin(APPEND, b"a", value=b"3", cas=-1),
            Bin(GET, b"a"),
            Bin(APPEND, b"b", value=b"3", cas=9),
        ),
        binary(
            "bin-arith",
            Bin(INCR, b"n", arith_extras(1, 0, NO_CREATE)),
            Bin(INCR, b"n", arith_extras(1, 10)),
            Bin(INCR, b"n", arith_extras(5, 10)),
            Bin(DECR, b"n", arith_extras(100)),
            Bin(GET, b"n"),
            Bin(INCRQ, b"n", arith_extras(7)),
            Bin(DECRQ, b"m", arith_extras(1, 0, NO_CREATE), opaque=3),
            Bin(GET, b"n"),
            Bin(SET, b"s", store_extras(), b"x"),
            Bin(INCR, b"s", arith_extras(1)),
            Bin(INCR, b"n", arith_extras(1), cas=1),
        ),
        binary(
            "bin-incr-keeps-length",
            Bin(SET, b"n", store_extras(), b"100"),
            Bin(DECR, b"n", arith_extras(1)),
            Bin(GET, b"n"),
            Bin(DECR, b"n", arith_extras(98)),
            Bin(GET, b"n"),
            Bin(INCR, b"n", arith_extras(1000)),
            Bin(GET, b"n"),
        ),
        binary(
            "bin-touch-gat",
            Bin(TOUCH, b"a", u32(10)),
            Bin(SET, b"a", store_extras(2), b"x"),
            Bin(TOUCH, b"a", u32(100)),
            Bin(GAT, b"a", u32(100)),
            Bin(GATK, b"a", u32(0)),
            Bin(GATQ, b"b", u32(0)),
            Bin(GATKQ, b"a", u32(0)),
            Bin(GAT, b"b", u32(0)),
            Bin(GATK, b"b", u32(0)),
        ),
        binary(
            "bin-flush",
            Bin(SET, b"a", store_extras(), b"x"),
            Bin(FLUSH, opaque=4),
            Bin(GET, b"a"),
            Bin(SET, b"a", store_extras(), b"x"),
            Bin(FLUSHQ),
            Bin(GET, b"a"),
            Bin(SET, b"a", store_extras(), b"x"),
            Bin(FLUSH, extras=u32(100)),
            Bin(GET, b"a"),
        ),
        binary("bin-misc", Bin(NOOP, opaque=3), Bin(VERSION, opaque=4)),
        binary("bin-quit", Bin(SET, b"a", store_extras(), b"x"), Bin(QUIT, opaque=9), closes=True),
        binary("bin-quitq", Bin(QUITQ, opaque=9), closes=True),
    ]


def bench_cases() -> list[Case]:
    """Malformed input, and features newer than Debian's 1.6.18: where memcached releases
    differ, cachier follows the newest."""
    return [
        text("meta-new-cas", b"ms a 1 E5000\r\n4\r\n", b"mg a c\r\n"),
        text("meta-append-vivify", b"ms c 1 MA N0\r\nz\r\n", b"mg c v\r\n"),
        binary("bin-verbosity", Bin(VERBOSITY, extras=u32(1), opaque=5), closes=True),
        text("delete-zero", b"set a 0 0 1\r\nx\r\n", b"delete a 0\r\n", b"delete a 0 noreply\r\n"),
        text(
            "delete-delay",
            b"set a 0 0 1\r\nx\r\n",
            b"delete a 5\r\n",
            b"get a\r\n",
            b"set a 0 0 1\r\nx\r\n",
            b"delete a 5 noreply\r\n",
            b"get a\r\n",
            b"delete a 0 0\r\n",
            b"delete\r\n",
        ),
        text(
            "cachedump",
            b"stats cachedump 1 1\r\n",
            b"stats cachedump 1\r\n",
            b"stats cachedump 64 0\r\n",
            b"stats cachedump x 0\r\n",
            b"stats cachedump 2 0\r\n",
        ),
        text(
            "memlimit",
            b"cache_memlimit 50\r\n",
            b"cache_memlimit 5\r\n",
            b"cache_memlimit x\r\n",
            b"cache_memlimit\r\n",
        ),
        text(
            "too-few-tokens",
            b"get\r\n",
            b"gets\r\n",
            b"gat 10\r\n",
            b"gat\r\n",
            b"gats 10\r\n",
            b"delete\r\n",
            b"incr\r\n",
            b"incr a\r\n",
            b"decr a\r\n",
            b"touch a\r\n",
            b"set k 0 0\r\n",
            b"verbosity\r\n",
            b"mg\r\n",
            b"md\r\n",
            b"ma\r\n",
            b"ms a\r\n",
            b"me\r\n",
        ),
        text(
            "short-lines",
            b"\r\n",
            b"x\r\n",
            b"xy\r\n",
            b"\n",
            b"bogus\r\n",
            b"GET k\r\n",
            b" get a\r\n",
            b"get  a\r\n",
            b"mn x\r\n",
        ),
        text(
            "bad-numbers",
            b"incr a -1\r\n",
            b"incr a x\r\n",
            b"touch a x\r\n",
            b"set a x 0 1\r\nx\r\n",
            b"set a 0 x 1\r\nx\r\n",
            b"set a 0 0 -1\r\n",
            b"set a 0 0 x\r\n",
            b"flush_all x\r\n",
            b"verbosity x\r\n",
            b"verbosity\r\n",
        ),
        text(
            "extra-tokens",
            b"get a b c d e f\r\n",
            b"set n 0 0 1\r\n1\r\n",
            b"incr n 1 2\r\n",
            b"decr n 1 2 noreply\r\n",
            b"touch n 1 2\r\n",
            b"touch n 1 2 noreply\r\n",
            b"set a 0 0 1 noreply extra\r\nx\r\n",
            b"set a 0 0 1 extra noreply\r\nx\r\n",
            b"cas a 0 0 1 1 x y\r\nx\r\n",
            b"version x\r\n",
            b"flush_all 0 0\r\n",
            b"flush_all 0 noreply x\r\n",
            b"verbosity 1 2\r\n",
            b"verbosity 1 2 noreply\r\n",
        ),
        text("quit-extra", b"quit x\r\n", closes=True),
        text(
            "long-key",
            b"get " + b"k" * 251 + b"\r\n",
            b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n",
            b"delete " + b"k" * 251 + b"\r\n",
            b"incr " + b"k" * 251 + b" 1\r\n",
            b"mg " + b"k" * 251 + b" v\r\n",
        ),
        text("bad-data-chunk", b"set a 0 0 1\r\nxyz\r\n"),
        text("unknown", b"foo\r\n", b"stats nothing\r\n", b"GET / HTTP/1.1\r\n", closes=True),
        text(
            "meta-bad",
            b"mg\r\n",
            b"ms a\r\n",
            b"ms a x\r\n",
            b"ms a 1 MZ\r\nx\r\n",
            b"ma a MZ\r\n",
            b"mg a !\r\n",
            b"md\r\n",
            b"ma a Dx\r\n",
        ),
        binary("bin-unknown-empty", Bin(0x50, opaque=1), Bin(0x51, opaque=2)),
        binary("bin-unknown-body", Bin(0x50, b"key", value=b"body", opaque=1), closes=True),
        binary("bin-bad-shape", Bin(GET, b"a", u32(0), opaque=1), closes=True),
        binary("bin-version-body", Bin(VERSION, value=b"x", opaque=1), closes=True),
        binary("bin-long-key", Bin(GET, b"k" * 251, opaque=1), closes=True),
    ]
