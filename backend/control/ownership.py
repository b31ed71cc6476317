"""Which process serves which cluster: claims, heartbeats and release (issue 14).

Several ``cachier-backend`` processes share one PostgreSQL control plane, each serving
the clusters it was started with (``--clusters``). Ownership is a row per cluster in
``cluster_owners``: the owner's process id, its API URL, its proxies' advertised
addresses, and a heartbeat written by the database's own clock (so hosts whose clocks
differ still agree on an age).

* **Claim** (at start, once the listeners are bound and their ports known): one
  transaction, serialized between starters (``lock_owners``). A cluster whose owner is
  another process with a fresh heartbeat is refused, naming that owner; a stale one
  (``STALE_AFTER_S`` without a heartbeat: the owner was killed or hangs) is taken over.
* **Heartbeat**: every ``HEARTBEAT_INTERVAL_S`` on the control thread, the owned rows'
  heartbeats are renewed in one statement and every owner is read back, which tells this
  process where the other clusters are (``ClusterOwners``, only when it changed).
* **Release** (clean stop): the heartbeat is set to 0, so a restart or another process
  takes the clusters at once; the row keeps the last known addresses.

Why 3 intervals: one missed heartbeat (a slow request on the control loop, a busy
database) must not let a second process take a live cluster, and a killed owner's
clusters should be free within a few seconds. 3 x 1 s keeps takeover faster than a
client's typical reconnect back-off while tolerating two missed beats.

The embedded SQLite mode never builds an ``Ownership``: one process owns everything,
and nothing is written (see ``backend.service``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket

from backend.control.notify import CHANNEL, owners_payload
from backend.control.repository import ControlRepository, OwnerRow
from backend.events import ClusterOwners

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
STALE_AFTER_BEATS = 3
STALE_AFTER_S = HEARTBEAT_INTERVAL_S * STALE_AFTER_BEATS


class OwnershipRefused(RuntimeError):
    """A cluster this process was told to serve is served by another, live process."""


def new_process_id() -> str:
    """Unique per start, readable in a refusal: host, pid, and a random tag (a pid is
    reused after a restart, a container's host name repeats)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Ownership:
    """This process's claim on its clusters. Every method runs on the control thread,
    where the repository's connection lives."""

    def __init__(
        self,
        repository: ControlRepository,
        process_id: str,
        clusters: list[str],
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.repository = repository
        self.process_id = process_id
        self.clusters = sorted(clusters)
        self.stale_after_s = stale_after_s
        self.claimed = False
        self._published: ClusterOwners | None = None
        self._lost: set[str] = set()
        # cluster -> the API URL of the other process serving it, as of the last read
        # (every heartbeat): where a cache's statistics are asked for (``peerstats``).
        self.api_urls: dict[str, str] = {}

    def live_owner(self, row: OwnerRow) -> bool:
        """Whether ``row`` names another process that still beats."""
        return (
            row.process_id != self.process_id
            and row.heartbeat_at > 0
            and row.age_s < self.stale_after_s
        )

    def claim(self, api_url: str, proxies: dict[str, dict[str, str]]) -> None:
        """Take this process's clusters, or take none (``OwnershipRefused``).

        ``proxies``: cluster -> {proxy hostname: advertised "host:port"}. The other
        processes hear of it by notification when the transaction commits.
        """
        repository = self.repository
        with repository.transaction():
            repository.lock_owners()
            current = {row.cluster: row for row in repository.owners()}
            for cluster in self.clusters:
                row = current.get(cluster)
                if row is not None and self.live_owner(row):
                    raise OwnershipRefused(
                        f"cluster {cluster} is served by process {row.process_id} "
                        f"(API {row.api_url}, heartbeat {row.age_s:.1f} s ago); stop it, "
                        "or start this process with other --clusters"
                    )
            for cluster in self.clusters:
                row = current.get(cluster)
                if row is not None and row.process_id != self.process_id and row.heartbeat_at:
                    log.warning(
                        "taking over cluster %s from process %s (no heartbeat for %.1f s)",
                        cluster,
                        row.process_id,
                        row.age_s,
                    )
                repository.set_owner(
                    cluster, self.process_id, api_url, json.dumps(proxies.get(cluster, {}))
                )
            repository.notify(CHANNEL, owners_payload(self.process_id))
        self.claimed = True

    def beat(self) -> ClusterOwners | None:
        """Renew the heartbeat and read every owner; returns ``ClusterOwners`` when where
        the other clusters are served changed since the last one returned."""
        renewed = self.repository.beat(self.process_id) if self.claimed else 0
        return self._owners_changed(renewed)

    def refresh(self) -> ClusterOwners | None:
        """Read every owner (another process claimed or released); like ``beat``."""
        return self._owners_changed(None)

    def _owners_changed(self, renewed: int | None) -> ClusterOwners | None:
        rows = self.repository.owners()
        self.api_urls = {r.cluster: r.api_url for r in rows if r.process_id != self.process_id}
        if renewed is not None and self.claimed and renewed < len(self.clusters):
            lost = {
                r.cluster
                for r in rows
                if r.cluster in self.clusters and r.process_id != self.process_id
            }
            if lost - self._lost:  # said once per loss, not at every beat
                log.error(
                    "clusters %s were taken over by another process (this one missed its "
                    "heartbeats); restart this process with other --clusters",
                    ", ".join(sorted(lost)),
                )
            self._lost = lost
        owners = remote_owners(rows, self.process_id)
        if owners == self._published:
            return None
        self._published = owners
        return owners

    def release(self) -> None:
        """Give the clusters up (a clean stop): stale at once for the next claimer."""
        if not self.claimed:
            return
        with self.repository.transaction():
            self.repository.release_owner(self.process_id)
            self.repository.notify(CHANNEL, owners_payload(self.process_id))
        self.claimed = False


def remote_owners(rows: list[OwnerRow], process_id: str) -> ClusterOwners:
    """The clusters other processes serve (or served last: a dead owner's addresses
    refuse connections, which is the truth), with their proxies' addresses in hostname
    order."""
    return ClusterOwners(
        tuple(
            (row.cluster, tuple(row.proxies[h] for h in sorted(row.proxies)))
            for row in rows
            if row.process_id != process_id
        )
    )
