"""The tenant's view of memcached's ``stats`` families, shared by the ASCII and binary codecs.

Every figure describes the session's own cache only (its items, its counters, its plan's
memory limit), never the proxy process as a whole: a tenant must not learn about others.
"""

from __future__ import annotations

import os
import resource
import time
from typing import TYPE_CHECKING

from backend import MEMCACHED_VERSION
from backend.store import ITEM_OVERHEAD, MAX_ITEM_SIZE

if TYPE_CHECKING:
    from backend.session import AuthenticatedSession

Stats = list[tuple[str, str]]
STARTED_AT = time.time()


def general(session: AuthenticatedSession) -> Stats:
    engine = session.engine
    counters = engine.stats
    usage = engine.usage()
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    now = time.time()
    rows: Stats = [
        ("pid", str(os.getpid())),
        ("uptime", str(int(now - STARTED_AT))),
        ("time", str(int(now))),
        ("version", MEMCACHED_VERSION),
        ("libevent", "uvloop"),
        ("pointer_size", "64"),
        ("rusage_user", f"{rusage.ru_utime:.6f}"),
        ("rusage_system", f"{rusage.ru_stime:.6f}"),
        ("max_connections", "4096"),
        ("curr_connections", str(counters.curr_connections)),
        ("total_connections", str(counters.total_connections)),
        ("rejected_connections", "0"),
    ]
    for name in (
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "cmd_meta",
        "cmd_delete",
        "get_hits",
        "get_misses",
        "get_expired",
        "get_flushed",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "decr_misses",
        "decr_hits",
        "cas_misses",
        "cas_hits",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "store_too_large",
        "store_no_memory",
        "auth_cmds",
        "auth_errors",
        "bytes_read",
        "bytes_written",
    ):
        rows.append((name, str(getattr(counters, name))))
    rows += [
        ("limit_maxbytes", str(usage.limit)),
        ("accepting_conns", "1"),
        ("threads", "1"),
        ("bytes", str(usage.bytes)),
        ("curr_items", str(usage.items)),
        ("total_items", str(counters.total_items)),
        ("expired_unfetched", str(counters.expired_unfetched)),
        ("evicted_unfetched", str(counters.evicted_unfetched)),
        ("evictions", str(counters.evictions)),
        ("reclaimed", str(counters.reclaimed)),
        ("expired", str(counters.expired)),
    ]
    return rows


def settings(session: AuthenticatedSession) -> Stats:
    return [
        ("maxbytes", str(session.engine.usage().limit)),
        ("maxconns", "4096"),
        ("tcpport", session.proxy.address.rpartition(":")[2]),
        ("udpport", "0"),
        ("verbosity", "0"),
        ("evictions", "on"),
        ("cas_enabled", "yes"),
        ("binding_protocol", "auto-negotiate"),
        ("auth_enabled_sasl", "yes"),
        ("auth_enabled_ascii", "yes"),
        ("item_size_max", str(MAX_ITEM_SIZE)),
        ("num_threads", "1"),
        ("flush_enabled", "yes" if session.credential.flush else "no"),
        ("idle_timeout", "0"),
    ]


def items(session: AuthenticatedSession) -> Stats:
    """One pseudo slab class (1): cachier has no slab allocator, so all items share it."""
    engine = session.engine
    oldest = engine.oldest_access()
    if oldest is None:
        return []
    usage = engine.usage()
    counters = engine.stats
    return [
        ("items:1:number", str(usage.items)),
        ("items:1:age", str(int(time.time() - oldest))),
        ("items:1:mem_requested", str(usage.bytes)),
        ("items:1:evicted", str(counters.evictions)),
        ("items:1:evicted_unfetched", str(counters.evicted_unfetched)),
        ("items:1:outofmemory", "0"),
        ("items:1:reclaimed", str(counters.reclaimed)),
        ("items:1:expired_unfetched", str(counters.expired_unfetched)),
    ]


def slabs(session: AuthenticatedSession) -> Stats:
    engine = session.engine
    counters = engine.stats
    usage = engine.usage()
    rows: Stats = []
    if usage.items:
        chunk = max(ITEM_OVERHEAD, usage.bytes // usage.items)
        rows += [
            ("1:chunk_size", str(chunk)),
            ("1:used_chunks", str(usage.items)),
            ("1:get_hits", str(counters.get_hits)),
            ("1:cmd_set", str(counters.cmd_set)),
            ("1:delete_hits", str(counters.delete_hits)),
            ("1:incr_hits", str(counters.incr_hits)),
            ("1:decr_hits", str(counters.decr_hits)),
            ("1:cas_hits", str(counters.cas_hits)),
            ("1:cas_badval", str(counters.cas_badval)),
            ("1:touch_hits", str(counters.touch_hits)),
        ]
    rows += [("active_slabs", "1" if usage.items else "0"), ("total_malloced", str(usage.bytes))]
    return rows


# memcached's bounds: slab class ids below 64, a cachedump reply of at most 2 MB.
SLAB_CLASSES = 64
CACHEDUMP_LIMIT = 2 * 1024 * 1024


def cachedump(session: AuthenticatedSession, slab: int, limit: int) -> bytes:
    """``stats cachedump <slab> <limit>``: the session's own keys, never another tenant's.

    cachier has no slab allocator: every item is in pseudo class 1 (as ``stats items``
    says), so class 1 lists the cache and the other valid classes are empty. Lines are
    memcached's, ``ITEM <key> [<value bytes> b; <expiry unix time, 0 = never> s]``, most
    recently used first (memcached walks an LRU from its head); at most ``limit`` of
    them (0: no limit) and, as memcached, no more than 2 MB of reply.
    """
    lines: list[bytes] = []
    if slab == 1:
        size = len(b"END\r\n")
        for key, value_len, exptime in session.engine.dump():
            if limit and len(lines) >= limit:
                break
            line = b"ITEM %b [%d b; %d s]\r\n" % (key, value_len, int(exptime))
            size += len(line)
            if size > CACHEDUMP_LIMIT:
                break
            lines.append(line)
    lines.append(b"END\r\n")
    return b"".join(lines)


def sizes(session: AuthenticatedSession) -> Stats:
    return [("sizes_status", "disabled")]


def conns(session: AuthenticatedSession) -> Stats:
    """Only the asking connection itself: other connections may belong to other tenants."""
    proxy = session.proxy
    return [
        ("0:addr", f"tcp:{session.peer_host}"),
        ("0:listen_addr", f"tcp:{proxy.address}"),
        ("0:state", "conn_parse_cmd"),
    ]


# Sub-commands accepted after "stats"; anything else is memcached's ERROR / binary not-found.
FAMILIES = {
    "": general,
    "settings": settings,
    "items": items,
    "slabs": slabs,
    "sizes": sizes,
    "conns": conns,
}
