"""The PostgreSQL repository: one control plane shared by several backend processes.

Same queries and migrations as SQLite (``backend.control.sql``); this class owns what
differs: the connection, transactions, and the schema version, kept in a one-row
``schema_version`` table and migrated under a PostgreSQL advisory lock so that processes
starting at the same time never race.

Blocking, on purpose: this is psycopg's synchronous API behind the synchronous
``ControlRepository`` Protocol, on one connection used from one thread, the control
thread (``backend.loops``), so no call holds up the loop that serves memcache traffic.
NOTIFY is sent here, inside the change's transaction (``notify``); LISTEN is a separate
async connection on the control loop (``backend.control.notify.Listener``). Cluster
claims are serialized by a transaction-scoped advisory lock (``lock_owners``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg.pq import TransactionStatus

from backend.control.sql import (
    POSTGRESQL,
    SCHEMA_VERSION,
    NewerSchemaError,
    SqlRepository,
    migration_statements,
)

# pg_advisory_lock key held while migrating ("cachier" + 1 as a signed 64-bit integer).
# Fixed: every cachier process on the database must pick the same one.
MIGRATION_LOCK = 0x6361_6368_6965_7201
# pg_advisory_xact_lock key held while a process claims its clusters ("cachier" + 2).
OWNERS_LOCK = 0x6361_6368_6965_7202
CONNECT_TIMEOUT = 5  # seconds; an unreachable database is an error at start-up, not a hang


class PostgresRepository(SqlRepository):
    """PostgreSQL implementation of ``ControlRepository`` (psycopg 3, synchronous)."""

    dialect = POSTGRESQL

    def __init__(self, url: str, connect_timeout: int = CONNECT_TIMEOUT) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._closed = False
        self._queries: dict[str, str] = {}
        self.conn = self._connect()
        self._migrate()

    def _connect(self) -> psycopg.Connection:
        # autocommit: reads run on their own; writes are grouped by ``transaction()``.
        return psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout)

    def _migrate(self) -> None:
        """Bring the schema up to date in one transaction, under the advisory lock.

        The lock is taken before even ``CREATE TABLE IF NOT EXISTS``, which itself races
        in PostgreSQL (two creators collide on the catalog). A starter that waited finds
        the version current and does nothing; DDL is transactional, so a failed migration
        leaves the previous version intact.
        """
        self.conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            with self.conn.transaction():
                self.conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
                )
                self.conn.execute(
                    "INSERT INTO schema_version (id, version) VALUES (1, 0)"
                    " ON CONFLICT (id) DO NOTHING"
                )
                row = self.conn.execute("SELECT version FROM schema_version").fetchone()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise NewerSchemaError(
                        f"the database was written by a newer cachier (schema {version})"
                    )
                for number in range(version, SCHEMA_VERSION):
                    for statement in migration_statements(number, POSTGRESQL):
                        self.conn.execute(statement.encode())
                self.conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
        finally:
            if not self.conn.closed:
                self.conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))

    def _live(self) -> psycopg.Connection:
        """The connection, opened again if the previous one was lost (a database restart):
        the statement that found it broken failed, the next one runs on a new one."""
        if self.conn.closed and not self._closed:
            self.conn = self._connect()
        return self.conn

    def _execute(self, query: str, params: Sequence[object] = ()) -> psycopg.Cursor:
        sql = self._queries.get(query)
        if sql is None:  # the shared queries use "?" and never contain "%"
            assert "%" not in query, query
            sql = self._queries[query] = query.replace("?", "%s")
        return self._live().execute(sql.encode(), params)

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._live().transaction():
            yield

    def lock_owners(self) -> None:
        """Two processes claiming at once would both read "no owner": the second waits
        here for the first's commit, then reads its row."""
        self._live().execute("SELECT pg_advisory_xact_lock(%s)", (OWNERS_LOCK,))

    def notify(self, channel: str, payload: str) -> None:
        """``pg_notify`` inside the open transaction: delivered on commit only, never for a
        rollback, and in commit order."""
        self._live().execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def close(self) -> None:
        """Idempotent: a service that failed to start closes it, and then its stop does."""
        if self._closed:
            return
        self._closed = True
        self.conn.close()

    def forget_overwritten(self) -> None:
        """Nothing to forget: the only plaintext ever overwritten is a drain URL stored by an
        old SQLite-only version (schema 3), which never ran on PostgreSQL."""
