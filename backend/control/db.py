"""The SQLite repository: the embedded default, one file in the data directory.

The control plane is small and changes rarely, so one synchronous connection is enough; it
belongs to the control thread (``backend.loops``), never to the loop that serves memcache
traffic, and WAL with ``synchronous=NORMAL`` keeps a commit well under a millisecond.
Every change and its log line are written in one transaction. The queries and migrations
are shared with PostgreSQL (``backend.control.sql``); this class owns connecting,
transactions and the schema version (``PRAGMA user_version``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
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
from backend.control.sql import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLITE,
    NewerSchemaError,
    SqlRepository,
    migration_statements,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "AppRow",
    "CacheRow",
    "CredentialRow",
    "Database",
    "IncidentRow",
    "LogRow",
    "ReleaseRow",
]


BUSY_TIMEOUT_S = 30.0  # how long a starter waits for a concurrent one's migration


class Database(SqlRepository):
    """SQLite implementation of ``ControlRepository``."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        self.path = path
        self._closed = False
        # A concurrent starter holds the write lock while it migrates: wait for it.
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        self._use_wal()
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        # Deleted and overwritten content (an old drain URL, a deleted credential) is zeroed
        # in the file rather than left in free pages.
        self.conn.execute("PRAGMA secure_delete=ON")
        self._migrate()

    def _use_wal(self) -> None:
        """Switch the file to WAL. Unlike other statements, the switch does not wait on the
        busy timeout while a concurrent starter holds the file ("database is locked" at
        once), so it is retried until that timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self) -> None:
        """Bring the schema up to date in one ``BEGIN IMMEDIATE`` transaction: a second
        process starting at the same time waits for the write lock, then finds the schema
        current and does nothing."""
        with self.transaction():
            (version,) = self.conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise NewerSchemaError(
                    f"database {self.path} was written by a newer cachier (schema {version})"
                )
            for number in range(version, SCHEMA_VERSION):
                for statement in migration_statements(number, SQLITE):
                    self.conn.execute(statement)
            if version < SCHEMA_VERSION:
                self.conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _execute(self, query: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        return self.conn.execute(query, params)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def lock_owners(self) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the file's write lock."""

    def notify(self, channel: str, payload: str) -> None:
        """Nothing: the embedded mode is one process, its in-process bus is everything."""

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
