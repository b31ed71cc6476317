"""The audit trail: who changed what, derived from the control plane's own events.

Every committed change already publishes one typed event (``backend.events``); the audit
trail records the auditable ones in the **same transaction** as the change, with the actor
the request runs as. The actor is a context variable set once where a request is
authenticated (the admin token, a dashboard URL), so no operation needs a new parameter
and a change made by the system itself (start-up, the demo) says so. Details name what
changed, never a secret: usernames but no passwords, "SSO rotated" but no URL, a drain's
host but not its path or query.
"""

from __future__ import annotations

from contextvars import ContextVar

from backend.events import (
    CLIENT_FLUSH_ORIGIN,
    CacheCreated,
    CacheDeleted,
    CacheFlushed,
    CacheMoved,
    CapabilitiesChanged,
    CredentialAdded,
    CredentialRevoked,
    Event,
    PrimaryPromoted,
    SsoRotated,
)

OPERATOR = "operator (admin token)"
DASHBOARD = "cache owner (dashboard)"
MEMCACHE_CLIENT = "memcache client"
SYSTEM = "system"

_actor: ContextVar[str] = ContextVar("cachier_actor", default=SYSTEM)


def api_credential(username: str) -> str:
    """The actor of a /api/v2 request, authenticated with a credential (HTTP Basic)."""
    return f"credential {username} (API)"


def current_actor() -> str:
    return _actor.get()


def act_as(actor: str) -> None:
    """Set the actor for the rest of this request (its task's context)."""
    _actor.set(actor)


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def describe(event: Event) -> tuple[str, str, str] | None:
    """``(cache_id, action, detail)`` of an auditable event, or None (log lines, faults and
    other events are not changes a cache owner made or suffered)."""
    match event:
        case CacheCreated(cache_id, name, plan, region, cluster):
            return cache_id, "cache created", f"{name}: plan {plan}, {region} / {cluster}"
        case CacheDeleted(cache_id, cluster, usernames):
            return cache_id, "cache deleted", f"from {cluster}, {len(usernames)} credential(s)"
        case CacheMoved(cache_id, from_cluster, to_cluster, _proxy):
            return cache_id, "cache moved", f"{from_cluster} → {to_cluster}"
        case CacheFlushed(cache_id, _cluster, origin, proxy):
            return cache_id, "cache flushed", f"origin {origin}, on {proxy}"
        case CredentialAdded(cache_id, username, _password, primary, write, flush, api):
            role = "primary" if primary else "secondary"
            caps = f"write {_on_off(write)}, flush {_on_off(flush)}, api {_on_off(api)}"
            return cache_id, "credential added", f"{username} ({role}; {caps})"
        case CapabilitiesChanged(cache_id, username, write, flush, api):
            caps = f"write {_on_off(write)}, flush {_on_off(flush)}, api {_on_off(api)}"
            return cache_id, "capabilities changed", f"{username}: {caps}"
        case CredentialRevoked(cache_id, username):
            return cache_id, "credential deleted", username
        case PrimaryPromoted(cache_id, username, previous):
            return cache_id, "primary promoted", f"{username} (was {previous})"
        case SsoRotated(cache_id):
            return cache_id, "SSO rotated", "the previous dashboard URL is void"
    return None


def actor_of(event: Event) -> str:
    """A flush a memcache client ran is reported on the control loop, outside any
    request: it is the client's, whatever the context says."""
    if isinstance(event, CacheFlushed) and event.origin == CLIENT_FLUSH_ORIGIN:
        return MEMCACHE_CLIENT
    return current_actor()
