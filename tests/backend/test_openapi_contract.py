"""The OpenAPI document tells the truth: what schemathesis found, pinned by name.

Each test failed before its fix (tests/backend/test_openapi_fuzz.py runs schemathesis
itself); they keep the fixes in place without a fuzzing run.
"""

from __future__ import annotations

import httpx

from backend.control.models import PLANS
from tests.conftest import CacheHandle, RunningService


def test_a_405_allows_every_method_of_the_path(service: RunningService) -> None:
    """Starlette named only the first matching route's methods: ``Allow: GET`` on
    ``/caches``, where POST works too."""
    with service.admin() as client:
        response = client.request("OPTIONS", "/api/v1/admin/caches")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD, POST"
        assert response.json() == {"error": "Method Not Allowed"}


def test_a_405_on_a_dashboard_path_lists_its_methods(cache: CacheHandle) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.put(f"{cache.dashboard_api}/credentials/someone", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, PATCH"


def test_a_body_that_is_not_utf8_is_invalid_json_422(cache: CacheHandle) -> None:
    """FastAPI answered 400 "There was an error parsing the body", undocumented."""
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{cache.dashboard_api}/flush",
            content=b"\xff\xfe{",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert response.json() == {"error": "the request body is not valid JSON"}


def test_an_integral_float_is_an_integer(service: RunningService) -> None:
    """JSON Schema counts 26.0 as an integer; strict pydantic refused it (422)."""
    hostname = next(iter(service.listening.proxies))
    with service.admin() as client:
        response = client.post(
            f"/api/v1/admin/proxies/{hostname}/fault", json={"mode": "slow", "delay_ms": 26.0}
        )
        client.post(f"/api/v1/admin/proxies/{hostname}/fault", json={"mode": "none"})
    assert response.status_code == 200, response.text
    assert response.json()["delay_ms"] == 26
    with service.admin() as client:
        fractional = client.post(
            f"/api/v1/admin/proxies/{hostname}/fault", json={"mode": "slow", "delay_ms": 26.5}
        )
    assert fractional.status_code == 422


def test_a_since_beyond_its_documented_maximum_is_refused(cache: CacheHandle) -> None:
    """``le=2**63 - 1`` on a float: 2**63 rounded to the bound and was accepted."""
    with httpx.Client(timeout=10) as client:
        stats = f"{cache.dashboard_api}/stats"
        assert client.get(stats, params={"since": str(2**63)}).status_code == 422
        assert client.get(stats, params={"since": "253402300800"}).status_code == 422
        assert client.get(stats, params={"since": "253402300799"}).status_code == 200


def test_the_document_names_plans_regions_and_every_error_shape(
    service: RunningService,
) -> None:
    document = httpx.get(f"{service.api_url}/openapi.json", timeout=10).json()
    schemas = document["components"]["schemas"]
    assert schemas["CacheCreate"]["properties"]["plan"]["enum"] == list(PLANS)
    assert schemas["CacheOut"]["properties"]["plan"]["enum"] == list(PLANS)
    region = schemas["CacheCreate"]["properties"]["region"]["anyOf"]
    assert {"type": "string", "enum": ["local"]} in region
    assert "HTTPValidationError" not in schemas  # FastAPI's shape; this API never sends it
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith(("4", "5")):  # a 304 has no body at all
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, code)
            if "requestBody" in operation:
                assert {"400", "413", "422"} <= set(operation["responses"]), (method, path)
