"""Who calls /api/v2: a cache's credential, by HTTP Basic auth (RFC 7617).

One check for the route dependency and the request gate (which refuses before a body is
read), so both answer the same:

- no or unreadable credentials, an unknown username or a wrong password → 401 with
  ``WWW-Authenticate: Basic``; the password is compared in constant time, and compared
  even for an unknown username, so timing does not tell which usernames exist;
- each failure is counted by the memcache authentication throttle (``backend.throttle``:
  per address and per username, the same limits, the same counts), and while either is
  full → 429 with ``Retry-After``, without checking the password;
- a credential of another cache, or a cache that does not exist → 404 (never 403: the
  answer must not tell a stranger's credential that the cache exists);
- a credential of this cache without the ``api`` capability → 403.

Nothing is remembered between requests: every request is checked against the control
plane's records as they are now, so a capability switched off or a credential deleted is
refused from the next request on, in any process (``backend.control.follow`` brings the
records of the others' changes).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math

from backend.control.errors import Forbidden, NotFound
from backend.control.models import Cache, Credential
from backend.control.plane import ControlPlane
from backend.throttle import AuthThrottle

REALM = "cachier"
CHALLENGE = f'Basic realm="{REALM}"'
NO_CREDENTIALS = "a credential of this cache is required (HTTP Basic auth: username:password)"
FAILED = "authentication failure"
THROTTLED = "too many failed authentications, try again later"
_DUMMY = b"\0" * 32  # compared against for an unknown username


class Refused(Exception):
    """A 401 or 429, before any route runs: status, message and the headers to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def unauthorized(message: str = FAILED) -> Refused:
    return Refused(401, message, {"WWW-Authenticate": CHALLENGE})


def parse(authorization: str | None) -> tuple[str, str] | None:
    """``(username, password)`` of an ``Authorization: Basic`` header, or None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def authenticate(
    control: ControlPlane,
    throttle: AuthThrottle,
    host: str,
    given: tuple[str, str] | None,
    cache_id: str,
) -> tuple[Cache, Credential]:
    """The cache and the credential a request acts with; raises ``Refused`` (401, 429)
    or the control plane's ``NotFound`` (404) and ``Forbidden`` (403)."""
    if given is None:
        raise unauthorized(NO_CREDENTIALS)
    username, password = given
    if not throttle.allowed(host, username):
        wait = max(1, math.ceil(throttle.retry_after(host, username)))
        raise Refused(429, THROTTLED, {"Retry-After": str(wait)})
    credential = control.credentials.get(username)
    expected = credential.password if credential is not None else _DUMMY
    if not hmac.compare_digest(password.encode(), expected) or credential is None:
        throttle.record_failure(host, username)
        raise unauthorized()
    throttle.record_success(host, username)
    cache = control.caches.get(cache_id)
    if cache is None or credential.cache_id != cache.id:
        raise NotFound(f"no cache with id {cache_id!r}")
    if not credential.api:
        raise Forbidden(
            f"credential {username} does not have the api capability: switch it on in the "
            "cache's dashboard (Credentials page) or use a credential that has it"
        )
    return cache, credential
