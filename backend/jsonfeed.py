"""The status history as a JSON Feed 1.1 (https://jsonfeed.org/version/1.1): the RSS
feed's twin for readers and scripts that prefer JSON, with the same items and ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from backend import rss
from backend.control.repository import IncidentRow

VERSION = "https://jsonfeed.org/version/1.1"
MEDIA_TYPE = "application/feed+json"


def _rfc3339(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def feed(rows: list[IncidentRow], site_url: str, feed_url: str, title: str) -> bytes:
    """Newest first; each id is the RSS guid, so a reader switching format sees no repeat."""
    document = {
        "version": VERSION,
        "title": title,
        "home_page_url": site_url,
        "feed_url": feed_url,
        "description": rss.DESCRIPTION,
        "language": "en",
        "items": [
            {
                "id": rss.guid(row),
                "url": site_url,
                "title": rss.item_title(row),
                "content_text": rss.item_description(row),
                "date_published": _rfc3339(row.started_at),
                "tags": [row.cluster, row.light],
            }
            for row in rows
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()
