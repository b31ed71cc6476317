"""Several cachier-backend processes of this tree on one scratch PostgreSQL database.

What ``dataplane.py --relay`` and ``scaleout.py`` both need: the database, the command
that runs this tree's backend (not an installed one), one key file for every process,
and a cache placed on a known cluster.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from memcaslap import HOST, REPO_ROOT
from processes import BenchError

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
KEY_FILE = "secret.key"


def default_postgres() -> str:
    """Where the scratch database is created from: $CACHIER_TEST_POSTGRES, as the tests."""
    return os.environ.get("CACHIER_TEST_POSTGRES", DEFAULT_POSTGRES)


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the processes; dropped afterwards."""
    try:
        import psycopg
        from psycopg import sql

        name = f"cachier_bench_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as exc:  # psycopg missing or PostgreSQL unreachable: one line
        raise BenchError(f"needs PostgreSQL at {admin_url}: {exc}") from None
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def tree_backend() -> tuple[list[str], dict[str, str]]:
    """The command and environment that run this tree's backend, whatever is installed."""
    return [sys.executable, "-m", "backend.cli"], {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def share_key(source_dir: Path, data_dir: Path) -> None:
    """One service, one key file: credentials in the database are encrypted with it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(source_dir / KEY_FILE, data_dir / KEY_FILE)


def create_cache(
    api: str, token: str, name: str = "bench", cluster: str | None = None, plan: str = "1gb"
) -> tuple[int, str, str]:
    """Make a tenant to load; returns (endpoint port, username, password).

    ``cluster``: where placement must have put it (the least loaded cluster), checked
    rather than assumed.
    """
    resp = httpx.post(
        f"{api}/api/v1/admin/caches",
        json={"name": name, "plan": plan},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10.0,
    )
    if resp.status_code != 201:
        raise BenchError(f"creating the cache failed: HTTP {resp.status_code} {resp.text[:200]}")
    body = resp.json()
    if cluster is not None and body["cluster"] != cluster:
        raise BenchError(f"cache {name} was placed on {body['cluster']}, not {cluster}")
    host, _, port = body["servers"].rpartition(":")
    if host not in (HOST, "localhost"):
        raise BenchError(f"cachier endpoint {body['servers']} is not on {HOST}")
    cred = body["credentials"][0]
    return int(port), cred["username"], cred["password"]


def remote_proxies(api: str, cluster: str) -> list[str]:
    """Where the owning process's proxies of ``cluster`` listen, from its status API."""
    status = httpx.get(f"{api}/api/v1/status", timeout=10.0).json()
    found = [
        proxy["address"]
        for region in status["regions"]
        for c in region["clusters"]
        if c["name"] == cluster
        for proxy in c["proxies"]
        if proxy["address"]
    ]
    if not found:
        raise BenchError(f"the owning process lists no address for cluster {cluster}")
    return found
