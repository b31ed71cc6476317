"""The control plane's database: --database URLs, one schema for both dialects, migrations
that concurrent starters cannot race, secrets encrypted in PostgreSQL too, reconnecting.

Tests on PostgreSQL create their own database (tests.conftest.postgres_database) and skip
when it is unreachable, except under CI=true where they fail.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from backend.control.database import (
    DatabaseUnavailable,
    DatabaseUrlError,
    open_repository,
    parse_database_url,
)
from backend.control.db import Database
from backend.control.sql import SCHEMA_VERSION
from tests.backend.test_data_at_rest import DRAIN
from tests.conftest import CacheHandle, RunningService, make_config, postgres_database

STARTERS = 8


def psycopg_connect(url: str):  # noqa: ANN201 (psycopg is imported lazily, as in backend)
    import psycopg

    return psycopg.connect(url, autocommit=True)


# -- URLs -----------------------------------------------------------------------------------
def test_database_urls_name_sqlite_files_or_postgresql() -> None:
    assert parse_database_url("").kind == "sqlite" and parse_database_url("").sqlite_path is None
    assert parse_database_url("sqlite:///var/lib/c.db").sqlite_path == Path("/var/lib/c.db")
    assert parse_database_url("postgresql://u@db.internal/cachier").kind == "postgresql"
    assert parse_database_url("postgres://u@db.internal:5433/cachier").kind == "postgresql"
    hidden = parse_database_url("postgresql://u:hunter2@db/cachier").redacted()
    assert hidden == "postgresql://u:***@db/cachier"


@pytest.mark.parametrize(
    "url", ["mysql://u@db/c", "sqlite://", "sqlite://host/file", "postgresql://db:port/c", "c.db"]
)
def test_a_bad_database_url_is_refused(url: str) -> None:
    with pytest.raises(DatabaseUrlError):
        parse_database_url(url)


def test_an_unreachable_postgresql_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = parse_database_url("postgresql://cachier:hunter2@127.0.0.1:1/cachier")
    with pytest.raises(DatabaseUnavailable) as raised:
        open_repository(url, tmp_path)
    message = str(raised.value)
    assert message.startswith("cannot use database postgresql://cachier:***@127.0.0.1:1/cachier")
    assert "hunter2" not in message and "\n" not in message


def test_a_sqlite_url_puts_the_database_where_it_says(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    running = RunningService(
        make_config(tmp_path / "data", database=f"sqlite://{elsewhere}")
    ).start()
    try:
        running.create_cache("placed")
    finally:
        running.stop()
    with sqlite3.connect(elsewhere) as db:
        assert db.execute("SELECT name FROM caches").fetchall() == [("placed",)]
    assert not (tmp_path / "data" / "cachier.sqlite3").exists()
    assert (tmp_path / "data" / "secret.key").exists()  # the key file stays in the data dir


# -- one schema, migrated once --------------------------------------------------------------
def sqlite_columns(path: Path) -> dict[str, list[str]]:
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
            for t in tables
            if not t.startswith("sqlite_")
        }


def postgres_columns(url: str) -> dict[str, list[str]]:
    with psycopg_connect(url) as db:
        rows = db.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'schema_version'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    columns: dict[str, list[str]] = {}
    for table, column in rows:
        columns.setdefault(table, []).append(column)
    return columns


def test_both_dialects_get_the_same_tables_and_columns(tmp_path: Path) -> None:
    Database(tmp_path / "c.sqlite3").close()
    with postgres_database() as url:
        open_repository(parse_database_url(url), tmp_path).close()
        assert postgres_columns(url) == sqlite_columns(tmp_path / "c.sqlite3")


def test_concurrent_starters_on_a_fresh_postgresql_end_with_one_schema(tmp_path: Path) -> None:
    """Without the advisory lock, two CREATE TABLEs collide in the catalog."""
    with postgres_database() as url:
        barrier = threading.Barrier(STARTERS)
        errors: list[BaseException] = []

        def start() -> None:
            barrier.wait()
            try:
                open_repository(parse_database_url(url), tmp_path).close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(STARTERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        with psycopg_connect(url) as db:
            assert db.execute("SELECT id, version FROM schema_version").fetchall() == [
                (1, SCHEMA_VERSION)
            ]
        assert set(postgres_columns(url)) == {
            "caches",
            "credentials",
            "app_logs",
            "apps",
            "releases",
            "incidents",
            "audit",
            "cluster_owners",
            "credential_use",
            "alert_settings",
        }


def test_concurrent_starter_processes_on_a_fresh_postgresql_all_start(tmp_path: Path) -> None:
    with postgres_database() as url:
        code = (
            "import sys; from backend.control.database import open_repository, "
            "parse_database_url as p; open_repository(p(sys.argv[1]), None).close()"
        )
        processes = [
            subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        results = [(p.wait(60), p.stderr.read() if p.stderr else "") for p in processes]
        assert results == [(0, "")] * 4
        with psycopg_connect(url) as db:
            assert db.execute("SELECT version FROM schema_version").fetchall() == [
                (SCHEMA_VERSION,)
            ]


def test_concurrent_starters_on_a_fresh_sqlite_file_end_with_one_schema(tmp_path: Path) -> None:
    barrier = threading.Barrier(STARTERS)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            open_repository(parse_database_url(f"sqlite://{tmp_path}/c.sqlite3"), tmp_path).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(STARTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with sqlite3.connect(tmp_path / "c.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_database_from_a_newer_cachier_is_refused(tmp_path: Path) -> None:
    with postgres_database() as url:
        open_repository(parse_database_url(url), tmp_path).close()
        with psycopg_connect(url) as db:
            db.execute("UPDATE schema_version SET version = 999")
        with pytest.raises(DatabaseUnavailable, match="newer cachier"):
            open_repository(parse_database_url(url), tmp_path)


# -- secrets at rest, connection loss -------------------------------------------------------
def test_secrets_are_encrypted_in_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        running = RunningService(make_config(tmp_path, database=url)).start()
        try:
            cache = CacheHandle(running.create_cache("secretive"))
            with httpx.Client(base_url=cache.dashboard_api) as client:
                assert client.put("/app/log-drain", json={"url": DRAIN}).status_code == 200
        finally:
            running.stop()
        stored = bytearray()  # every value of every row, bytea as its raw bytes
        with psycopg_connect(url) as db:
            for table in ("caches", "credentials", "apps", "releases", "app_logs"):
                for row in db.execute(f"SELECT * FROM {table}"):
                    for value in row:
                        stored += value if isinstance(value, bytes) else str(value).encode()
        assert b"secretive" in stored  # the rows are there
        for secret in (cache.password, "Pw4drainOnly", "Tok4drainOnly"):
            assert secret.encode() not in stored


def test_a_lost_postgresql_connection_is_opened_again(tmp_path: Path) -> None:
    import psycopg

    with postgres_database() as url:
        repository = open_repository(parse_database_url(url), tmp_path)
        try:
            pid = repository.conn.info.backend_pid  # type: ignore[attr-defined]
            with psycopg_connect(url) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError):
                repository.caches()  # the statement that finds it lost fails ...
            assert repository.caches() == []  # ... the next one runs on a new connection
        finally:
            repository.close()


# -- status history ---------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_incidents_of_some_clusters_keep_their_own_history(tmp_path: Path, dialect: str) -> None:
    """A noisy cluster's 50 newest changes must not push a quiet one out of its own feed."""

    def check(url: str) -> None:
        repository = open_repository(parse_database_url(url), tmp_path)
        try:
            repository.start_incident("quiet", "red", "green", 1.0, "down", "p1")
            for i in range(60):
                repository.start_incident("noisy", "red", "green", 2.0 + i, "down", "p1")
            assert {r.cluster for r in repository.incidents(50)} == {"noisy"}
            [row] = repository.incidents(50, ["quiet"])
            assert (row.cluster, row.started_at, row.proxies) == ("quiet", 1.0, "p1")
            both = repository.incidents(5, ["quiet", "noisy"])
            assert [r.started_at for r in both] == [61.0, 60.0, 59.0, 58.0, 57.0]
            assert repository.incidents(50, []) == []
        finally:
            repository.close()

    if dialect == "sqlite":
        check(f"sqlite:///{tmp_path / 'control.db'}")
    else:
        with postgres_database() as url:
            check(url)
