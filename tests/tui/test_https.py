"""The dashboard over HTTPS: it verifies the backend's certificate, against the system's
trust or only ``--api-ca``, and refuses one it cannot verify with one readable line.

The backend serves its API with a certificate from a throwaway trustme CA that no system
trusts; the in-process backend uses its own certificate, which the dashboard pins.
"""

from __future__ import annotations

import secrets
import ssl
from pathlib import Path

import httpx
import pytest
import trustme
from textual.widgets import DataTable

from tests.conftest import ADMIN_TOKEN, RunningService, make_config
from tests.tui.conftest import running_app, wait_for
from tests.tui.test_cli import CONTROL_SEQUENCE, assert_one_line, run_in_pty, run_tui
from tui.app import CachierApp, Remote, Settings
from tui.urls import api_of, sso_of

ADVERTISED = "cache.example.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(path)
    return path


def issue(ca: trustme.CA, directory: Path, *names: str) -> dict[str, Path]:
    cert = ca.issue_cert(*names)
    paths = {"tls_cert": directory / "server.pem", "tls_key": directory / "server.key"}
    cert.cert_chain_pems[0].write_to_path(paths["tls_cert"])
    cert.private_key_pem.write_to_path(paths["tls_key"])
    return paths


@pytest.fixture(scope="module")
def https_service(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA):
    data_dir = tmp_path_factory.mktemp("https")
    certificate = issue(ca, data_dir, "127.0.0.1")
    running = RunningService(make_config(data_dir, api_tls=True, **certificate)).start()
    yield running
    running.stop()


def create_cache(service: RunningService, ca: trustme.CA) -> dict:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    name = f"tls-{secrets.token_hex(3)}"
    with httpx.Client(
        base_url=service.api_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        verify=context,
        timeout=10,
    ) as client:
        created = client.post("/api/v1/admin/caches", json={"name": name, "plan": "100mb"})
    assert created.status_code == 201, created.text
    return created.json()


# -- attached (Pilot) ---------------------------------------------------------------------
async def test_operator_attaches_over_https_with_api_ca(
    https_service: RunningService, ca: trustme.CA, ca_file: Path
) -> None:
    cache = create_cache(https_service, ca)
    assert https_service.api_url.startswith("https://")
    remote = Remote(https_service.api_url, ADMIN_TOKEN, cafile=ca_file)
    app = CachierApp(Settings(), remote=remote)
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: cache["id"] in table.rows)
        assert app.failure is None and app.client is not None


async def test_cache_owner_opens_an_https_dashboard_url_with_api_ca(
    https_service: RunningService, ca: trustme.CA, ca_file: Path
) -> None:
    url = create_cache(https_service, ca)["dashboard_url"]
    assert url.startswith("https://127.0.0.1:")
    settings = Settings(operator=False, sso=sso_of(url))
    app = CachierApp(settings, remote=Remote(api_of(url), cafile=ca_file))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.client is not None or app.failure is not None)
        assert app.failure is None
        info = await app.client.cache(sso_of(url))
        assert info.dashboard_url == url


async def test_without_api_ca_the_certificate_is_refused_not_trusted(
    https_service: RunningService,
) -> None:
    app = CachierApp(Settings(), remote=Remote(https_service.api_url, ADMIN_TOKEN))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.failure is not None)
    assert app.client is None and app.return_code == 1
    assert app.failure.startswith(
        f"cannot verify the certificate of the backend at {https_service.api_url}: "
    )
    assert "--api-ca FILE" in app.failure and "\n" not in app.failure


# -- in-process ---------------------------------------------------------------------------
@pytest.mark.parametrize("advertised", ["127.0.0.1", ADVERTISED])
async def test_in_process_backend_over_https_with_its_self_signed_certificate(
    tmp_path, advertised: str
) -> None:
    options = {"api_tls": True, "tls_self_signed": True, "advertise_host": advertised}
    async with running_app(tmp_path, **options) as (app, pilot):
        listening = app.service.listening
        assert listening.api_url.startswith("https://127.0.0.1:")
        assert listening.api_server_name == advertised
        assert listening.api_certificate == tmp_path / "tls-cert.pem"
        created = await app.client.create_cache("in-process", "100mb", None)
        assert created.dashboard_url.startswith(f"https://{advertised}:")
        assert [c.name for c in (await app.client.caches()).items] == ["in-process"]


