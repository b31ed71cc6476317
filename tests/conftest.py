"""Shared fixtures: a real Service on ephemeral loopback ports in a temporary data dir."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import secrets
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from backend.config import Config
from backend.service import Listening, Service

ADMIN_TOKEN = "test-admin-token"
# Where the tests create (and drop) their own PostgreSQL databases; CI and every development
# machine run PostgreSQL here (trust auth).
POSTGRES_ADMIN_URL = os.environ.get(
    "CACHIER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DATABASE_KINDS = ["sqlite", "postgresql"]


@functools.cache
def default_trust() -> ssl.SSLContext:
    """httpx's default trust (certifi's CAs), built once per test run. httpx builds it
    anew for every ``Client`` it makes, parsing the whole CA bundle: 20-60 ms each, which
    made a third of the OpenAPI fuzz run (700 clients). Pass it as ``verify=`` where a
    test makes many clients; a context is safe to share between clients."""
    return httpx.create_ssl_context()


class http:  # noqa: N801 (used as a module: ``http.get(url)``)
    """httpx's one-request functions with ``default_trust()``, for helpers that poll (a
    parse of the CA bundle per poll also took CPU from the process being waited for)."""

    get = staticmethod(functools.partial(httpx.get, verify=default_trust()))
    post = staticmethod(functools.partial(httpx.post, verify=default_trust()))
    put = staticmethod(functools.partial(httpx.put, verify=default_trust()))
    patch = staticmethod(functools.partial(httpx.patch, verify=default_trust()))
    delete = staticmethod(functools.partial(httpx.delete, verify=default_trust()))


class RunningService:
    """A Service running in its own thread and event loop, as the real CLI runs it."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.service: Service | None = None
        self.listening: Listening | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self.service = Service(self.config)
            try:
                self.listening = await self.service.start()
            except BaseException as exc:  # reported to the test thread
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            await self._stop.wait()
            await self.service.stop()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> RunningService:
        self._thread.start()
        self._ready.wait(20)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def call(self, fn, *args):
        """Run ``fn`` in the service's serving loop, the data plane's (for reading its
        internal state safely)."""
        result: list = []
        done = threading.Event()

        def run() -> None:
            result.append(fn(*args))
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)
        return result[0]

    def call_control(self, fn, *args):
        """Run ``fn`` on the service's control thread (analytics, the monitor, the
        control plane live there: ``backend.loops``)."""
        assert self.service is not None
        return self.service.control_thread.submit(_call(fn, *args)).result(10)

    @property
    def api_url(self) -> str:
        return self.listening.api_url

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.Client(
            base_url=self.api_url, headers=headers, timeout=10, verify=default_trust()
        )

    def create_cache(self, name: str, plan: str = "100mb", region: str | None = None) -> dict:
        body = {"name": name, "plan": plan} | ({"region": region} if region else {})
        with self.admin() as client:
            response = client.post("/api/v1/admin/caches", json=body)
        assert response.status_code == 201, response.text
        return response.json()


async def _call(fn, *args):
    return fn(*args)


def address(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)


def make_config(data_dir: Path, **overrides) -> Config:
    base = Config(
        data_dir=data_dir,
        api_port=0,
        endpoint_port=0,
        admin_token=ADMIN_TOKEN,
        auth_failure_limit=1000,
        auth_user_failure_limit=1000,
        allow_internal_drains=True,
    )  # tests' drain receivers are on loopback
    return replace(base, **overrides)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = RunningService(make_config(tmp_path_factory.mktemp("data"))).start()
    yield running
    running.stop()


@dataclass
class CacheHandle:
    """A created cache as the admin API returned it, with its endpoint address."""

    info: dict

    @property
    def endpoint(self) -> tuple[str, int]:
        return address(self.info["servers"])

    @property
    def username(self) -> str:
        return self.info["credentials"][0]["username"]

    @property
    def password(self) -> str:
        return self.info["credentials"][0]["password"]

    @property
    def dashboard_api(self) -> str:
        return self.info["dashboard_url"] + "/api"


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def cache(service: RunningService) -> CacheHandle:
    return CacheHandle(service.create_cache(f"cache-{next(_counter)}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_fixed_ports(count: int) -> list[int]:
    """``count`` consecutive free ports below the kernel's ephemeral range, for a process
    that must be told its ports (region i listens on endpoint port + i). A port found
    free in the ephemeral range can be handed to any outgoing connection a moment later;
    below it, only another listener can take it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(10_000, low - count)
        try:
            with contextlib.ExitStack() as stack:
                for port in range(first, first + count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return list(range(first, first + count))
        except OSError:
            continue
    raise RuntimeError("no free ports below the ephemeral range")


# -- PostgreSQL ------------------------------------------------------------------------------
@functools.cache
def _postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it can (asked once)."""
    try:
        import psycopg
    except ImportError as exc:
        return f"psycopg is not installed ({exc})"
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {' '.join(str(exc).split())}"
    return None


def require_tool(tool: str, package: str) -> str:
    """The path of a command the test needs. Missing, the test is skipped on a developer
    machine (naming the Debian package) and fails under CI=true: `.ci/run` installs every
    tool, so a missing one there is a broken CI, never a quiet skip."""
    path = shutil.which(tool)
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing in CI: .ci/run must install Debian's {package}")
    pytest.skip(f"{tool} is not installed (Debian package {package})")


def require_postgres() -> None:
    """Skip the test when PostgreSQL is unreachable, except under CI=true: there it fails,
    so a broken CI database can never turn the PostgreSQL half of the suite into skips."""
    reason = _postgres_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database of its own (unique name); dropped afterwards."""
    import psycopg
    from psycopg import sql

    require_postgres()
    name = f"cachier_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def database_of(kind: str) -> Iterator[str]:
    """The ``--database`` value for ``kind``: "" (SQLite in the data dir) or a fresh
    PostgreSQL database."""
    if kind == "sqlite":
        yield ""
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture(params=DATABASE_KINDS)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each control repository in turn, fresh for the test: tests taking it run on both."""
    with database_of(request.param) as url:
        yield url


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def each_database_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """A module's ``service`` on each control repository: a module that overrides
    ``service`` with this runs all its tests on SQLite and on PostgreSQL."""
    with database_of(request.param) as url:
        config = make_config(tmp_path_factory.mktemp("data"), database=url)
        running = RunningService(config).start()
        yield running
        running.stop()
