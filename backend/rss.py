"""The status history as an RSS 2.0 feed: one item per change of a cluster's light."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

from backend.control.repository import IncidentRow

LABELS = {"green": "UP", "yellow": "SLOW", "red": "DOWN", "blue": "RESOLVED"}
DESCRIPTION = (
    "Automated status of cachier clusters: green up, yellow slow, red down, blue recently resolved."
)


def rfc822(unix: float) -> str:
    return email.utils.format_datetime(datetime.fromtimestamp(unix, UTC))


def item_title(row: IncidentRow) -> str:
    return f"{row.cluster} is {row.light} ({LABELS.get(row.light, row.light.upper())})"


def item_description(row: IncidentRow) -> str:
    proxies = row.proxies.split()
    named = f" Proxies involved: {', '.join(proxies)}." if proxies else ""
    return f"{row.cluster} changed from {row.previous} to {row.light}: {row.cause}.{named}"


def guid(row: IncidentRow) -> str:
    """The incident's database id: stable across restarts, so a reader never sees an old
    change twice (in either feed format)."""
    return f"cachier-status-{row.id}"


def feed(
    rows: list[IncidentRow], site_url: str, feed_url: str, title: str = "cachier status"
) -> bytes:
    """RSS 2.0, newest first. The same rows give the same bytes (``lastBuildDate`` is the
    newest change, absent when there is none), so the feed's ETag only changes with it."""
    rss = ET.Element("rss", version="2.0")
    channel = ET.SubElement(rss, "channel")
    ET.SubElement(channel, "title").text = title
    ET.SubElement(channel, "link").text = site_url
    ET.SubElement(channel, "description").text = DESCRIPTION
    ET.SubElement(channel, "language").text = "en"
    if rows:
        ET.SubElement(channel, "lastBuildDate").text = rfc822(rows[0].started_at)
    atom = ET.SubElement(channel, "{http://www.w3.org/2005/Atom}link")
    atom.set("href", feed_url)
    atom.set("rel", "self")
    atom.set("type", "application/rss+xml")
    for row in rows:
        item = ET.SubElement(channel, "item")
        ET.SubElement(item, "title").text = item_title(row)
        ET.SubElement(item, "link").text = site_url
        ET.SubElement(item, "description").text = item_description(row)
        ET.SubElement(item, "pubDate").text = rfc822(row.started_at)
        ET.SubElement(item, "guid", isPermaLink="false").text = guid(row)
        ET.SubElement(item, "category").text = row.cluster
    ET.register_namespace("atom", "http://www.w3.org/2005/Atom")
    return ET.tostring(rss, encoding="utf-8", xml_declaration=True)
