"""Control-plane changes between processes: PostgreSQL NOTIFY out, LISTEN in (issue 14).

Out: the control plane hands ``Forwarder.send`` the events of each transaction *inside*
that transaction; it sends one ``pg_notify`` on ``CHANNEL``, which PostgreSQL delivers
on commit only (never for a rollback), in commit order.

What travels is *which caches changed*, never the change itself: a notification carries
cache ids (and, for a flush, which is an action rather than state, its origin and proxy),
so no secret (a password, a drain URL) is ever in a payload, a payload stays far below
PostgreSQL's 8000 bytes, and a receiver cannot be told a state the database does not
hold. The receiver re-reads those caches' rows (``Follower.reconcile``) and publishes
on its own bus the events that turn its records into the database's: the data plane,
analytics and the monitor then follow exactly as they follow local changes.

In: ``Listener`` holds one psycopg async connection on the control loop (never on the
serving loop), LISTENs, and hands every notification from another process to the
control plane. After every (re)connection it first LISTENs and then re-reads all state
(``Follower.resync``), so nothing committed while it was disconnected is missed (a
credential revoked meanwhile is revoked here too), and nothing committed after the read
goes unnotified. From the loss until that re-read, the data plane refuses new
authentications (``ControlLink``): no revoked credential logs in during the gap.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from backend.events import CacheFlushed, CacheMoved, Event, LogLineWritten

log = logging.getLogger(__name__)

CHANNEL = "cachier_events"
# PostgreSQL refuses payloads of 8000 bytes or more; a transaction touching so many
# caches (none does today) tells the receivers to re-read everything instead.
MAX_PAYLOAD = 7000
RECONNECT_MAX_S = 2.0
FAULT_MODES = ("none", "slow", "down")
CONNECT_TIMEOUT_S = 5


def owners_payload(process_id: str) -> str:
    """Cluster ownership changed (a claim or a release): re-read ``cluster_owners``."""
    return json.dumps({"p": process_id, "owners": True})


def status_payload(process_id: str) -> str:
    """The leading monitor recorded a change of light: the followers re-read the status."""
    return json.dumps({"p": process_id, "status": True})


def encode(process_id: str, events: list[Event], touched: list[str]) -> str | None:
    """The notification of one transaction, or None when it changed nothing shared.

    Actions keep the transaction's order: ``["f", cache_id, origin, proxy]`` runs a
    flush, ``["c", cache_id, moved_by_proxy]`` re-reads a cache (once per cache).
    ``touched`` are caches whose log said they changed without an event of their own
    (an app's log drain, pushed config vars).
    """
    actions: list[list[str]] = []
    seen: set[str] = set()

    def changed(cache_id: str, proxy: str = "") -> None:
        if cache_id not in seen:
            seen.add(cache_id)
            actions.append(["c", cache_id, proxy])

    for event in events:
        if isinstance(event, CacheFlushed):
            actions.append(["f", event.cache_id, event.origin, event.proxy])
        elif isinstance(event, CacheMoved):
            changed(event.cache_id, event.proxy)
        elif isinstance(event, LogLineWritten):
            continue  # the log is in the database; the writer alone forwards it to drains
        elif hasattr(event, "cache_id"):
            changed(event.cache_id)
    for cache_id in touched:
        changed(cache_id)
    if not actions:
        return None
    payload = json.dumps({"p": process_id, "a": actions}, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD:
        payload = json.dumps({"p": process_id, "all": True})
    return payload


class Forwarder:
    """``ControlPlane.forward``: one NOTIFY per transaction that changed something."""

    def __init__(self, notify: Callable[[str, str], None], process_id: str) -> None:
        self.notify = notify
        self.process_id = process_id

    def __call__(self, events: list[Event], touched: list[str]) -> None:
        payload = encode(self.process_id, events, touched)
        if payload is not None:
            self.notify(CHANNEL, payload)


class Receiver:
    """What a notification from another process does here (on the control thread)."""

    def __init__(
        self,
        process_id: str,
        reconcile: Callable[[str, str], None],
        flush: Callable[[str, str, str], None],
        resync: Callable[[], None],
        owners_changed: Callable[[], None],
        fault: Callable[[str, str, int], None] = lambda hostname, mode, delay_ms: None,
        fault_set: Callable[[str, str, int], None] = lambda hostname, mode, delay_ms: None,
        status: Callable[[], None] = lambda: None,
    ) -> None:
        self.process_id = process_id
        self.reconcile = reconcile
        self.flush = flush
        self.resync = resync
        self.owners_changed = owners_changed
        self.fault = fault  # an operator asked another process for a fault on a proxy
        self.fault_set = fault_set  # the owner of a proxy set a fault on it
        self.status = status  # the leading monitor recorded a change of light

    def __call__(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if message["p"] == self.process_id:
                return  # ours: already applied when it committed
            if message.get("owners"):
                self.owners_changed()
            if message.get("all"):
                self.resync()
            if message.get("status"):
                self.status()
            for kind, handler in (("fault", self.fault), ("fault_set", self.fault_set)):
                if kind in message:
                    hostname, mode, delay_ms = message[kind]
                    if mode not in FAULT_MODES or not isinstance(delay_ms, int):
                        raise ValueError(mode)
                    handler(str(hostname), mode, delay_ms)
            for action in message.get("a", ()):
                if action[0] == "f":
                    self.flush(str(action[1]), str(action[2]), str(action[3]))
                elif action[0] == "c":
                    self.reconcile(str(action[1]), str(action[2]))
        except (ValueError, KeyError, IndexError, TypeError):
            # Not ours (someone NOTIFYing on our channel): never worth a traceback.
            log.warning("ignored a malformed notification on %s (%d bytes)", CHANNEL, len(payload))


class Listener:
    """The LISTEN connection, on the control loop: ``run`` until cancelled, reconnecting
    with a short back-off. ``on_connected`` (the resync) runs after each LISTEN."""

    def __init__(
        self,
        url: str,
        process_id: str,
        on_message: Callable[[str], None],
        on_connected: Callable[[], None],
        on_link: Callable[[bool], None] = lambda up: None,
    ) -> None:
        self.url = url
        self.process_id = process_id
        self.on_message = on_message
        self.on_connected = on_connected
        self.on_link = on_link  # told False when lost, True once re-read after LISTEN
        self.connections = 0  # how many times it (re)connected: tests and logs
        self.connected = asyncio.Event()
        # The server-side pid of the current LISTEN connection (tests terminate it).
        self.backend_pid: int | None = None

    async def run(self) -> None:
        import psycopg

        delay = 0.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_S,
                    application_name=f"cachier-listen {self.process_id}"[:63],
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.on_connected()  # after LISTEN: whatever commits next is notified
                    if self.connections:
                        log.warning("control-plane notifications reconnected; state re-read")
                    self.connections += 1
                    self.connected.set()
                    self.on_link(True)
                    delay = 0.0
                    async for notification in conn.notifies():
                        self.on_message(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # psycopg.Error, OSError, a failed re-read
                if self.connected.is_set():
                    self.on_link(False)
                self.connected.clear()
                reason = " ".join(str(exc).split()) or type(exc).__name__
                log.warning("control-plane notifications lost (%s); reconnecting", reason)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(max(0.1, delay * 2), RECONNECT_MAX_S)
