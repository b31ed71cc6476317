"""What the data directory gives away to someone who can read it: nothing secret, and it is
readable by its owner only."""

from __future__ import annotations

import logging
import sqlite3
import stat
from pathlib import Path

import httpx

from tests.conftest import CacheHandle, RunningService, make_config

DRAIN = "http://drain-user:Pw4drainOnly@127.0.0.1:9/logs?token=Tok4drainOnly"


def raw_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_drain_url_is_encrypted_at_rest_and_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = RunningService(make_config(data)).start()
    try:
        cache = CacheHandle(first.create_cache("drained"))
        with httpx.Client(base_url=cache.dashboard_api) as client:
            assert client.put("/app/log-drain", json={"url": DRAIN}).status_code == 200
        running = raw_bytes(data)  # database, WAL and shared memory, as they are now
    finally:
        first.stop()
    for blob in (running, raw_bytes(data)):
        assert b"Pw4drainOnly" not in blob and b"Tok4drainOnly" not in blob
    second = RunningService(make_config(data)).start()
    try:
        api = cache.dashboard_api.replace(first.api_url, second.api_url)
        assert httpx.get(api + "/app").json()["log_drain"] == DRAIN
    finally:
        second.stop()


def test_a_plaintext_drain_left_by_an_older_version_is_encrypted_at_start(tmp_path) -> None:
    data = tmp_path / "data"
    first = RunningService(make_config(data)).start()
    cache = CacheHandle(first.create_cache("legacy"))
    first.stop()
    with sqlite3.connect(data / "cachier.sqlite3") as db:  # as schema 3 stored it
        db.execute("UPDATE apps SET log_drain = ?, log_drain_enc = NULL", (DRAIN,))
    assert b"Pw4drainOnly" in raw_bytes(data)
    second = RunningService(make_config(data)).start()
    try:
        api = cache.dashboard_api.replace(first.api_url, second.api_url)
        assert httpx.get(api + "/app").json()["log_drain"] == DRAIN
    finally:
        second.stop()
    assert b"Pw4drainOnly" not in raw_bytes(data)


def test_data_dir_and_files_are_private_even_when_they_were_not(tmp_path, caplog) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    stray = data / "notes.txt"
    stray.write_text("left here")
    stray.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="backend.datadir")
    running = RunningService(make_config(data)).start()
    try:
        CacheHandle(running.create_cache("private"))  # the database and its WAL are written
        files = sorted(p for p in data.iterdir() if p.is_file())
        assert {p.name for p in files} >= {"cachier.sqlite3", "cachier.sqlite3-wal", "secret.key"}
        assert mode(data) == 0o700
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        running.stop()
    changes = " ".join(r.getMessage() for r in caplog.records)
    assert "755 -> 700" in changes and "notes.txt 644 -> 600" in changes
