"""The leader's advisory lock against a real PostgreSQL server holding two deployments:
each database elects its own leader, and deposing one never ends the other's session."""

from __future__ import annotations

import psycopg
import pytest

from backend.control.leaderlock import LeaderLock
from tests.conftest import postgres_database


async def test_depose_ends_only_this_databases_leader() -> None:
    with postgres_database() as first_url, postgres_database() as second_url:
        leader, rival = LeaderLock(first_url, "a", 5), LeaderLock(first_url, "b", 5)
        other_deployment, other_rival = (LeaderLock(second_url, n, 5) for n in ("c", "d"))
        locks = (leader, rival, other_deployment, other_rival)
        for lock in locks:
            await lock.connect()
        try:
            # One lock per database: the second deployment leads beside the first.
            assert await leader.try_take()
            assert await other_deployment.try_take()
            assert not await rival.try_take()

            assert await rival.depose() == 1  # this database's leader, and only it
            with pytest.raises(psycopg.OperationalError):
                await leader.check()
            await other_deployment.check()  # its session is untouched
            assert not await other_rival.try_take()  # and it still holds its lock
            assert await rival.try_take()  # the deposed leader's lock was freed
        finally:
            for lock in locks:
                await lock.close()
