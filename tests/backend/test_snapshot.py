"""The snapshot file and the engine's export/restore, in-process: the rules a warm restart
relies on that a process-level test cannot reach quickly (renamed files, the plan's limit,
a pending delayed flush, the CAS watermark, many chunks)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backend import store
from backend.engine import Mode, SavedItem
from backend.snapshot import (
    CHUNK,
    CacheStart,
    SnapshotError,
    open_snapshot,
    snapshot_path,
    write_snapshot,
)
from backend.store import LruEngine

KEY = os.urandom(32)
MB = 1024 * 1024


def saved(engine: LruEngine, data_dir: Path, cluster: str = "a") -> Path:
    with write_snapshot(data_dir, cluster, KEY, store.cas_watermark()) as writer:
        writer.cache("c1", engine.pending_flush())
        for item in engine.export():
            writer.item(item)
    return snapshot_path(data_dir, cluster)


def records(path: Path, cluster: str = "a", key: bytes = KEY) -> list:
    out = []
    with open_snapshot(path, key, cluster) as reader:
        while (batch := reader.next_batch()) is not None:
            out += batch
    return out


def test_a_round_trip_keeps_every_field_and_the_lru_order(tmp_path: Path) -> None:
    engine = LruEngine("c1", 100 * MB)
    engine.store(Mode.SET, b"old", b"1", 5, 0)
    engine.store(Mode.SET, b"new", b"\x00" * 70_000, 0xFFFFFFFF, 3600)
    engine.delete(b"old", invalidate=True)  # stale, with a new CAS
    engine.get(b"new")  # fetched, most recently used
    before = list(engine.export())
    got = records(saved(engine, tmp_path))
    assert got[0] == CacheStart("c1", 0.0)
    assert got[1:] == before
    assert not snapshot_path(tmp_path, "a").exists()  # opening it removed it
    restored = LruEngine("c1", 100 * MB)
    assert restored.restore(got[1:]) == 2
    assert list(restored.export()) == before
    assert [e.key for e in restored.dump()] == [b"new", b"old"]
    assert restored.usage() == engine.usage()


def test_many_chunks_and_items_larger_than_a_chunk_share(tmp_path: Path) -> None:
    engine = LruEngine("c1", 100 * MB)
    for i in range(40):
        engine.store(Mode.SET, b"k%d" % i, bytes([i]) * (MB - 100), i, 0)
    path = saved(engine, tmp_path)
    assert path.stat().st_size > 39 * MB
    got = records(path)
    assert [r.flags for r in got[1:]] == list(range(40))
    assert all(r.value == bytes([r.flags]) * (MB - 100) for r in got[1:])
    assert CHUNK == MB  # one such item per chunk: 41 frames, each authenticated


def test_a_snapshot_renamed_to_another_clusters_name_is_refused(tmp_path: Path) -> None:
    engine = LruEngine("c1", MB)
    engine.store(Mode.SET, b"k", b"v", 0, 0)
    saved(engine, tmp_path, "a").rename(snapshot_path(tmp_path, "b"))
    with pytest.raises(SnapshotError, match="cluster 'a'"):
        records(snapshot_path(tmp_path, "b"), "b")


def test_another_key_is_refused(tmp_path: Path) -> None:
    engine = LruEngine("c1", MB)
    engine.store(Mode.SET, b"k", b"v", 0, 0)
    with pytest.raises(SnapshotError, match="does not authenticate"):
        records(saved(engine, tmp_path), key=os.urandom(32))


def test_bytes_after_the_last_chunk_are_refused(tmp_path: Path) -> None:
    engine = LruEngine("c1", MB)
    engine.store(Mode.SET, b"k", b"v", 0, 0)
    path = saved(engine, tmp_path)
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(SnapshotError, match="after the last chunk"):
        records(path)


def test_the_file_is_private_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    engine = LruEngine("c1", MB)
    path = saved(engine, tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_restore_drops_expired_items_and_keeps_a_smaller_plan(tmp_path: Path) -> None:
    now = time.time()
    items = [
        SavedItem(b"gone", b"x", 0, now - 1, 1, now, now, False, False),
        *(
            SavedItem(b"k%d" % i, b"v" * 1000, 0, 0.0, 2 + i, now, now, False, False)
            for i in range(10)
        ),
    ]
    engine = LruEngine("c1", 5 * 1500)  # room for 5 of them: the oldest go
    engine.restore(items)
    assert [e.key for e in engine.dump()] == [b"k9", b"k8", b"k7", b"k6", b"k5"]
    assert engine.usage().bytes <= engine.limit


def test_a_pending_delayed_flush_survives_and_a_past_one_applies(tmp_path: Path) -> None:
    now = time.time()
    item = SavedItem(b"k", b"v", 0, 0.0, 1, now - 10, now - 10, False, False)
    due = LruEngine("c1", MB)
    due.restore([item], pending_flush=now - 1)  # passed while down: it kills the item
    assert due.usage().items == 0
    later = LruEngine("c1", MB)
    later.restore([item], pending_flush=now + 60)
    assert later.usage().items == 1 and later.pending_flush() == now + 60


def test_the_cas_watermark_moves_the_counter_forward_only() -> None:
    mark = store.cas_watermark()
    store.advance_cas(mark + 1000)
    engine = LruEngine("c1", MB)
    assert engine.store(Mode.SET, b"k", b"v", 0, 0)[1] >= mark + 1000
    store.advance_cas(1)  # an older snapshot's watermark never moves it back
    assert engine.store(Mode.SET, b"k", b"v", 0, 0)[1] > mark + 1000