async def test_in_process_backend_with_a_certificate_for_its_public_name_only(
    tmp_path, ca: trustme.CA
) -> None:
    """An operator's real certificate names the public host, not loopback: the dashboard
    reaches its own backend on loopback and verifies the certificate for that name."""
    certificate = issue(ca, tmp_path, ADVERTISED)
    options = {"api_tls": True, "advertise_host": ADVERTISED, **certificate}
    async with running_app(tmp_path, **options) as (app, pilot):
        assert (await app.client.status()).rss_url.startswith(f"https://{ADVERTISED}:")


async def test_in_process_default_stays_plain_http_on_loopback(tmp_path) -> None:
    async with running_app(tmp_path) as (app, pilot):
        listening = app.service.listening
        assert listening.api_url.startswith("http://127.0.0.1:")
        assert listening.api_certificate is None and listening.api_server_name == ""
        assert app.service.warnings == []
        assert (await app.client.caches()).items == []


# -- cachier-tui in a terminal ------------------------------------------------------------
def test_cachier_tui_refuses_an_unverifiable_certificate_in_one_line(
    https_service: RunningService,
) -> None:
    result = run_tui("--api", https_service.api_url, "--admin-token", ADMIN_TOKEN)
    assert_one_line(
        result, f"cannot verify the certificate of the backend at {https_service.api_url}"
    )
    assert "--api-ca FILE" in result[1] and result[0] == 1


def test_cachier_tui_refuses_a_certificate_from_another_ca(
    https_service: RunningService, tmp_path, ca: trustme.CA
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(other)
    url = create_cache(https_service, ca)["dashboard_url"]
    result = run_tui(url, "--api-ca", str(other))
    assert_one_line(result, "cannot verify the certificate")
    assert "--api-ca FILE" not in result[1]  # it was given: the hint would be no news


def test_cachier_tui_attaches_over_https_with_api_ca(
    https_service: RunningService, ca: trustme.CA, ca_file: Path
) -> None:
    cache = create_cache(https_service, ca)
    args = ["--api", https_service.api_url, "--admin-token", ADMIN_TOKEN]
    status, screen = attach_and_quit([*args, "--api-ca", str(ca_file)], cache["name"])
    assert status == 0, screen
    assert "Traceback" not in screen and "cachier-tui: error" not in screen


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-ca", "/nonexistent/ca.pem", "--api", "https://127.0.0.1:1"], "no such file"),
        (["--api-ca", "/nonexistent/ca.pem"], "--api-ca goes with --api or a dashboard URL"),
    ],
)
def test_bad_api_ca_is_a_one_line_error(args: list[str], message: str) -> None:
    status, screen = run_tui(*args, "--admin-token", "x")
    assert_one_line((status, screen), message)
    assert status == 2


def test_an_api_ca_file_without_a_certificate_is_a_one_line_error(
    https_service: RunningService, tmp_path
) -> None:
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text("this is no certificate\n")
    args = ["--api", https_service.api_url, "--admin-token", ADMIN_TOKEN, "--api-ca"]
    assert_one_line(run_tui(*args, str(garbage)), "no PEM certificate in it")


def attach_and_quit(args: list[str], expected: str, timeout: float = 60.0) -> tuple[int, str]:
    """Run `cachier-tui` in an 80x24 pseudo-terminal until ``expected`` is on screen, then
    press q: the exit status and everything the terminal received (control sequences
    removed)."""
    status, output = run_in_pty(args, timeout, quit_on=expected)
    return status, CONTROL_SEQUENCE.sub("", output)


async def test_in_process_plain_api_off_loopback_warns_in_the_dashboard(tmp_path) -> None:
    async with running_app(tmp_path, host="0.0.0.0", advertise_host="127.0.0.1") as (app, _):
        (warning,) = [line for line in app.settings.backend_log if "without TLS" in line]
        assert "--api-tls" in warning and "--api-insecure-ok" in warning
