"""Delivery of app log lines to per-app HTTP(S) log drains, the way Heroku's Logplex sends them.

Drains run on the control thread's loop (``backend.loops``), beside the API, so nothing here
may block it: ``submit`` only appends the line to a bounded per-drain queue; one background
task per drain URL formats the queue into batches and POSTs them. A slow or dead drain
therefore costs its own queue (oldest lines are dropped and counted, like Logplex's "drain
buffer overflow") and never anyone's latency.

Wire format (Logplex ``application/logplex-1``): the body is RFC 5424 messages, each prefixed by
its byte length and a space (RFC 6587 octet counting), with headers ``Logplex-Msg-Count``,
``Logplex-Frame-Id`` (kept across retries of the same batch so receivers can de-duplicate) and
``Logplex-Drain-Token``. Basic-auth credentials in the drain URL are sent as HTTP basic auth.

Drain URLs can carry credentials (user:password, path or query tokens), and log messages belong
to tenants, so neither is ever logged here; drains are named by scheme, host, port and token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from backend.egress import EgressPolicy, guarded_client

log = logging.getLogger(__name__)

PRI = 190  # facility local7 (23) * 8 + severity info (6), one of the facilities Heroku uses
PROCID = "cachier"
MSGID = "-"
CONTENT_TYPE = "application/logplex-1"
USER_AGENT = "cachier-logdrain/1"
TIMEOUT_S = 5.0
STOP_GRACE_S = 2.0  # how long stop() lets the workers flush before cancelling them
MAX_BACKOFF_S = 30.0
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
    try:
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        where = "<invalid url>"
    return f"{where} ({token})"


@dataclass(eq=False)
class _Drain:
    """Queue, counters and worker of one drain URL."""

    url: str
    token: str
    usable: bool
    queue: deque[DrainLine]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    dropped: int = 0
    failed_attempts: int = 0
    failing: bool = False  # only state changes are logged, not every failed batch


class LogDrains:
    """Non-blocking delivery of log lines to HTTP(S) log drains, one worker task per URL.

    ``stats`` maps each URL seen by ``submit`` to a fresh snapshot
    ``{"delivered": int, "dropped": int, "failed_attempts": int, "queued": int}``, counted in
    lines except ``failed_attempts`` (POSTs that got an error, a non-2xx status or no answer in
    time). ``dropped`` counts queue overflows, batches given up after ``retries`` retries, lines
    for unusable (non-http(s)) URLs, and lines still undelivered when ``stop`` gives up.
    The keys are the drain URLs as submitted, so treat ``stats`` as holding secrets.
    """

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
        self._client = client
        self._own_client = client is None
        self._egress = egress or EgressPolicy()  # a client of the caller's own is its affair
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._drains: dict[str, _Drain] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._closing = False

    # -- the caller's side --------------------------------------------------------------
    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {
            url: {
                "delivered": drain.delivered,
                "dropped": drain.dropped,
                "failed_attempts": drain.failed_attempts,
                "queued": len(drain.queue),
            }
            for url, drain in list(self._drains.items())  # submit() may add from a thread
        }

    def submit(self, url: str, line: DrainLine) -> None:
        """Queue one line for ``url``; O(1), never awaits, never raises.

        Formatting is left to the drain's worker, so the caller pays for an append only. A full
        queue drops its oldest line (counted), since the newest lines are the ones an operator
        looks at. Lines submitted before ``start`` (or after ``stop``) wait in the
        queue for the next ``start``. Safe to call from another thread than the loop's.
        """
        try:
            drain = self._drains.get(url) or self._add(url)
            if not drain.usable:
                drain.dropped += 1
                return
            if len(drain.queue) == self._queue_max:
                drain.dropped += 1
            drain.queue.append(line)
            if self._running:
                self._notify(drain)
        except Exception as exc:  # the control plane must not fail because of a drain
            log.warning("log drain: line not queued (%s)", type(exc).__name__)

    def _add(self, url: str) -> _Drain:
        usable = _usable(url)
        token = drain_token(url) if usable else "-"
        drain = _Drain(url, token, usable, deque(maxlen=self._queue_max))
        self._drains[url] = drain
        if not usable:
            log.warning(
                "log drain %s: not an http(s) URL, its lines are dropped", _describe(url, token)
            )
        return drain

    def _notify(self, drain: _Drain) -> None:
        """Wake (or start) the drain's worker, from the loop's thread or any other."""
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            self._wake(drain)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake, drain)

    def _wake(self, drain: _Drain) -> None:
        if not self._running:
            return
        if drain.task is None or drain.task.done():
            if self._closing:  # stop() waits for no new worker: the line waits for start()
                return
            drain.task = asyncio.get_running_loop().create_task(self._run(drain), name="log-drain")
        drain.wake.set()

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start delivering: workers start for drains with queued lines, others on submit."""
        if self._running:
            return
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            self._client = guarded_client(self._egress, self._timeout_s)
        self._running = True
        self._closing = False
        for drain in self._drains.values():
            drain.wake = asyncio.Event()  # an Event must not outlive the loop it waited in
            if drain.queue:
                self._wake(drain)

    async def stop(self) -> None:
        """Flush for up to ~2 s, then cancel; what is still undelivered counts as dropped."""
        if not self._running:
            return
        self._closing = True
        tasks = [d.task for d in self._drains.values() if d.task is not None and not d.task.done()]
        for drain in self._drains.values():
            drain.wake.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._running = False
        for drain in self._drains.values():
            drain.task = None
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- delivery -----------------------------------------------------------------------
    async def _run(self, drain: _Drain) -> None:
        """Deliver the drain's queue batch by batch; while one POST is in flight, the next
        batch accumulates, so a busy drain gets big batches and a quiet one gets lines at once."""
        frames: list[bytes] = []
        try:
            while True:
                if not drain.queue:
                    if self._closing:
                        return
                    drain.wake.clear()
                    await drain.wake.wait()
                    continue
                frames = self._take_frames(drain)
                if frames:
                    await self._deliver(drain, frames)
                frames = []
        except asyncio.CancelledError:
            drain.dropped += len(frames) + len(drain.queue)
            drain.queue.clear()
            raise

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
        """POST one batch, retrying with exponential backoff; give up (counted) after
        ``retries`` retries so a dead drain cannot hold its newer lines back forever."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Logplex-Msg-Count": str(len(frames)),
            "Logplex-Frame-Id": uuid.uuid4().hex.upper(),  # the same on every retry
            "Logplex-Drain-Token": drain.token,
            "User-Agent": USER_AGENT,
        }
        body = b"".join(frames)
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(min(self._backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            if await self._post(drain.url, body, headers):
                drain.delivered += len(frames)
                self._set_failing(drain, False)
                return
            drain.failed_attempts += 1
        drain.dropped += len(frames)
        self._set_failing(drain, True)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        """One attempt: True on a 2xx answer within the timeout, False on anything else.

        The overall ``wait_for`` bounds what httpx's per-phase timeouts do not (a receiver
        trickling its answer)."""
        assert self._client is not None
        try:
            response = await asyncio.wait_for(
                self._client.post(url, content=body, headers=headers, timeout=self._timeout_s),
                self._timeout_s,
            )
        except Exception:  # connection errors, timeouts, protocol errors: all mean "retry"
            return False
        return 200 <= response.status_code < 300

    def _set_failing(self, drain: _Drain, failing: bool) -> None:
        """Log a drain going bad or recovering once, not once per batch."""
        if failing == drain.failing:
            return
        drain.failing = failing
        if failing:
            log.warning(
                "log drain %s: batch dropped after %d attempts",
                _describe(drain.url, drain.token),
                self._retries + 1,
            )
        else:
            log.info("log drain %s: delivering again", _describe(drain.url, drain.token))
