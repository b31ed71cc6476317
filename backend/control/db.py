"""The SQLite repository: the only module that writes SQL.

The control plane is small and changes rarely, so one synchronous connection is enough; it
belongs to the control thread (``backend.loops``), never to the loop that serves memcache
traffic, and WAL with ``synchronous=NORMAL`` keeps a commit well under a millisecond.
Every change and its log line are written in one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from backend.control.repository import (
    AppRow,
    CacheRow,
    CredentialRow,
    IncidentRow,
    LogRow,
    ReleaseRow,
)

__all__ = ["AppRow", "CacheRow", "CredentialRow", "Database", "IncidentRow", "LogRow",
           "ReleaseRow"]  # fmt: skip

# Each entry upgrades the schema by one version; a new database runs them all in order.
MIGRATIONS = [
    """
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
""",
    """
CREATE TABLE apps (
    cache_id TEXT PRIMARY KEY REFERENCES caches(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    release INTEGER NOT NULL,
    config_enc BLOB NOT NULL,
    log_drain TEXT
);
CREATE TABLE releases (
    cache_id TEXT NOT NULL REFERENCES caches(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    description TEXT NOT NULL,
    t TEXT NOT NULL,
    PRIMARY KEY (cache_id, number)
);
""",
    """
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    light TEXT NOT NULL,
    previous TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    cause TEXT NOT NULL,
    proxies TEXT NOT NULL
);
CREATE INDEX incidents_by_cluster ON incidents(cluster, id);
""",
    # The drain URL can carry user:password and tokens: it is kept encrypted like the config
    # vars. A plaintext ``log_drain`` left by an older version is encrypted at load and cleared.
    """
ALTER TABLE apps ADD COLUMN log_drain_enc BLOB;
""",
]
SCHEMA_VERSION = len(MIGRATIONS)


class Database:
    """SQLite implementation of ``ControlRepository``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content (an old drain URL, a deleted credential) is zeroed
        # in the file rather than left in free pages.
        self.conn.execute("PRAGMA secure_delete=ON")
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {self.path} was written by a newer cachier (schema {version})"
            )
        for number in range(version, SCHEMA_VERSION):
            self.conn.executescript(
                f"BEGIN;\n{MIGRATIONS[number]}\nPRAGMA user_version={number + 1};\nCOMMIT;"
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Idempotent: a service that failed to start closes it, and then its stop does."""
        if self._closed:
            return
        self._closed = True
        self.forget_overwritten()
        self.conn.close()

    def forget_overwritten(self) -> None:
        """Copy the WAL into the database and truncate it: old frames would otherwise keep
        overwritten content (a plaintext secret now encrypted) on disk."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    def delete_cache(self, cache_id: str) -> None:
        """The cache and (by ``ON DELETE CASCADE``) its credentials, app, releases and logs."""
        self.conn.execute("DELETE FROM caches WHERE id = ?", (cache_id,))

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

    def delete_credential(self, username: str) -> None:
        self.conn.execute("DELETE FROM credentials WHERE username = ?", (username,))

    def set_primary(self, cache_id: str, username: str) -> None:
        self.conn.execute(
            "UPDATE credentials SET is_primary = (username = ?) WHERE cache_id = ?",
            (username, cache_id),
        )

    def set_sso(self, cache_id: str, nonce: str, sso_hash: str) -> None:
        self.conn.execute(
            "UPDATE caches SET sso_nonce = ?, sso_hash = ? WHERE id = ?",
            (nonce, sso_hash, cache_id),
        )

    # -- apps ---------------------------------------------------------------------------
    def apps(self) -> list[AppRow]:
        rows = self.conn.execute(
            "SELECT cache_id, name, release, config_enc, log_drain_enc, log_drain FROM apps"
        )
        return [AppRow(*r) for r in rows]

    def insert_app(self, row: AppRow) -> None:
        self.conn.execute(
            "INSERT INTO apps (cache_id, name, release, config_enc, log_drain_enc)"
            " VALUES (?, ?, ?, ?, ?)",
            (row.cache_id, row.name, row.release, row.config_enc, row.log_drain_enc),
        )

    def update_app_config(self, cache_id: str, release: int, config_enc: bytes) -> None:
        self.conn.execute(
            "UPDATE apps SET release = ?, config_enc = ? WHERE cache_id = ?",
            (release, config_enc, cache_id),
        )

    def set_log_drain(self, cache_id: str, url_enc: bytes | None) -> None:
        self.conn.execute(
            "UPDATE apps SET log_drain_enc = ?, log_drain = NULL WHERE cache_id = ?",
            (url_enc, cache_id),
        )

    def insert_release(self, cache_id: str, number: int, description: str, t: str) -> None:
        self.conn.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?)", (cache_id, number, description, t)
        )

    def releases(self, cache_id: str, limit: int = 20) -> list[ReleaseRow]:
        rows = self.conn.execute(
            "SELECT number, description, t FROM releases WHERE cache_id = ?"
            " ORDER BY number DESC LIMIT ?",
            (cache_id, limit),
        )
        return [ReleaseRow(*r) for r in rows]

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

    def logs(self, cache_id: str, after_id: int | None, limit: int) -> list[LogRow]:
        """Lines after ``after_id`` (oldest first), or the newest ``limit`` lines if None."""
        columns = "SELECT id, cache_id, t, source, message, origin, proxy FROM app_logs"
        if after_id is None:
            rows = self.conn.execute(
                f"{columns} WHERE cache_id = ? ORDER BY id DESC LIMIT ?", (cache_id, limit)
            ).fetchall()
            rows.reverse()
        else:
            rows = self.conn.execute(
                f"{columns} WHERE cache_id = ? AND id > ? ORDER BY id LIMIT ?",
                (cache_id, after_id, limit),
            ).fetchall()
        return [LogRow(*r) for r in rows]

    # -- status history -----------------------------------------------------------------
    def start_incident(self, cluster: str, light: str, previous: str, at: float, cause: str,
                       proxies: str) -> int:  # fmt: skip
        """Close the cluster's open period and open the next one, atomically."""
        with self.transaction():
            self.conn.execute(
                "UPDATE incidents SET ended_at = ? WHERE cluster = ? AND ended_at IS NULL",
                (at, cluster),
            )
            cur = self.conn.execute(
                "INSERT INTO incidents (cluster, light, previous, started_at, ended_at, cause,"
                " proxies) VALUES (?, ?, ?, ?, NULL, ?, ?)",
                (cluster, light, previous, at, cause, proxies),
            )
        return int(cur.lastrowid)

    def incidents(self, limit: int = 50) -> list[IncidentRow]:
        rows = self.conn.execute(
            "SELECT id, cluster, light, previous, started_at, ended_at, cause, proxies"
            " FROM incidents ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [IncidentRow(*r) for r in rows]

    def last_incidents(self) -> dict[str, IncidentRow]:
        """Each cluster's current period (its newest row)."""
        rows = self.conn.execute(
            "SELECT id, cluster, light, previous, started_at, ended_at, cause, proxies"
            " FROM incidents WHERE id IN (SELECT MAX(id) FROM incidents GROUP BY cluster)"
        )
        return {r[1]: IncidentRow(*r) for r in rows}

    def last_trouble_ended(self, cluster: str) -> float | None:
        """When the cluster last stopped being yellow or red (for "recently resolved")."""
        (ended,) = self.conn.execute(
            "SELECT MAX(ended_at) FROM incidents WHERE cluster = ? AND light IN ('red', 'yellow')",
            (cluster,),
        ).fetchone()
        return ended
