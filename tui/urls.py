"""Dashboard URLs: ``<backend>/dashboard/<secret>``, taken apart without any HTTP client."""

from __future__ import annotations


def sso_of(dashboard_url: str) -> str:
    """The secret part of a dashboard URL (``…/dashboard/<sso>``)."""
    return dashboard_url.rstrip("/").rsplit("/dashboard/", 1)[1].split("/", 1)[0]


def api_of(dashboard_url: str) -> str:
    """The backend's base URL from a dashboard URL."""
    return dashboard_url.rstrip("/").rsplit("/dashboard/", 1)[0]
