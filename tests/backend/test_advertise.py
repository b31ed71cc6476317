"""Addresses handed to clients are the advertised ones, never the bind address.

The service binds every interface (0.0.0.0) in some of these tests; they connect only to
127.0.0.1, with the port taken from the advertised address.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import ADMIN_TOKEN, RunningService, address, free_fixed_ports, make_config

ADVERTISED = "cache.example.test"


def port_of(hostport: str) -> int:
    return address(hostport)[1]


def dashboard(service: RunningService, info: dict) -> httpx.Client:
    """The cache's dashboard API, reached locally with the path of its public URL."""
    sso = info["dashboard_url"].rsplit("/dashboard/", 1)[1]
    return httpx.Client(base_url=f"{service.api_url}/dashboard/{sso}/api", timeout=10)


@pytest.fixture(scope="module")
def wildcard(tmp_path_factory: pytest.TempPathFactory):
    config = make_config(
        tmp_path_factory.mktemp("advertise"),
        host="0.0.0.0",
        advertise_host=ADVERTISED,
        tls_port=0,
        tls_self_signed=True,
    )
    running = RunningService(config).start()
    yield running
    running.stop()


def test_servers_and_config_vars_name_the_advertised_host(wildcard: RunningService) -> None:
    info = wildcard.create_cache("advertised")
    api_port = port_of(wildcard.api_url.removeprefix("http://"))
    assert info["servers"] == f"{ADVERTISED}:{port_of(wildcard.listening.endpoints['local'])}"
    tls_port = port_of(wildcard.listening.tls_endpoints["local"])
    assert info["tls_servers"] == f"{ADVERTISED}:{tls_port}"
    assert info["dashboard_url"].startswith(f"http://{ADVERTISED}:{api_port}/dashboard/")
    with dashboard(wildcard, info) as api:
        cache = api.get("/cache").json()
        config_vars = api.get("/app").json()["config_vars"]
    assert (cache["servers"], cache["tls_servers"]) == (info["servers"], info["tls_servers"])
    assert config_vars["MEMCACHIER_SERVERS"] == info["servers"]
    assert config_vars["MEMCACHIER_TLS_SERVERS"] == info["tls_servers"]
    status = httpx.get(wildcard.api_url + "/api/v1/status").json()
    assert status["rss_url"] == f"http://{ADVERTISED}:{api_port}/status.rss"
    feed = httpx.get(wildcard.api_url + "/status.rss").text
    assert f"<link>http://{ADVERTISED}:{api_port}/api/v1/status</link>" in feed
    with wildcard.admin() as admin:
        everything = json.dumps(
            [admin.get("/api/v1/admin/caches").json()["items"], cache, config_vars]
        )
    assert "0.0.0.0" not in everything and "127.0.0.1" not in everything


def test_the_advertised_port_reaches_the_wildcard_listener(wildcard: RunningService) -> None:
    info = wildcard.create_cache("reachable")
    credential = info["credentials"][0]
    client = AuthenticatingClient(
        ("127.0.0.1", port_of(info["servers"])), credential["username"], credential["password"]
    )
    assert client.set("k", "v", noreply=False) is True
    client.close()


def test_the_self_signed_certificate_names_the_advertised_host(wildcard: RunningService) -> None:
    """A client verifies the TLS endpoint under the name it was told, not the bind host."""
    context = ssl.create_default_context(cafile=wildcard.config.data_dir / "tls-cert.pem")
    port = port_of(wildcard.listening.tls_endpoints["local"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=ADVERTISED) as tls,
    ):
        assert tls.version() is not None


def test_promote_pushes_the_advertised_addresses(wildcard: RunningService) -> None:
    info = wildcard.create_cache("promoted")
    with dashboard(wildcard, info) as api:
        secondary = api.post("/credentials").json()["username"]
        assert api.post(f"/credentials/{secondary}/promote").status_code == 200
        app = api.get("/app").json()
    assert app["config_vars"]["MEMCACHIER_USERNAME"] == secondary
    assert app["config_vars"]["MEMCACHIER_SERVERS"] == info["servers"]
    assert app["config_vars"]["MEMCACHIER_TLS_SERVERS"] == info["tls_servers"]


