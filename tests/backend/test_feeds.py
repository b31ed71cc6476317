"""Status feeds per cluster and region, the JSON Feed twin, and conditional GET, against
the real backend with real probes and injected faults."""

from __future__ import annotations

import email.utils
import time

import feedparser
import httpx
import pytest

from tests.backend.test_status import A1, INTERVAL, WINDOW, fault, status, wait_for_light
from tests.conftest import RunningService, make_config

B1 = "proxy-1.local-b.local.cachier.internal"


@pytest.fixture(scope="module")
def incidents(tmp_path_factory: pytest.TempPathFactory) -> RunningService:
    """local-a went down, came back and its resolved window ran out (three changes),
    local-b went down and stays down. Waiting for local-a's green makes the feeds final:
    a test that ran within ``WINDOW`` of the blue saw the feed change under it."""
    running = RunningService(
        make_config(
            tmp_path_factory.mktemp("feeds"), probe_interval=INTERVAL, resolved_window=WINDOW
        )
    ).start()
    wait_for_light(running, "local-a", "green", within=5)
    wait_for_light(running, "local-b", "green", within=5)
    fault(running, A1, "down")
    wait_for_light(running, "local-a", "red", within=2)
    fault(running, A1, "none")
    wait_for_light(running, "local-a", "blue", within=3)
    fault(running, B1, "down")
    wait_for_light(running, "local-b", "red", within=2)
    wait_for_light(running, "local-a", "green", within=WINDOW + 3)
    yield running
    running.stop()


def get(service: RunningService, path: str, **headers: str) -> httpx.Response:
    return httpx.get(service.api_url + path, headers=headers, timeout=5)


def rss_titles(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.bozo_exception
    return [entry.title for entry in feed.entries]


def test_a_cluster_feed_has_only_that_clusters_changes(incidents: RunningService) -> None:
    """Each feed holds its own cluster's changes and every one of them (a probe slowed by
    a loaded machine may add a change or two: the test asks for what must be there)."""
    a_titles = rss_titles(get(incidents, "/status.rss?cluster=local-a"))
    b_titles = rss_titles(get(incidents, "/status.rss?cluster=local-b"))
    assert all(t.startswith("local-a ") for t in a_titles), a_titles
    assert all(t.startswith("local-b ") for t in b_titles), b_titles
    assert {"local-a is blue (RESOLVED)", "local-a is red (DOWN)"} <= set(a_titles)
    assert "local-b is red (DOWN)" in b_titles
    everything = rss_titles(get(incidents, "/status.rss"))
    assert sorted(everything) == sorted(a_titles + b_titles)
    assert rss_titles(get(incidents, "/status.rss?region=local")) == everything
    titled = feedparser.parse(get(incidents, "/status.rss?cluster=local-b").content)
    assert titled.feed.title == "cachier status: local-b"


def test_status_names_each_clusters_feed(incidents: RunningService) -> None:
    body = status(incidents)
    feeds = {c["name"]: c["rss_url"] for r in body["regions"] for c in r["clusters"]}
    assert feeds["local-b"] == body["rss_url"] + "?cluster=local-b"
    assert rss_titles(httpx.get(feeds["local-b"], timeout=5)) == ["local-b is red (DOWN)"]
    assert body["json_feed_url"].endswith("/status.json")


def test_the_json_feed_twins_the_rss_feed(incidents: RunningService) -> None:
    rss = feedparser.parse(get(incidents, "/status.rss?cluster=local-a").content)
    answer = get(incidents, "/status.json?cluster=local-a")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/feed+json"
    feed = answer.json()
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "cachier status: local-a"
    assert feed["feed_url"].endswith("/status.json?cluster=local-a")
    assert [i["id"] for i in feed["items"]] == [e.id for e in rss.entries]
    assert [i["title"] for i in feed["items"]] == [e.title for e in rss.entries]
    tags = [item["tags"] for item in feed["items"]]
    assert ["local-a", "red"] in tags and ["local-a", "blue"] in tags
    reds = [i["content_text"] for i in feed["items"] if i["tags"] == ["local-a", "red"]]
    assert any(A1 in text for text in reds), reds
    published = [i["date_published"] for i in feed["items"]]
    assert published == sorted(published, reverse=True) and published[0].endswith("Z")


@pytest.mark.parametrize("path", ["/status.rss", "/status.json"])
@pytest.mark.parametrize(
    "query, error",
    [
        ("cluster=nope", "no cluster named 'nope'"),
        ("region=mars", "no region named 'mars'"),
        ("cluster=local-a&region=elsewhere", "no region named 'elsewhere'"),
    ],
)
def test_unknown_cluster_or_region_is_a_404(
    incidents: RunningService, path: str, query: str, error: str
) -> None:
    answer = get(incidents, f"{path}?{query}")
    assert answer.status_code == 404
    assert answer.json()["error"] == error


@pytest.mark.parametrize("path", ["/status.rss?cluster=local-a", "/status.json"])
def test_conditional_get_answers_304_until_the_feed_changes(
    incidents: RunningService, path: str
) -> None:
    first = get(incidents, path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and get(incidents, path).headers["etag"] == etag  # stable
    assert email.utils.parsedate_to_datetime(modified).year >= 2026

    for headers in ({"If-None-Match": etag}, {"If-None-Match": f'"other", W/{etag}'}):
        again = get(incidents, path, **headers)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
    assert get(incidents, path, **{"If-Modified-Since": modified}).status_code == 304
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3)
    stale = get(incidents, path, **{"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert stale.status_code == 200 and stale.content == first.content
    earlier = email.utils.format_datetime(
        email.utils.parsedate_to_datetime(modified).replace(year=2000), usegmt=True
    )
    assert get(incidents, path, **{"If-Modified-Since": earlier}).status_code == 200
    assert get(incidents, path, **{"If-Modified-Since": "not a date"}).status_code == 200


def test_a_new_change_changes_the_etag(tmp_path) -> None:
    running = RunningService(
        make_config(tmp_path, probe_interval=INTERVAL, resolved_window=WINDOW)
    ).start()
    try:
        wait_for_light(running, "local-a", "green", within=5)
        quiet = get(running, "/status.rss?cluster=local-a")
        assert rss_titles(quiet) == [] and "last-modified" not in quiet.headers
        fault(running, A1, "down")
        wait_for_light(running, "local-a", "red", within=2)
        time.sleep(INTERVAL)
        changed = get(
            running, "/status.rss?cluster=local-a", **{"If-None-Match": quiet.headers["etag"]}
        )
        assert changed.status_code == 200
        assert rss_titles(changed) == ["local-a is red (DOWN)"]
        assert changed.headers["etag"] != quiet.headers["etag"]
        assert "last-modified" in changed.headers
    finally:
        running.stop()
