"""The SQLite repository: the only module that writes SQL.

The control plane is small and changes rarely, so one synchronous connection in the event
loop's thread is enough; WAL with ``synchronous=NORMAL`` keeps a commit well under a
millisecond. Every change and its log line are written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE caches (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL,
    region TEXT NOT NULL,
    cluster TEXT NOT NULL,
    sso_nonce TEXT NOT NULL,
    sso_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE credentials (
    username TEXT PRIMARY KEY,
    cache_id TEXT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    password_enc BLOB NOT NULL,
    is_primary INTEGER NOT NULL,
    can_write INTEGER NOT NULL,
    can_flush INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX credentials_by_cache ON credentials(cache_id);
CREATE TABLE app_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_id TEXT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    t TEXT NOT NULL,
    source TEXT NOT NULL,
    message TEXT NOT NULL,
    origin TEXT,
    proxy TEXT
);
CREATE INDEX app_logs_by_cache ON app_logs(cache_id, id);
"""


@dataclass
class CacheRow:
    id: str
    name: str
    plan: str
    region: str
    cluster: str
    sso_nonce: str
    sso_hash: str
    created_at: str


@dataclass
class CredentialRow:
    username: str
    cache_id: str
    password_enc: bytes
    is_primary: bool
    can_write: bool
    can_flush: bool
    created_at: str


@dataclass
class LogRow:
    id: int
    cache_id: str
    t: str
    source: str
    message: str
    origin: str | None
    proxy: str | None


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        if version == 0:
            self.conn.executescript(
                f"BEGIN;\n{SCHEMA}\nPRAGMA user_version={SCHEMA_VERSION};\nCOMMIT;"
            )
        elif version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {self.path} was written by a newer cachier (schema {version})"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    # -- caches -------------------------------------------------------------------------
    def caches(self) -> list[CacheRow]:
        rows = self.conn.execute(
            "SELECT id, name, plan, region, cluster, sso_nonce, sso_hash, created_at"
            " FROM caches ORDER BY created_at, id"
        )
        return [CacheRow(*r) for r in rows]

    def insert_cache(self, row: CacheRow) -> None:
        self.conn.execute(
            "INSERT INTO caches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (row.id, row.name, row.plan, row.region, row.cluster, row.sso_nonce, row.sso_hash,
             row.created_at),
        )  # fmt: skip

    def cache_name_taken(self, name: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM caches WHERE name = ?", (name,)).fetchone() is not None
        )

    def set_cache_cluster(self, cache_id: str, cluster: str) -> None:
        self.conn.execute("UPDATE caches SET cluster = ? WHERE id = ?", (cluster, cache_id))

    # -- credentials --------------------------------------------------------------------
    def credentials(self) -> list[CredentialRow]:
        rows = self.conn.execute(
            "SELECT username, cache_id, password_enc, is_primary, can_write, can_flush, created_at"
            " FROM credentials ORDER BY created_at, username"
        )
        return [
            CredentialRow(u, c, p, bool(pr), bool(w), bool(f), t) for u, c, p, pr, w, f, t in rows
        ]

    def insert_credential(self, row: CredentialRow) -> None:
        self.conn.execute(
            "INSERT INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?)",
            (row.username, row.cache_id, row.password_enc, int(row.is_primary),
             int(row.can_write), int(row.can_flush), row.created_at),
        )  # fmt: skip

    def set_capabilities(self, username: str, write: bool, flush: bool) -> None:
        self.conn.execute(
            "UPDATE credentials SET can_write = ?, can_flush = ? WHERE username = ?",
            (int(write), int(flush), username),
        )

    def username_taken(self, username: str) -> bool:
        found = self.conn.execute("SELECT 1 FROM credentials WHERE username = ?", (username,))
        return found.fetchone() is not None

    # -- app logs -----------------------------------------------------------------------
    def insert_log(self, cache_id: str, t: str, source: str, message: str,
                   origin: str | None = None, proxy: str | None = None) -> int:  # fmt: skip
        cur = self.conn.execute(
            "INSERT INTO app_logs (cache_id, t, source, message, origin, proxy)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (cache_id, t, source, message, origin, proxy),
        )
        return int(cur.lastrowid)

    def logs(self, cache_id: str, after_id: int = 0, limit: int = 100) -> list[LogRow]:
        rows = self.conn.execute(
            "SELECT id, cache_id, t, source, message, origin, proxy FROM app_logs"
            " WHERE cache_id = ? AND id > ? ORDER BY id LIMIT ?",
            (cache_id, after_id, limit),
        )
        return [LogRow(*r) for r in rows]
