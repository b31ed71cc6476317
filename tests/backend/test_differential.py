"""cachier against Debian's memcached, byte for byte, on well-formed ASCII, meta and binary.

The cases live in ``differential.py`` (``bench/memcached_diff.py`` runs them, plus the
malformed ones, against a newest memcached build). CI installs ``memcached``; only a
developer machine without it skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.backend.differential import Server, compare, memcached, well_formed_cases
from tests.conftest import CacheHandle


def test_cachier_answers_well_formed_requests_as_memcached_does(cache: CacheHandle) -> None:
    binary = shutil.which("memcached")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("memcached is missing in CI: .ci/run must install it")
        pytest.skip("memcached not installed (Debian package memcached)")
    host, port = cache.endpoint
    cachier = Server("cachier", host, port, cache.username, cache.password)
    with memcached(binary) as reference:
        differences = compare([reference, cachier], well_formed_cases())
    assert not differences, "\n".join(d.describe() for d in differences)
