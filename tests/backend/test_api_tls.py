"""The HTTP API over TLS (--api-tls): HTTPS only, https:// in every URL handed out, HSTS.

A throwaway CA from trustme issues the server's certificate; clients trust that CA only.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import httpx
import pytest
import trustme

from tests.conftest import ADMIN_TOKEN, RunningService, address, make_config

ADVERTISED = "cache.example.test"
HSTS = "strict-transport-security"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_service(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA):
    data_dir = tmp_path_factory.mktemp("api-tls")
    server_cert = ca.issue_cert("127.0.0.1", ADVERTISED)
    cert, key = data_dir / "server.pem", data_dir / "server.key"
    server_cert.cert_chain_pems[0].write_to_path(cert)
    server_cert.private_key_pem.write_to_path(key)
    config = make_config(
        data_dir, api_tls=True, tls_cert=cert, tls_key=key, advertise_host=ADVERTISED
    )
    running = RunningService(config).start()
    yield running
    running.stop()


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def admin(service: RunningService, ca: trustme.CA) -> httpx.Client:
    return httpx.Client(
        base_url=service.api_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        verify=trusting(ca),
        timeout=10,
    )


def test_every_url_handed_out_is_https_on_the_advertised_host(
    https_service: RunningService, ca: trustme.CA
) -> None:
    port = address(https_service.api_url.removeprefix("https://"))[1]
    public = f"https://{ADVERTISED}:{port}"
    assert https_service.api_url == f"https://127.0.0.1:{port}"
    assert https_service.listening.public_api_url == public
    with admin(https_service, ca) as client:
        created = client.post("/api/v1/admin/caches", json={"name": "secure", "plan": "100mb"})
        assert created.status_code == 201, created.text
        info = created.json()
        rss_url = client.get("/api/v1/status").json()["rss_url"]
        feed = client.get("/status.rss").text
    assert info["dashboard_url"].startswith(f"{public}/dashboard/")
    assert rss_url == f"{public}/status.rss"
    assert f"<link>{public}/api/v1/status</link>" in feed
    assert "http://" not in feed.replace("http://www.w3.org/", "")  # XML namespaces only
    for url in (info["dashboard_url"], rss_url):
        assert urlsplit(url).query == ""  # secrets go in the path, never a query string


def test_hsts_on_every_https_answer(https_service: RunningService, ca: trustme.CA) -> None:
    with httpx.Client(base_url=https_service.api_url, verify=trusting(ca), timeout=10) as client:
        answers = [
            client.get("/healthz"),
            client.head("/healthz"),
            client.get("/api/v1/admin/caches"),  # refused by the gate: 401
            client.get("/dashboard/no-such-secret/api/cache"),  # 404
        ]
    assert [a.status_code for a in answers] == [200, 200, 401, 404]
    for answer in answers:
        assert answer.headers[HSTS] == "max-age=31536000"


def test_no_hsts_over_plain_http(service: RunningService) -> None:
    answer = httpx.get(f"{service.api_url}/healthz", timeout=10)
    assert answer.status_code == 200
    assert HSTS not in answer.headers


def test_plain_http_to_the_https_port_gets_nothing(
    https_service: RunningService, ca: trustme.CA
) -> None:
    with admin(https_service, ca) as client:
        client.post("/api/v1/admin/caches", json={"name": "hidden-shop", "plan": "100mb"})
    host, port = address(https_service.api_url.removeprefix("https://"))
    request = (
        f"GET /api/v1/admin/caches HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert not answer.startswith(b"HTTP/")  # no HTTP answer: at most a TLS alert
    assert b"hidden-shop" not in answer and b"dashboard" not in answer
    with pytest.raises(httpx.TransportError):
        httpx.get(https_service.api_url.replace("https://", "http://") + "/healthz", timeout=10)


def test_an_untrusted_client_is_refused_by_its_own_verification(
    https_service: RunningService,
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{https_service.api_url}/healthz", timeout=10)  # system trust: no trustme CA


def test_self_signed_api_certificate_verifies_strictly(tmp_path) -> None:
    """--api-tls --tls-self-signed without --tls-port: the data dir's certificate, trusted
    as a file, verifies under the strict X.509 checks Python 3.13 turns on by default."""
    running = RunningService(make_config(tmp_path, api_tls=True, tls_self_signed=True)).start()
    try:
        assert running.listening.api_certificate == tmp_path / "tls-cert.pem"
        assert running.listening.tls_endpoints == {}  # no memcache TLS port was asked for
        context = ssl.create_default_context(cafile=str(tmp_path / "tls-cert.pem"))
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        answer = httpx.get(f"{running.api_url}/healthz", verify=context, timeout=10)
        assert answer.status_code == 200 and answer.headers[HSTS]
    finally:
        running.stop()


def test_no_secret_travels_in_a_query_string(service: RunningService) -> None:
    """Every query parameter of the API is a window, a cursor, a limit or a filter: tokens go in the
    Authorization header and dashboard secrets in the path, never where proxies and
    browser histories keep URLs."""
    document = httpx.get(f"{service.api_url}/openapi.json", timeout=10).json()
    queries = {
        (path, parameter["name"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }
    assert queries  # the check below looks at something
    for path, name in queries:
        assert not any(word in name.lower() for word in ("token", "secret", "sso", "pass", "key"))
        # windows, cursors, limits and filters only
        allowed = {"window", "since", "after", "before", "limit", "cursor", "q"}
        allowed |= {"cluster", "region", "cache_id", "separator"}
        assert name in allowed, (path, name)


def test_hsts_behind_a_tls_terminating_proxy_on_loopback(service: RunningService) -> None:
    """A reverse proxy on this machine that terminates TLS says so with
    ``X-Forwarded-Proto: https`` (README's nginx example); the answer then carries HSTS."""
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    answer = httpx.get(f"{service.api_url}/healthz", headers=proxied, timeout=10)
    assert answer.status_code == 200
    assert answer.headers[HSTS] == "max-age=31536000"
