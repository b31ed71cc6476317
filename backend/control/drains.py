"""Delivery of app log lines to per-app HTTP(S) log drains, the way Heroku's Logplex sends them.

Drains run on the control thread's loop (``backend.loops``), beside the API, so nothing here
may block it: ``submit`` only appends the line to a bounded per-drain queue; one background
task per drain URL formats the queue into batches and POSTs them. A slow or dead drain
therefore costs its own queue (oldest lines are dropped and counted, like Logplex's "drain
buffer overflow") and never anyone's latency. That queue-and-worker machinery (with retries and
the graceful stop) is ``backend.outbox``, shared with alert webhooks; the Logplex framing,
batching and headers are here.

Wire format (Logplex ``application/logplex-1``): the body is RFC 5424 messages, each prefixed by
its byte length and a space (RFC 6587 octet counting), with headers ``Logplex-Msg-Count``,
``Logplex-Frame-Id`` (kept across retries of the same batch so receivers can de-duplicate) and
``Logplex-Drain-Token``. Basic-auth credentials in the drain URL are sent as HTTP basic auth.

Drain URLs can carry credentials (user:password, path or query tokens), and log messages belong
to tenants, so neither is ever logged here; drains are named by scheme, host, port and token.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import httpx

from backend.egress import EgressPolicy
from backend.outbox import Destination, Outbox, describe

log = logging.getLogger(__name__)

PRI = 190  # facility local7 (23) * 8 + severity info (6), one of the facilities Heroku uses
PROCID = "cachier"
MSGID = "-"
CONTENT_TYPE = "application/logplex-1"
USER_AGENT = "cachier-logdrain/1"
TIMEOUT_S = 5.0
# RFC 5424 section 6: header fields are 1..N printable US-ASCII characters, no spaces.
HOSTNAME_MAX = 255
APP_NAME_MAX = 48
TIMESTAMP_MAX = 64

_UNSAFE_HEADER_CHAR = re.compile(r"[^!-~]")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")


@dataclass(frozen=True)
class DrainLine:
    """One app log line, as the control plane records it."""

    t: str  # RFC 3339 timestamp, e.g. "2026-11-26T13:12:47.248Z"
    source: str  # e.g. "cachier"; becomes the syslog APP-NAME
    message: str
    app: str  # the app / cache name; becomes the syslog HOSTNAME, like Heroku's "host"


def _header_field(value: str, limit: int) -> str:
    """A header field that cannot shift the fields after it.

    A space or non-ASCII character in a field would make every later field (and the message)
    parse wrongly, so such characters become ``_``; an empty field becomes the NILVALUE ``-``.
    """
    value = value[:limit]
    if not (value.isascii() and value.isprintable() and " " not in value):
        value = _UNSAFE_HEADER_CHAR.sub("_", value)
    return value or "-"


def syslog_frame(line: DrainLine) -> bytes:
    """One log line framed exactly as Heroku's Logplex frames HTTPS drain messages.

    ``b"<len> <190>1 TIMESTAMP HOSTNAME APP-NAME cachier - MSG\n"``: the RFC 5424 header
    with PRI 190 (local7.info), HOSTNAME the app, APP-NAME the source, PROCID ``cachier``,
    MSGID NILVALUE — and, as Logplex does, no STRUCTURED-DATA field, the message right after
    the MSGID and a newline that ``len`` (RFC 6587 octet counting) includes. Parsers written
    for Heroku drains split on those first seven spaces. Line breaks inside MSG become
    spaces; unencodable characters (lone surrogates) become ``?`` rather than raising.
    """
    message = line.message
    if "\n" in message or "\r" in message:
        message = _LINE_BREAK.sub(" ", message)
    text = (
        f"<{PRI}>1 {_header_field(line.t, TIMESTAMP_MAX)} {_header_field(line.app, HOSTNAME_MAX)}"
        f" {_header_field(line.source, APP_NAME_MAX)} {PROCID} {MSGID} {message}\n"
    )
    payload = text.encode("utf-8", "replace")
    return b"%d %s" % (len(payload), payload)


def drain_token(url: str) -> str:
    """A stable ``d.<uuid>`` token for a drain URL (Logplex's Logplex-Drain-Token).

    Derived from the URL without its user:password part, so it survives restarts and password
    rotation and does not carry a hash of the password to wherever the header ends up.
    """
    try:
        parts = urlsplit(url)
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    except ValueError:
        pass
    return f"d.{uuid.uuid5(uuid.NAMESPACE_URL, url)}"


def _usable(url: str) -> bool:
    """Only http(s) URLs with a host are drains; anything else would fail every attempt."""
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _describe(url: str, token: str) -> str:
    """How logs name a drain: scheme, host and port (no credentials, path or query) and token."""
    return f"{describe(url)} ({token})"


@dataclass(eq=False)
class _Drain(Destination[DrainLine]):
    """Queue, counters and worker of one drain URL, and its Logplex-Drain-Token."""

    token: str = "-"
    usable: bool = True


class LogDrains(Outbox[_Drain]):
    """Non-blocking delivery of log lines to HTTP(S) log drains, one worker task per URL
    (the queue, worker, retry and stop machinery is ``backend.outbox``).

    ``stats`` maps each URL seen by ``submit`` to a fresh snapshot
    ``{"delivered": int, "dropped": int, "failed_attempts": int, "queued": int}``, counted in
    lines except ``failed_attempts`` (POSTs that got an error, a non-2xx status or no answer in
    time). ``dropped`` counts queue overflows, batches given up after ``retries`` retries, lines
    for unusable (non-http(s)) URLs, and lines still undelivered when ``stop`` gives up.
    The keys are the drain URLs as submitted, so treat ``stats`` as holding secrets.
    """

    _log: ClassVar[logging.Logger] = log
    _kind: ClassVar[str] = "log drain"
    _unit: ClassVar[str] = "batch"
    _task_name: ClassVar[str] = "log-drain"

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        batch_max: int = 100,
        queue_max: int = 10_000,
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = TIMEOUT_S,
        egress: EgressPolicy | None = None,
    ) -> None:
        if batch_max < 1 or queue_max < 1 or retries < 0 or backoff_s < 0 or timeout_s <= 0:
            raise ValueError(
                "log drains: need batch_max, queue_max >= 1, retries, backoff_s >= 0, timeout_s > 0"
            )
        super().__init__(
            client=client,
            egress=egress,
            queue_max=queue_max,
            retries=retries,
            backoff_s=backoff_s,
            timeout_s=timeout_s,
        )
        self._batch_max = batch_max

    # -- the caller's side --------------------------------------------------------------
    @property
    def stats(self) -> dict[str, dict[str, int]]:
        # list(): submit() may add from a thread
        return {url: drain.stats() for url, drain in list(self._dests.items())}

    def submit(self, url: str, line: DrainLine) -> None:
        """Queue one line for ``url``; O(1), never awaits, never raises.

        Formatting is left to the drain's worker, so the caller pays for an append only. A full
        queue drops its oldest line (counted), since the newest lines are the ones an operator
        looks at. Lines submitted before ``start`` (or after ``stop``) wait in the
        queue for the next ``start``. Safe to call from another thread than the loop's.
        """
        try:
            drain = self._dests.get(url) or self._add(url)
            if not drain.usable:
                drain.dropped += 1
                return
            self._enqueue(drain, line)
            if self._running:
                self._notify(drain)
        except Exception as exc:  # the control plane must not fail because of a drain
            log.warning("log drain: line not queued (%s)", type(exc).__name__)

    def _add(self, url: str) -> _Drain:
        usable = _usable(url)
        token = drain_token(url) if usable else "-"
        drain = _Drain(url, deque(maxlen=self._queue_max), token=token, usable=usable)
        self._dests[url] = drain
        if not usable:
            log.warning(
                "log drain %s: not an http(s) URL, its lines are dropped", _describe(url, token)
            )
        return drain

    def _name(self, drain: _Drain) -> str:
        return _describe(drain.url, drain.token)

    # -- delivery -----------------------------------------------------------------------
    async def _deliver_next(self, drain: _Drain) -> None:
        """Deliver the next batch; while one POST is in flight, the next batch accumulates,
        so a busy drain gets big batches and a quiet one gets lines at once."""
        frames = self._take_frames(drain)
        if frames:
            drain.in_flight = len(frames)  # dropped if stop() cancels the worker meanwhile
            await self._deliver(drain, frames)
            drain.in_flight = 0

    def _take_frames(self, drain: _Drain) -> list[bytes]:
        """The next batch, formatted; a line that cannot be formatted (not a DrainLine of
        strings) is dropped and counted rather than failing the lines around it."""
        frames = []
        for _ in range(min(len(drain.queue), self._batch_max)):
            try:
                frames.append(syslog_frame(drain.queue.popleft()))
            except Exception:
                drain.dropped += 1
        return frames

    async def _deliver(self, drain: _Drain, frames: list[bytes]) -> None:
        """POST one batch with Logplex's headers, retried by ``Outbox._send``."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Logplex-Msg-Count": str(len(frames)),
            "Logplex-Frame-Id": uuid.uuid4().hex.upper(),  # the same on every retry
            "Logplex-Drain-Token": drain.token,
            "User-Agent": USER_AGENT,
        }
        body = b"".join(frames)
        await self._send(drain, len(frames), lambda: self._post(drain.url, headers, content=body))
