"""Dashboard SSO: rotating a cache's secret URL (the old one stops working at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.control.models import Cache
from backend.control.secrets import new_nonce, sso_hash

if TYPE_CHECKING:
    from backend.control.caches import ControlPlane


def rotate(control: ControlPlane, cache: Cache) -> str:
    """A new secret; returns the new dashboard URL. The secret itself is never logged."""
    nonce = new_nonce()
    digest = sso_hash(control.secrets.sso_secret(cache.id, nonce))
    with control.transaction():
        control.db.set_sso(cache.id, nonce, digest)
        control.log(cache.id, "Dashboard SSO secret rotated; the previous dashboard URL is void")
    cache.sso_nonce, cache.sso_hash = nonce, digest
    return control.dashboard_url(cache)
