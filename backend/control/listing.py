"""The caches in list order, paged by key and filtered by text: what the admin list serves.

Order is by ``(name, id)``: names are unique, so the key is total and a page can resume
after any key (keyset paging). A cursor is the last key a page returned, so a cache
created or deleted elsewhere in the list never makes a page repeat or skip one that
stayed; an offset would. The cursor is opaque to clients (base64url JSON): they pass it
back, they never build it.

Paging costs O(log n + page) without a filter. A filter scans every cache's lowered name,
id and plan (one string, made once per cache) and, when the filter matches a cluster's
name, its cluster (which a move changes): a page and its ``total`` answer the filter as
the caches are now, for ~2 ms at 10 000 caches.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from backend.control.errors import Invalid
from backend.control.models import Cache

Key = tuple[str, str]  # (name, id)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_CURSOR_CHARS = 200  # a name (63) and an id, encoded, with room to spare
MAX_QUERY_CHARS = 100


@dataclass(frozen=True)
class CachePage:
    caches: list[Cache]
    total: int  # caches matching the filter, on every page
    cursor: str | None  # where the next page starts; None on the last page


class CacheIndex:
    """Keys kept sorted as caches come and go, and each cache's fixed searchable text."""

    def __init__(self) -> None:
        self._keys: list[Key] = []
        # id -> its lowered name, id and plan, NUL-separated (no field holds a NUL)
        self._text: dict[str, str] = {}
        self._clusters: set[str] = set()  # every cluster a cache was added on

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, cache: Cache) -> None:
        insort(self._keys, (cache.name, cache.id))
        self._text[cache.id] = f"{cache.name}\0{cache.id}\0{cache.plan}".lower()
        self._clusters.add(cache.cluster)

    def remove(self, cache: Cache) -> None:
        key = (cache.name, cache.id)
        i = bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]
        self._text.pop(cache.id, None)

    def page(
        self,
        caches: Mapping[str, Cache],
        q: str | None = None,
        cursor: str | None = None,
        limit: int = DEFAULT_PAGE,
        clusters: Iterable[str] = (),
    ) -> CachePage:
        """Up to ``limit`` caches after ``cursor`` that match ``q`` (case-insensitive,
        a substring of the name, id, cluster or plan); ``total`` counts every match.
        ``clusters`` names the clusters a cache can move to (the topology's)."""
        if not 1 <= limit <= MAX_PAGE:
            raise Invalid(f"limit must be between 1 and {MAX_PAGE}")
        after = None if cursor is None else decode_cursor(cursor)
        keys = self._keys if not q else self._matching(caches, q.lower(), clusters)
        start = 0 if after is None else bisect_right(keys, after)
        chosen = keys[start : start + limit]
        more = start + limit < len(keys)
        return CachePage(
            [caches[cache_id] for _, cache_id in chosen],
            len(keys),
            encode_cursor(chosen[-1]) if more else None,
        )

    def _matching(self, caches: Mapping[str, Cache], q: str, clusters: Iterable[str]) -> list[Key]:
        text = self._text
        if "\0" in q:  # no field holds one: the separator must not match
            return []
        hits = {name for name in {*self._clusters, *clusters} if q in name.lower()}
        if not hits:
            return [key for key in self._keys if q in text[key[1]]]
        return [key for key in self._keys if q in text[key[1]] or caches[key[1]].cluster in hits]


def encode_cursor(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Key:
    """The key a cursor stands for; anything this module did not make is ``Invalid``."""
    refusal = Invalid("cursor is not one this list returned: pass next_cursor as it came")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise refusal
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode())
    except (binascii.Error, ValueError):  # bad base64, not UTF-8, not JSON
        raise refusal from None
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(k, str) for k in key)):
        raise refusal
    return key[0], key[1]
