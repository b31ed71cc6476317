"""The leading monitor's lock, on a PostgreSQL connection of its own (issue 14 item 5).

``backend.leadership`` decides what leading means (probing every proxy); this module
holds the statements: a session-level advisory lock (``LEADER_LOCK``) that lives exactly
as long as its connection, so a killed leader's lock goes with its socket; a check that
the connection still answers; how old the leader's published results are (by the
database's clock); and, for a leader that hangs with its connection open, ending that
connection's session so the lock is free (``depose``). Async psycopg, on the control loop.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from backend.control.sql import POSTGRESQL

if TYPE_CHECKING:
    from psycopg import AsyncConnection

# pg_advisory_lock key of the leading monitor ("cachier" + 3, see control/postgres.py).
LEADER_LOCK = 0x6361_6368_6965_7203
# A bigint advisory lock shows in pg_locks as classid (high half), objid (low half) and
# objsubid 1. Advisory locks belong to a database: another cachier deployment on the same
# server (its own database) holds its own LEADER_LOCK, which must never be ended here.
_HOLDER = (
    "FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((classid::bigint << 32) | objid::bigint) = %s"
)


class LeaderLock:
    def __init__(self, url: str, process_id: str, timeout_s: float) -> None:
        self.url = url
        self.process_id = process_id
        self.timeout_s = timeout_s  # every statement's deadline
        self.conn: AsyncConnection | None = None
        self.backend_pid: int | None = None  # the lock connection's server pid (tests)

    async def connect(self) -> None:
        import psycopg

        self.conn = await asyncio.wait_for(
            psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                application_name=f"cachier-leader {self.process_id}"[:63],
            ),
            self.timeout_s,
        )
        self.backend_pid = self.conn.info.backend_pid

    async def close(self) -> None:
        """Closing the connection frees the lock (a clean stop: the next leader at once)."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()

    async def _one(self, query: str, params: tuple[object, ...] = ()) -> object:
        assert self.conn is not None
        cursor = await asyncio.wait_for(self.conn.execute(query.encode(), params), self.timeout_s)
        row = await cursor.fetchone()
        return None if row is None else row[0]

    async def try_take(self) -> bool:
        """Take the lock if it is free; never waits for it."""
        return bool(await self._one("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)))

    async def check(self) -> None:
        """Raises when the connection, hence the lock, is lost."""
        await self._one("SELECT 1")

    async def results_age(self) -> float | None:
        """Seconds since the leader last published its probe results (None: never)."""
        age = await self._one(f"SELECT {POSTGRESQL.now} - published_at FROM monitor_leader")
        return None if age is None else float(str(age))

    async def depose(self) -> int:
        """End the session holding the lock (a leader that stopped publishing): its lock
        is free at once, and its next check fails, so it steps down."""
        ended = await self._one(
            f"SELECT count(pg_terminate_backend(pid)) {_HOLDER} AND pid <> pg_backend_pid()",
            (LEADER_LOCK,),
        )
        return int(str(ended or 0))
