"""`cachier-backend` as an operator runs it: a real process, flags, signals, errors."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import free_fixed_ports, postgres_database

COMMAND = [sys.executable, "-m", "backend.cli"]


def start(tmp_path, *extra: str) -> tuple[subprocess.Popen, int]:
    api_port = free_fixed_ports(1)[0]
    process = subprocess.Popen(
        [
            *COMMAND,
            "--data-dir",
            str(tmp_path),
            "--api-port",
            str(api_port),
            "--endpoint-port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{api_port}/healthz").status_code == 200:
                return process, api_port
        except httpx.TransportError:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read()) from None
            time.sleep(0.05)
    process.kill()
    raise AssertionError("backend did not become healthy")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_starts_prints_where_it_listens_and_stops_cleanly(tmp_path, sig) -> None:
    process, api_port = start(tmp_path)
    process.send_signal(sig)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"http://127.0.0.1:{api_port}" in out
    assert re.search(r"endpoint\s+127\.0\.0\.1:\d+\s+region local", out)
    assert out.count("proxy-") == 4
    assert "admin token (generated" in out
    assert "Traceback" not in err
    with socket.socket() as probe:  # the port is free again
        probe.bind(("127.0.0.1", api_port))


def test_admin_token_from_the_environment_is_used_and_not_printed(tmp_path) -> None:
    os.environ["CACHIER_ADMIN_TOKEN"] = "from-env-token"
    try:
        process, api_port = start(tmp_path)
    finally:
        del os.environ["CACHIER_ADMIN_TOKEN"]
    try:
        url = f"http://127.0.0.1:{api_port}/api/v1/admin/caches"
        assert httpx.get(url, headers={"Authorization": "Bearer from-env-token"}).status_code == 200
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=15)
    assert "from-env-token" not in out


def test_topology_file_describes_regions_clusters_and_proxies(tmp_path) -> None:
    topology = tmp_path / "topology.toml"
    topology.write_text(
        '[[regions]]\nname = "eu"\n'
        '[[regions.clusters]]\nname = "eu-a"\nproxies = 3\n'
        '[[regions.clusters]]\nname = "eu-b"\nproxies = [{hostname = "edge.example"}]\n'
    )
    process, _ = start(tmp_path, "--topology", str(topology))
    process.terminate()
    out, _ = process.communicate(timeout=15)
    assert "region eu" in out
    assert "proxy-3.eu-a.eu.cachier.internal" in out and "edge.example" in out


def test_clusters_flag_runs_only_those_clusters_proxies(tmp_path) -> None:
    process, api_port = start(tmp_path, "--clusters", "local-b")
    status = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/status").json()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "clusters   local-b (run here)" in out
    assert out.count("proxy-") == 2 and ".local-a." not in out
    assert re.search(r"endpoint\s+127\.0\.0\.1:\d+\s+region local", out)  # every region
    assert {c["name"] for r in status["regions"] for c in r["clusters"]} == {"local-a", "local-b"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-port", "99999"], "outside 0-65535"),
        (["--auth-timeout", "soon"], "not a number of seconds"),
        (["--no-such-flag"], "unrecognized arguments"),
        (["--topology", "/nonexistent.toml"], "cannot read topology file"),
        (["--advertise-host", "0.0.0.0"], "clients cannot connect to a wildcard"),
        (["--advertise-host", "cache.example.test:11211"], "without a port"),
        (["--public-url", "cachier.example.com"], "http:// or https:// URL"),
        (["--public-url", "http://[::]:8080"], "wildcard"),
        (["--database", "mysql://db/cachier"], "give sqlite:///path or postgresql://"),
        (["--database", "sqlite://"], "sqlite:///path/to/file"),
        (["--api-tls"], "--api-tls needs --tls-cert and --tls-key, or --tls-self-signed"),
        (["--tls-self-signed"], "needs --tls-port or --api-tls"),
        (
            ["--api-tls", "--tls-self-signed", "--public-url", "http://cachier.example.com"],
            "--public-url must start with https://",
        ),
        (
            ["--clusters", "local-a,local-z"],
            "--clusters: unknown cluster 'local-z'; the topology's clusters are local-a, local-b",
        ),
        (["--clusters", " , "], "--clusters: no cluster; the topology's clusters are"),
        (
            ["--demo", "--clusters", "local-a"],
            "unknown cluster 'local-a'; the topology's clusters are use1-a, use1-b, use1-c",
        ),
        (["--metrics-per-cache", "maybe"], "give on or off"),
    ],
)
def test_bad_flags_are_one_line_errors(tmp_path, args, message) -> None:
    result = subprocess.run(
        [*COMMAND, "--data-dir", str(tmp_path), *args], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_one_line_error(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--data-dir", str(tmp_path), "--api-port", str(port), "--endpoint-port", "0"]
        result = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"cachier-backend: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_an_unreachable_database_is_a_one_line_error(tmp_path) -> None:
    url = "postgresql://cachier:hunter2@127.0.0.1:1/cachier"
    args = ["--data-dir", str(tmp_path), "--api-port", "0", "--endpoint-port", "0"]
    result = subprocess.run(
        [*COMMAND, *args, "--database", url], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "cachier-backend: error: cannot use database postgresql://cachier:***@127.0.0.1:1/cachier:"
    )
    assert len(result.stderr.strip().splitlines()) == 1 and "hunter2" not in result.stderr


def test_runs_on_a_postgresql_control_plane_and_says_so(tmp_path) -> None:
    with postgres_database() as url:
        process, _ = start(tmp_path, "--database", url)  # healthy: migrated and serving
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert f"database   PostgreSQL {url}" in out
    assert "Traceback" not in err


def test_a_service_that_failed_to_start_stops_cleanly(tmp_path) -> None:
    """The dashboard stops its in-process backend on exit even when it never started."""
    import asyncio

    from backend.service import Service, ServiceError
    from tests.conftest import make_config

    async def main() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = Service(make_config(tmp_path, api_port=port))
            with pytest.raises(ServiceError, match="cannot listen"):
                await service.start()
            await service.stop()  # raised "Cannot operate on a closed database" before

    asyncio.run(main())


PLAIN_API_WARNING = "without TLS: admin tokens and dashboard secrets cross the network"


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        (["--host", "0.0.0.0", "--advertise-host", "127.0.0.1"], True),
        (["--host", "0.0.0.0", "--advertise-host", "127.0.0.1", "--api-insecure-ok"], False),
        ([], False),  # loopback: the default, unchanged
    ],
)
def test_a_plain_http_api_off_loopback_is_warned_about(tmp_path, extra, warned) -> None:
    process, _ = start(tmp_path, *extra)
    process.terminate()
    out, err = process.communicate(timeout=15)
    warning = [line for line in out.splitlines() if PLAIN_API_WARNING in line]
    if warned:
        assert len(warning) == 1 and "--api-tls" in warning[0] and "--api-insecure-ok" in warning[0]
        assert warning[0].startswith("  warning: the HTTP API listens on 0.0.0.0")
    else:
        assert warning == []
    assert "Traceback" not in err


def test_api_tls_serves_https_only_and_says_where_its_certificate_is(tmp_path) -> None:
    api_port = free_fixed_ports(1)[0]
    args = ["--data-dir", str(tmp_path), "--api-port", str(api_port), "--endpoint-port", "0"]
    process = subprocess.Popen(
        [*COMMAND, *args, "--api-tls", "--tls-self-signed", "--host", "0.0.0.0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cert = tmp_path / "tls-cert.pem"
        deadline = time.monotonic() + 20
        while True:
            assert time.monotonic() < deadline and process.poll() is None, "not healthy"
            try:
                url = f"https://127.0.0.1:{api_port}/healthz"
                if httpx.get(url, verify=ssl.create_default_context(cafile=cert)).is_success:
                    break
            except (httpx.TransportError, OSError):
                time.sleep(0.05)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert re.search(rf"API\s+https://\S+:{api_port}\s", out)
    assert f"API TLS    certificate {cert} (HTTPS only)" in out
    assert PLAIN_API_WARNING not in out  # 0.0.0.0, but over TLS
