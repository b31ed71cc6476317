"""cachier against Debian's memcached, byte for byte, on well-formed ASCII, meta and binary.

The cases live in ``differential.py`` (``bench/memcached_diff.py`` runs them, plus the
malformed ones, against a newest memcached build). CI installs ``memcached``; only a
developer machine without it skips.
"""

from __future__ import annotations

from tests.backend.differential import Server, compare, memcached, well_formed_cases
from tests.conftest import CacheHandle, require_tool


def test_cachier_answers_well_formed_requests_as_memcached_does(cache: CacheHandle) -> None:
    binary = require_tool("memcached", "memcached")
    host, port = cache.endpoint
    cachier = Server("cachier", host, port, cache.username, cache.password)
    with memcached(binary) as reference:
        differences = compare([reference, cachier], well_formed_cases())
    assert not differences, "\n".join(d.describe() for d in differences)
