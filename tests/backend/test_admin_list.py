"""The admin caches list pages and filters (issue 15, item 3): a real service, real HTTP,
a few hundred caches created through the admin API."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningService, make_config

PLANS = ["free", "100mb", "250mb", "5gb"]
COUNT = 240


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningService, dict]]:
    """A service of its own (totals are exact) with COUNT caches: names in mixed case and
    out of creation order, four plans, spread over the two clusters."""
    running = RunningService(make_config(tmp_path_factory.mktemp("data"))).start()
    created = {}
    with running.admin() as admin:
        for i in range(COUNT):
            name = f"{'Shop' if i % 3 == 0 else 'tenant'}-{(i * 7919) % 1000:03d}-{i}"
            body = {"name": name, "plan": PLANS[i % len(PLANS)]}
            response = admin.post("/api/v1/admin/caches", json=body)
            assert response.status_code == 201, response.text
            created[response.json()["id"]] = response.json()
    yield running, created
    running.stop()


def walk(admin: httpx.Client, limit: int, **params: str) -> tuple[list[dict], list[int]]:
    """Every page in turn; the caches and the ``total`` of each page."""
    caches: list[dict] = []
    totals = []
    cursor = None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = admin.get("/api/v1/admin/caches", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor", "total", "alerts_firing"}
        assert len(page["items"]) <= limit
        caches += page["items"]
        totals.append(page["total"])
        cursor = page["next_cursor"]
        if cursor is None:
            return caches, totals
        assert len(page["items"]) == limit  # only the last page is short


def ids(caches: list[dict]) -> list[str]:
    return [c["id"] for c in caches]


def order(cache: dict) -> tuple[str, str]:
    return cache["name"], cache["id"]


def test_walking_the_pages_gives_every_cache_once_in_name_order(listed) -> None:
    running, created = listed
    with running.admin() as admin:
        caches, totals = walk(admin, limit=7)
    assert [c["id"] for c in caches] == [c["id"] for c in sorted(created.values(), key=order)]
    assert set(totals) == {COUNT}
    assert len(totals) == -(-COUNT // 7)
    one = caches[0]
    assert {k: v for k, v in one.items() if k != "usage"} == {
        k: v for k, v in created[one["id"]].items() if k != "usage"
    }  # the same cache the create answered, with its live usage


def test_the_default_page_is_100_and_1000_is_the_largest(listed) -> None:
    running, _ = listed
    with running.admin() as admin:
        first = admin.get("/api/v1/admin/caches").json()
        everything = admin.get("/api/v1/admin/caches", params={"limit": 1000}).json()
    assert len(first["items"]) == 100 and first["next_cursor"] and first["total"] == COUNT
    assert len(everything["items"]) == COUNT and everything["next_cursor"] is None
    assert ids(everything["items"][:100]) == ids(first["items"])


@pytest.mark.parametrize(
    ("q", "matches"),
    [
        ("shop", lambda c: "shop" in c["name"].lower()),  # case-insensitive, on the name
        ("SHOP-1", lambda c: c["name"].lower().startswith("shop-1")),
        ("5GB", lambda c: c["plan"] == "5gb"),  # the plan
        ("local-b", lambda c: c["cluster"] == "local-b"),  # the cluster
        ("-00", lambda c: "-00" in c["name"]),
        ("no such cache", lambda c: False),
    ],
)
def test_q_filters_on_name_plan_and_cluster_across_pages(listed, q: str, matches) -> None:
    running, created = listed
    with running.admin() as admin:
        everything, _ = walk(admin, limit=1000)
        caches, totals = walk(admin, limit=9, q=q)
    expected = [c["id"] for c in everything if matches(c)]
    assert [c["id"] for c in caches] == expected
    assert set(totals) == {len(expected)}
    if q != "no such cache":
        assert 0 < len(expected) < COUNT  # the filter does filter


def test_q_finds_a_cache_by_its_id(listed) -> None:
    running, created = listed
    wanted = sorted(created)[17]
    with running.admin() as admin:
        page = admin.get("/api/v1/admin/caches", params={"q": wanted.upper()}).json()
    assert [c["id"] for c in page["items"]] == [wanted] and page["total"] == 1


def test_q_follows_a_cache_that_moves_to_another_cluster(listed) -> None:
    running, created = listed
    cache = next(c for c in created.values() if c["plan"] == "5gb")
    with running.admin() as admin:
        moved = admin.post(cache["dashboard_url"] + "/api/migrate")
        assert moved.status_code == 200, moved.text
        now, before = moved.json()["cluster"], moved.json()["previous_cluster"]
        on_new = walk(admin, limit=1000, q=now)[0]
        on_old = walk(admin, limit=1000, q=before)[0]
    assert cache["id"] in ids(on_new) and cache["id"] not in ids(on_old)
    assert all(c["cluster"] == now for c in on_new)


def test_pages_neither_repeat_nor_skip_under_concurrent_creates_and_deletes(listed) -> None:
    """Every cache that exists for the whole walk is seen exactly once, in order, while
    caches are created and deleted before, among and after the walk's position: between
    two pages, at least one change lands."""
    running, created = listed
    changes = threading.Semaphore(0)
    stop = threading.Event()
    churned: list[str] = []
    deleted: list[str] = []
    failures: list[str] = []
    victims = iter(sorted(created.values(), key=order)[::-6])  # listed caches, from the end

    def churn() -> None:
        i = 0
        with running.admin() as admin:
            while not stop.is_set():
                name = ["a", "tenant-5", "zz"][i % 3] + f"-churn-{i}"  # sorts before/among/after
                reply = admin.post("/api/v1/admin/caches", json={"name": name, "plan": "free"})
                if reply.status_code != 201:
                    failures.append(reply.text)
                    return
                churned.append(reply.json()["id"])
                if i % 2:  # every other time, delete a churned cache and a listed one
                    for gone in (churned[-2], next(victims)["id"]):
                        answer = admin.delete(f"/api/v1/admin/caches/{gone}")
                        if answer.status_code != 204:
                            failures.append(answer.text)
                        deleted.append(gone)
                changes.release()
                i += 1

    thread = threading.Thread(target=churn)
    caches: list[dict] = []
    totals = []
    with running.admin() as admin:
        before = {c["id"] for c in walk(admin, limit=1000)[0]}
        thread.start()
        try:
            cursor = None
            while True:
                query = {"limit": 10} | ({"cursor": cursor} if cursor else {})
                page = admin.get("/api/v1/admin/caches", params=query).json()
                caches += page["items"]
                totals.append(page["total"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
                assert changes.acquire(timeout=10), "the churn stopped"
        finally:
            stop.set()
            thread.join(10)
    assert not failures
    seen = ids(caches)
    assert len(seen) == len(set(seen)), "a cache was listed twice"
    assert [order(c) for c in caches] == sorted(order(c) for c in caches)
    stayed = before - set(deleted)
    assert stayed <= set(seen), f"{len(stayed - set(seen))} caches were skipped"
    assert len(deleted) > 10 and len(set(totals)) > 1  # the list did change during the walk
    with running.admin() as admin:  # the churn's own caches go again
        for cache_id in set(churned) - set(deleted):
            assert admin.delete(f"/api/v1/admin/caches/{cache_id}").status_code == 204


def test_a_cursor_stays_valid_when_its_cache_is_deleted(listed) -> None:
    running, _ = listed
    with running.admin() as admin:
        for i in range(3):
            admin.post("/api/v1/admin/caches", json={"name": f"m-deleted-{i}", "plan": "free"})
        page = admin.get("/api/v1/admin/caches", params={"q": "m-del", "limit": 1}).json()
        (last,) = page["items"]
        expected = admin.get(
            "/api/v1/admin/caches", params={"q": "m-del", "cursor": page["next_cursor"]}
        ).json()
        assert admin.delete(f"/api/v1/admin/caches/{last['id']}").status_code == 204
        after = admin.get(
            "/api/v1/admin/caches", params={"q": "m-del", "cursor": page["next_cursor"]}
        ).json()
    assert ids(after["items"]) == ids(expected["items"])
    assert len(after["items"]) == 2 and after["total"] == expected["total"] - 1 == 2


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "-5"},
        {"limit": "ten"},
        {"limit": "2.5"},
        {"cursor": "not a cursor!"},
        {"cursor": ""},  # the end is a null next_cursor, never an empty one
        {"cursor": "é"},
        {"cursor": _b64(b"{}")},
        {"cursor": _b64(b'["only-a-name"]')},
        {"cursor": _b64(b"[1, 2]")},
        {"cursor": _b64(b"\xff\xfe")},
        {"cursor": "A" * 201},
        {"q": "x" * 101},
    ],
)
def test_bad_paging_parameters_are_refused_with_a_readable_422(listed, params) -> None:
    running, _ = listed
    with running.admin() as admin:
        response = admin.get("/api/v1/admin/caches", params=params)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert next(iter(params)) in error or "cursor" in error


def test_the_openapi_documents_paging(listed) -> None:
    running, _ = listed
    document = httpx.get(running.api_url + "/openapi.json").json()
    operation = document["paths"]["/api/v1/admin/caches"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert set(params) == {"limit", "cursor", "q"}
    assert all(p["description"] and not p["required"] for p in params.values())
    assert params["limit"]["schema"]["maximum"] == 1000
    assert params["limit"]["schema"]["default"] == 100
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/CachePageOut"}
    page = document["components"]["schemas"]["CachePageOut"]
    assert set(page["properties"]) == {"items", "next_cursor", "total", "alerts_firing"}
    assert "422" in operation["responses"]