def test_sso_rotation_hands_out_the_public_url(tmp_path) -> None:
    public = "https://cachier.example.com/memcache"
    running = RunningService(make_config(tmp_path, public_url=public + "/")).start()
    try:
        info = running.create_cache("public")
        assert info["dashboard_url"].startswith(public + "/dashboard/")
        with dashboard(running, info) as api:
            rotated = api.post("/sso/rotate").json()["dashboard_url"]
        assert rotated.startswith(public + "/dashboard/")
        rss_url = httpx.get(running.api_url + "/api/v1/status").json()["rss_url"]
        assert rss_url == public + "/status.rss"
        assert info["servers"].startswith("127.0.0.1:")  # --public-url is the API's only
    finally:
        running.stop()


def test_existing_apps_get_the_advertised_and_tls_addresses_at_start(tmp_path) -> None:
    first = RunningService(make_config(tmp_path)).start()
    info = first.create_cache("older")
    first.stop()
    assert info["servers"].startswith("127.0.0.1:")

    advertised = make_config(tmp_path, advertise_host=ADVERTISED, tls_port=0, tls_self_signed=True)
    second = RunningService(advertised).start()
    try:
        with dashboard(second, info) as api:
            app = api.get("/app").json()
        assert app["config_vars"]["MEMCACHIER_SERVERS"].startswith(f"{ADVERTISED}:")
        assert app["config_vars"]["MEMCACHIER_TLS_SERVERS"].startswith(f"{ADVERTISED}:")
        assert app["release"] == 2
    finally:
        second.stop()

    third = RunningService(make_config(tmp_path, advertise_host=ADVERTISED)).start()
    try:
        with dashboard(third, info) as api:
            app = api.get("/app").json()
        assert "MEMCACHIER_TLS_SERVERS" not in app["config_vars"]  # TLS is off again
        assert "MEMCACHIER_TLS_SERVERS" in app["releases"][0]["description"]
    finally:
        third.stop()


def test_an_ipv6_advertised_host_is_bracketed(tmp_path) -> None:
    running = RunningService(make_config(tmp_path, advertise_host="2001:db8::5")).start()
    try:
        info = running.create_cache("six")
    finally:
        running.stop()
    assert info["servers"].startswith("[2001:db8::5]:")
    assert info["dashboard_url"].startswith("http://[2001:db8::5]:")


def test_a_wildcard_bind_without_advertise_host_hands_out_the_machine_name(tmp_path) -> None:
    running = RunningService(make_config(tmp_path, host="0.0.0.0")).start()
    try:
        info = running.create_cache("named")
        warnings = running.service.warnings
    finally:
        running.stop()
    assert info["servers"] == f"{socket.getfqdn()}:{port_of(info['servers'])}"
    assert any("--advertise-host" in w for w in warnings)


def test_the_banner_tells_the_advertised_addresses(tmp_path) -> None:
    api_port = free_fixed_ports(1)[0]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "--data-dir",
            str(tmp_path),
            "--host",
            "0.0.0.0",
            "--advertise-host",
            ADVERTISED,
            "--api-port",
            str(api_port),
            "--endpoint-port",
            "0",
            "--admin-token",
            ADMIN_TOKEN,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{api_port}",
            timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as admin:
            info = admin.post("/api/v1/admin/caches", json={"name": "cli", "plan": "free"}).json()
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert info["servers"].startswith(f"{ADVERTISED}:")
    assert f"  API        http://{ADVERTISED}:{api_port}" in out
    assert f"  endpoint   {info['servers']}   region local" in out
    assert "listening  on 0.0.0.0" in out
    assert "Traceback" not in err
