"""TLS on the region endpoints, for both protocols, with a throwaway CA from trustme."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys

import bmemcached
import pytest
import trustme

from tests.backend.test_auth import AuthenticatingClient
from tests.conftest import CacheHandle, RunningService, address, make_config


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_service(tmp_path_factory, ca: trustme.CA):
    data_dir = tmp_path_factory.mktemp("tls")
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = data_dir / "server.pem", data_dir / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(cert)
    server_cert.private_key_pem.write_to_path(key)
    running = RunningService(make_config(data_dir, tls_port=0, tls_cert=cert, tls_key=key)).start()
    yield running
    running.stop()


@pytest.fixture
def tls_cache(tls_service: RunningService) -> CacheHandle:
    return CacheHandle(tls_service.create_cache(f"secure-{os.urandom(3).hex()}"))


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def test_cache_reports_its_tls_endpoint(tls_service: RunningService, tls_cache) -> None:
    assert tls_cache.info["tls_servers"] == tls_service.listening.tls_endpoints["local"]
    assert tls_cache.info["tls_servers"] != tls_cache.info["servers"]


def test_pymemcache_over_tls(tls_cache: CacheHandle, ca: trustme.CA) -> None:
    client = AuthenticatingClient(
        address(tls_cache.info["tls_servers"]), tls_cache.username, tls_cache.password
    )
    client.tls_context = client_context(ca)
    assert client.set("secret", "kept", noreply=False) is True
    assert client.get("secret") == b"kept"
    client.close()


def test_binary_sasl_over_tls_sees_what_ascii_stored(tls_cache: CacheHandle, ca) -> None:
    ascii_client = AuthenticatingClient(
        address(tls_cache.info["tls_servers"]), tls_cache.username, tls_cache.password
    )
    ascii_client.tls_context = client_context(ca)
    ascii_client.set("shared", "from-ascii", noreply=False)
    binary = bmemcached.Client(
        [tls_cache.info["tls_servers"]],
        tls_cache.username,
        tls_cache.password,
        tls_context=client_context(ca),
    )
    assert binary.get("shared") == "from-ascii"  # flags 0: bmemcached decodes to str
    assert binary.set("other", "from-binary")
    assert ascii_client.get("other") == b"from-binary"
    binary.disconnect_all()


def test_plaintext_client_on_the_tls_port_fails_cleanly(tls_cache: CacheHandle) -> None:
    with socket.create_connection(address(tls_cache.info["tls_servers"]), timeout=5) as sock:
        secret = tls_cache.password.encode()
        sock.sendall(
            b"set %s 0 0 %d\r\n%s\r\n" % (tls_cache.username.encode(), len(secret), secret)
        )
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert b"STORED" not in received  # closed without serving plaintext


def test_plaintext_port_still_works_next_to_tls(tls_cache: CacheHandle) -> None:
    client = AuthenticatingClient(tls_cache.endpoint, tls_cache.username, tls_cache.password)
    assert client.set("plain", "ok", noreply=False) is True


def test_self_signed_certificate_is_made_once_and_verifiable(tmp_path) -> None:
    running = RunningService(make_config(tmp_path, tls_port=0, tls_self_signed=True)).start()
    try:
        cache = CacheHandle(running.create_cache("selfie"))
        cert, key = tmp_path / "tls-cert.pem", tmp_path / "tls-key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        context = ssl.create_default_context(cafile=str(cert))
        client = AuthenticatingClient(
            address(cache.info["tls_servers"]), cache.username, cache.password
        )
        client.tls_context = context
        assert client.set("k", "v", noreply=False) is True
        first = cert.read_bytes()
    finally:
        running.stop()
    RunningService(make_config(tmp_path, tls_port=0, tls_self_signed=True)).start().stop()
    assert cert.read_bytes() == first


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-port", "0"], "--tls-port needs --tls-cert and --tls-key, or --tls-self-signed"),
        (["--tls-self-signed"], "a TLS certificate needs --tls-port"),
        (["--tls-port", "0", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (
            [
                "--tls-port",
                "0",
                "--tls-cert",
                "/no/c.pem",
                "--tls-key",
                "/no/k.pem",
                "--api-port",
                "0",
                "--endpoint-port",
                "0",
            ],
            "TLS: cannot read /no/c.pem",
        ),
    ],
)
def test_tls_flag_mistakes_are_one_line_errors(tmp_path, args, message) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
