"""Warm restart: a clean stop saves every served cluster's cache contents to the data
directory and the next start loads them, like memcached's restartable mode (``-e``).

What is kept: every live item with its value, flags, expiry, CAS and LRU position, a
pending delayed ``flush_all``, and the CAS counter's watermark (so a CAS handed out before
the restart is never handed out again). One snapshot per cluster (``backend/snapshot.py``),
so a process loads only the clusters it serves (``Config.clusters``) and processes sharing
a data directory never read each other's.

What is not: an unclean stop (``kill -9``, a crash, a power loss) saves nothing and the
next start is empty (a snapshot is removed as soon as it is opened); counters (``stats``)
start from zero, as memcached's do. Items of a cache deleted, or moved to another cluster,
while the process was down are skipped: the data plane's records, built from the control
plane's load events before the snapshot is read, decide which caches still live on the
cluster. Items that expired meanwhile are dropped.

Threads: ``restore`` runs on the serving loop before the listeners open. Reading and
decrypting happen in a worker thread, one chunk at a time; the items go into the engines
on the serving loop (engines belong to it), so an event arriving meanwhile (a cache
deleted) applies in order and the Textual dashboard stays responsive. ``save`` runs once
the service has stopped everything that could change an engine (listeners, sessions, the
control thread), so it reads the engines from a worker thread.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from backend.snapshot import (
    CacheStart,
    SnapshotError,
    open_snapshot,
    snapshot_path,
    temporary_path,
    write_snapshot,
)
from backend.store import advance_cas, cas_watermark

if TYPE_CHECKING:
    from backend.dataplane import DataPlane
    from backend.engine import SavedItem

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What one cluster's save or load did (logged, and read by ``bench/warm_restart.py``)."""

    cluster: str
    caches: int = 0
    items: int = 0
    bytes: int = 0  # keys and values
    seconds: float = 0.0
    sync_seconds: float = 0.0  # of ``seconds``, a save's wait for the disk (fsync)
    skipped: list[str] = field(default_factory=list)  # cache ids no longer on the cluster


def served_clusters(dataplane: DataPlane, clusters: Collection[str] | None) -> list[str]:
    """The clusters whose contents this process keeps: its stores, limited to
    ``--clusters`` when given."""
    return [name for name in dataplane.stores if clusters is None or name in clusters]


# -- saving -----------------------------------------------------------------------------
def save(
    dataplane: DataPlane, key: bytes, data_dir: Path, clusters: Collection[str] | None
) -> tuple[list[Report], list[str]]:
    """Write each served cluster's snapshot; returns the reports and one warning per
    cluster that could not be saved (a full disk must not turn a stop into a crash)."""
    watermark = cas_watermark()
    reports, warnings = [], []
    for cluster in served_clusters(dataplane, clusters):
        caches = [c for c in dataplane.caches_now() if c.cluster == cluster]
        if not caches:
            continue
        started = time.perf_counter()
        report = Report(cluster)
        try:
            with write_snapshot(data_dir, cluster, key, watermark) as writer:
                for cache in caches:
                    engine = dataplane.peek_engine(cache)
                    if engine is None:
                        continue
                    writer.cache(cache.id, engine.pending_flush())
                    for item in engine.export():
                        writer.item(item)
                    report.caches += 1
        except OSError as exc:
            warnings.append(f"warm restart: cluster {cluster} not saved: {exc}")
            log.warning("%s", warnings[-1])
            continue
        report.items, report.bytes = writer.items, writer.bytes
        report.seconds = time.perf_counter() - started
        report.sync_seconds = writer.sync_seconds
        log.info(
            "warm restart: saved %d items (%.1f MB) of %d caches of cluster %s in %.2f s "
            "(%.2f s of it waiting for the disk)",
            report.items,
            report.bytes / 1e6,
            report.caches,
            cluster,
            report.seconds,
            report.sync_seconds,
        )
        reports.append(report)
    return reports, warnings


# -- loading ----------------------------------------------------------------------------
async def restore(
    dataplane: DataPlane, key: bytes, data_dir: Path, clusters: Collection[str] | None
) -> tuple[list[Report], list[str]]:
    """Load each served cluster's snapshot, if there is one, on the calling (serving)
    loop; a snapshot that cannot be loaded is refused with a warning and its cluster starts
    empty. Never raises for a bad snapshot."""
    # Items hold no cycles, so the cyclic collector has nothing to find among the millions
    # of objects a load creates, yet would walk them over and over as they arrive (about
    # a third of a load's time, measured): it is paused meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return await _restore(dataplane, key, data_dir, clusters)
    finally:
        if collecting:
            gc.enable()


async def _restore(
    dataplane: DataPlane, key: bytes, data_dir: Path, clusters: Collection[str] | None
) -> tuple[list[Report], list[str]]:
    reports, warnings = [], []
    for cluster in served_clusters(dataplane, clusters):
        path = snapshot_path(data_dir, cluster)
        leftover = temporary_path(path)
        if leftover.exists():  # a save cut short by a crash: never a snapshot
            leftover.unlink(missing_ok=True)
        try:
            report = await _restore_cluster(dataplane, key, path, cluster)
        except FileNotFoundError:
            continue
        except (SnapshotError, OSError) as exc:
            warnings.append(
                f"warm restart: the snapshot of cluster {cluster} was refused ({exc}); "
                "its caches start empty"
            )
            log.warning("%s", warnings[-1])
            continue
        log.info(
            "warm restart: loaded %d items (%.1f MB) of %d caches of cluster %s in %.2f s%s",
            report.items,
            report.bytes / 1e6,
            report.caches,
            cluster,
            report.seconds,
            f"; {len(report.skipped)} caches deleted or moved meanwhile were skipped"
            if report.skipped
            else "",
        )
        reports.append(report)
    return reports, warnings


async def _restore_cluster(dataplane: DataPlane, key: bytes, path: Path, cluster: str) -> Report:
    started = time.perf_counter()
    loader = _Loader(dataplane, cluster)
    with open_snapshot(path, key, cluster) as reader:
        try:
            while (batch := await asyncio.to_thread(reader.next_batch)) is not None:
                loader.apply(batch)
        except BaseException:
            loader.undo()  # a refused snapshot is refused whole
            raise
        finally:
            # Once the header is authentic its CAS watermark is too: even items that are
            # not loaded had their CAS values handed out, which must not come back.
            if reader.authenticated:
                advance_cas(reader.cas_watermark)
    report = loader.report
    report.seconds = time.perf_counter() - started
    return report


class _Loader:
    """Applies a snapshot's records, chunk by chunk, to the engines of caches that still
    live on the cluster (checked again for every chunk: events apply between chunks)."""

    def __init__(self, dataplane: DataPlane, cluster: str) -> None:
        self.dataplane = dataplane
        self.cluster = cluster
        self.report = Report(cluster)
        self._cache: CacheStart | None = None
        self._loaded: set[str] = set()

    def apply(self, batch: list[CacheStart | SavedItem]) -> None:
        run: list[SavedItem] = []
        for record in batch:
            if isinstance(record, CacheStart):
                self._flush(run)
                run = []
                self._cache = record
            else:
                run.append(record)
        self._flush(run)

    def _flush(self, run: list[SavedItem]) -> None:
        start = self._cache
        if start is None:
            if run:
                raise SnapshotError("items before any cache")
            return
        cache = self.dataplane.caches.get(start.cache_id)
        report = self.report
        if cache is None or cache.cluster != self.cluster:
            if start.cache_id not in report.skipped:
                report.skipped.append(start.cache_id)
            return
        if start.cache_id not in self._loaded:
            self._loaded.add(start.cache_id)
            report.caches += 1
        engine = self.dataplane.engine_for(cache)
        report.items += engine.restore(run, start.pending_flush)
        self.dataplane.changes.note(engine)
        report.bytes += sum(len(item.key) + len(item.value) for item in run)

    def undo(self) -> None:
        for cache_id in self._loaded:
            cache = self.dataplane.caches.get(cache_id)
            if cache is not None and cache.cluster == self.cluster:
                engine = self.dataplane.engine_for(cache)
                engine.flush()
                self.dataplane.changes.note(engine)
