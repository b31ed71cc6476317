"""Deterministic backend answers (the schema objects the client returns) for snapshot tests
and the screenshots: fixed values, a fixed clock, no randomness."""

from __future__ import annotations

from typing import Literal

from backend.api.schemas import (
    AlertOut,
    AlertSettingsBase,
    AlertsOut,
    AppOut,
    AuditEntryOut,
    AuditOut,
    CacheInfo,
    CacheOut,
    CachePageOut,
    CacheUsage,
    ClusterStatusOut,
    CommandCountOut,
    CredentialActivityOut,
    CredentialOut,
    IncidentOut,
    KeyCountOut,
    KeysOut,
    LargestOut,
    LastAuthOut,
    LogLineOut,
    LogsOut,
    PlanName,
    ProxyStatus,
    RegionStatus,
    ReleaseOut,
    Sample,
    StatsOut,
    StatusOut,
)

ProxyState = Literal["up", "slow", "down"]  # as ProxyStatus declares them
Fault = Literal["slow", "down", "none"]

API = "http://127.0.0.1:8080"
SSO = "Zm9yLXNuYXBzaG90cy1vbmx5LW5vdC1hLXJlYWwtc2VjcmV0"
T0 = 1_795_000_000.0  # a fixed moment: snapshots never show the real clock
MB = 1024 * 1024


def _proxy(
    cluster: str,
    region: str,
    i: int,
    state: ProxyState = "up",
    latency: float | None = 0.4,
    fault: Fault = "none",
    delay: int = 0,
) -> ProxyStatus:
    return ProxyStatus(
        hostname=f"proxy-{i}.{cluster}.{region}.cachier.internal",
        address=f"127.0.0.1:{40000 + i}",
        state=state,
        latency_ms=latency,
        baseline_ms=0.4,
        fault=fault,
        delay_ms=delay,
    )


def status() -> StatusOut:
    use1 = RegionStatus(
        name="us-east-1",
        clusters=[
            ClusterStatusOut(
                name="use1-a",
                rss_url=f"{API}/status.rss?cluster=use1-a",
                light="green",
                label="UP",
                since="2026-11-18T08:00:00Z",
                proxies=[_proxy("use1-a", "us-east-1", i) for i in (1, 2, 3)],
            ),
            ClusterStatusOut(
                name="use1-b",
                rss_url=f"{API}/status.rss?cluster=use1-b",
                light="yellow",
                label="SLOW",
                since="2026-11-18T08:05:00Z",
                proxies=[
                    _proxy("use1-b", "us-east-1", 1, "slow", 212.5, "slow", 200),
                    _proxy("use1-b", "us-east-1", 2),
                    _proxy("use1-b", "us-east-1", 3),
                ],
            ),
            ClusterStatusOut(
                name="use1-c",
                rss_url=f"{API}/status.rss?cluster=use1-c",
                light="red",
                label="DOWN",
                since="2026-11-18T08:06:00Z",
                proxies=[
                    _proxy("use1-c", "us-east-1", 1, "down", None, "down"),
                    _proxy("use1-c", "us-east-1", 2),
                    _proxy("use1-c", "us-east-1", 3),
                ],
            ),
        ],
    )
    euw1 = RegionStatus(
        name="eu-west-1",
        clusters=[
            ClusterStatusOut(
                name="euw1-a",
                rss_url=f"{API}/status.rss?cluster=euw1-a",
                light="blue",
                label="RESOLVED",
                since="2026-11-18T07:59:00Z",
                proxies=[_proxy("euw1-a", "eu-west-1", i) for i in (1, 2, 3)],
            ),
        ],
    )
    incidents = [
        IncidentOut(
            id=3,
            cluster="use1-c",
            light="red",
            previous="green",
            started_at="2026-11-18T08:06:00Z",
            ended_at=None,
            cause="1 of 3 proxies unreachable: proxy-1.use1-c.us-east-1.cachier.internal",
            proxies=["proxy-1.use1-c.us-east-1.cachier.internal"],
        ),
        IncidentOut(
            id=2,
            cluster="use1-b",
            light="yellow",
            previous="green",
            started_at="2026-11-18T08:05:00Z",
            ended_at=None,
            cause="slower than usual: proxy-1.use1-b.us-east-1.cachier.internal "
            "(212.5 ms, usually 0.4 ms)",
            proxies=["proxy-1.use1-b.us-east-1.cachier.internal"],
        ),
        IncidentOut(
            id=1,
            cluster="euw1-a",
            light="blue",
            previous="red",
            started_at="2026-11-18T07:59:00Z",
            ended_at=None,
            cause="recently resolved: every proxy answers normally again",
            proxies=[],
        ),
    ]
    return StatusOut(
        regions=[use1, euw1],
        incidents=incidents,
        rss_url=f"{API}/status.rss",
        json_feed_url=f"{API}/status.json",
    )


def _credential(
    i: int,
    primary: bool = False,
    write: bool = True,
    flush: bool = True,
    activity: CredentialActivityOut | None = None,
) -> CredentialOut:
    return CredentialOut(
        username=f"USER{i:06d}",
        password=f"{i:032x}",
        primary=primary,
        write=write,
        flush=flush,
        api=primary,
        activity=activity or CredentialActivityOut(),
    )


def _used(
    ago_s: float, peers: list[str], per_minute: int, refused: int = 0
) -> CredentialActivityOut:
    return CredentialActivityOut(
        last_auth=LastAuthOut(
            at=T0 - ago_s,
            protocol="ascii",
            proxy="proxy-1.use1-a",
            peer=peers[0] if peers else "10.0.4.17",
        ),
        connections=len(peers),
        peers=peers,
        commands_last_minute=per_minute,
        commands_last_hour=per_minute * 60,
        refused_write=refused,
    )


def credentials() -> list[CredentialOut]:
    """Mid-rotation: the new primary in use, the old credential unused for 2 h, one still
    used by a straggler, one never used."""
    return [
        _credential(1, primary=True, activity=_used(3, ["10.0.4.17"] * 3 + ["10.0.4.18"], 2400)),
        _credential(2, write=False, activity=_used(7200, [], 0, refused=2)),
        _credential(3, flush=False, activity=_used(40, ["10.0.4.31"], 12)),
        _credential(4),
    ]


def caches() -> list[CacheOut]:
    Spec = tuple[str, PlanName, str, str, int, int, int, int, int]
    specs: list[Spec] = [
        ("shop", "1gb", "us-east-1", "use1-a", 310, 12000, 9, 900, 100),
        ("sessions", "250mb", "us-east-1", "use1-b", 90, 4000, 4, 95, 5),
        ("catalog", "100mb", "us-east-1", "use1-c", 99, 30000, 2, 50, 50),
        ("eu-api", "500mb", "eu-west-1", "euw1-a", 120, 8000, 3, 880, 120),
        ("sandbox", "free", "eu-west-1", "euw1-a", 24, 26000, 1, 10, 0),
    ]
    out = []
    for i, (name, plan, region, cluster, used_mb, items, conns, hits, misses) in enumerate(specs):
        limit = {"1gb": 1024, "250mb": 250, "100mb": 100, "500mb": 500, "free": 25}[plan] * MB
        out.append(
            CacheOut(
                id=f"c{i:010d}",
                name=name,
                plan=plan,
                memory_limit=limit,
                region=region,
                cluster=cluster,
                servers="127.0.0.1:11211",
                tls_servers=None,
                dashboard_url=f"{API}/dashboard/{SSO}{i}",
                created_at="2026-11-18T07:00:00.000Z",
                credentials=[_credential(1, primary=True)],
                usage=CacheUsage(
                    memory_used=used_mb * MB,
                    items=items,
                    connections=conns,
                    get_hits=hits,
                    get_misses=misses,
                ),
            )
        )
    return out


def cache_page() -> CachePageOut:
    """The caches as the admin list answers them: one page, by name."""
    items = sorted(caches(), key=lambda c: (c.name, c.id))
    firing = sum(c.alerts_firing for c in items)
    return CachePageOut(items=items, next_cursor=None, total=len(items), alerts_firing=firing)


def cache_info(plan: PlanName = "1gb") -> CacheInfo:
    paid = plan != "free"
    return CacheInfo(
        id="c0000000000",
        name="shop",
        plan=plan,
        memory_limit=1024 * MB,
        region="us-east-1",
        cluster="use1-a",
        servers="127.0.0.1:11211",
        tls_servers="127.0.0.1:11219",
        dashboard_url=f"{API}/dashboard/{SSO}",
        app="app-shop",
        can_migrate=paid,
        migrate_refusal=None
        if paid
        else "moving a cache is available on paid plans only; this cache is on the free plan",
    )


def alerts_out() -> AlertsOut:
    """Three thresholds, one of them firing, and a webhook."""
    return AlertsOut(
        settings=AlertSettingsBase(
            hit_rate_below=80,
            hit_rate_window_min=10,
            memory_above=90,
            connections_above=500,
            webhook_url="https://hooks.example.com/cachier",
        ),
        alerts=[
            AlertOut(
                alert="hit_rate",
                firing=True,
                threshold=80,
                value=61.5,
                since="2026-11-26T13:10:02.000Z",
            ),
            AlertOut(
                alert="memory",
                firing=False,
                threshold=90,
                value=42.25,
                since=None,
            ),
            AlertOut(
                alert="connections",
                firing=False,
                threshold=500,
                value=37,
                since="2026-11-26T12:58:44.000Z",
            ),
        ],
        firing=1,
        interval_s=1.0,
    )


def stats(points: int = 660) -> StatsOut:
    """Eleven minutes of a cache under steady, slightly wavy load (no randomness): the
    Analytics page's full window and more."""
    samples = []
    hits = misses = gets = sets = evictions = 0
    for i in range(points):
        wave = (i % 20) / 20
        gets += 900 + int(300 * wave)
        hits += 820 + int(270 * wave)
        misses = gets - hits
        sets += 100 + int(40 * wave)
        evictions += 1 if i % 15 == 0 else 0
        samples.append(
            Sample(
                t=T0 + i,
                memory_used=(300 + i // 4) * MB,
                memory_limit=1024 * MB,
                items=12000 + 10 * i,
                get_hits=hits,
                get_misses=misses,
                hit_rate=(820 + 270 * wave) / (900 + 300 * wave),
                cmd_get=gets,
                cmd_set=sets,
                cmd_delete=i,
                cmd_flush=0,
                evictions=evictions,
                curr_connections=8 + i % 3,
                bytes_read=sets * 1100,
                bytes_written=hits * 1100,
                latency_p50_us=32 + int(12 * wave),
                latency_p99_us=240 + int(500 * wave) + (900 if i % 97 < 3 else 0),
                latency_max_us=1200 + int(900 * wave) + (14000 if i % 97 == 1 else 0),
            )
        )
    return StatsOut(interval_s=1.0, samples=samples)


def app_out() -> AppOut:
    primary = credentials()[0]
    return AppOut(
        name="app-shop",
        config_vars={
            "MEMCACHIER_SERVERS": "127.0.0.1:11211",
            "MEMCACHIER_USERNAME": primary.username,
            "MEMCACHIER_PASSWORD": primary.password,
        },
        release=3,
        log_drain=None,
        releases=[
            ReleaseOut(
                number=3,
                description="Set MEMCACHIER_USERNAME, "
                "MEMCACHIER_PASSWORD config vars (credential promoted)",
                t="2026-11-18T07:30:00.000Z",
            )
        ],
    )


def logs() -> LogsOut:
    lines = []
    messages = [
        ("Cache shop created on plan 1gb in cluster use1-a", None, None),
        ("Credential USER000002 added", None, None),
        (
            "Cache flushed on proxy proxy-2.use1-a.us-east-1.cachier.internal "
            "(origin: memcache client)",
            "memcache client",
            "proxy-2.use1-a.us-east-1.cachier.internal",
        ),
        ("Credential USER000002 capabilities: write=off, flush=on", None, None),
        (
            "Cache flushed on proxy proxy-1.use1-a.us-east-1.cachier.internal "
            "(origin: web interface)",
            "web interface",
            "proxy-1.use1-a.us-east-1.cachier.internal",
        ),
        (
            "Cache flushed on proxy proxy-3.use1-a.us-east-1.cachier.internal "
            "(origin: admin operation)",
            "admin operation",
            "proxy-3.use1-a.us-east-1.cachier.internal",
        ),
    ]
    for i, (message, origin, proxy) in enumerate(messages, start=1):
        lines.append(
            LogLineOut(
                id=i,
                t=f"2026-11-18T07:{10 + i:02d}:00.000Z",
                source="cachier",
                message=message,
                origin=origin,
                proxy=proxy,
            )
        )
    return LogsOut(lines=lines, next_after=len(lines))


def audit_out() -> AuditOut:
    """The shop's trail mid-rotation, newest first: who did what, never a secret."""
    rows = [
        ("07:52:10", "cache owner (dashboard)", "credential deleted", "USER000005"),
        (
            "07:41:37",
            "credential USER000001 (API)",
            "primary promoted",
            "USER000001 (was USER000005)",
        ),
        (
            "07:41:02",
            "credential USER000005 (API)",
            "credential added",
            "USER000001 (secondary; write on, flush on, api off)",
        ),
        (
            "07:30:44",
            "memcache client",
            "cache flushed",
            "origin memcache client, on proxy-2.use1-a.us-east-1.cachier.internal",
        ),
        (
            "07:22:15",
            "cache owner (dashboard)",
            "alerts changed",
            "hit rate < 80% over 5 min, memory > 90% of the plan; fire after 3, resolve after "
            "5 samples; webhook to hooks.example.com",
        ),
        (
            "07:18:09",
            "cache owner (dashboard)",
            "capabilities changed",
            "USER000002: write off, flush on, api off",
        ),
        (
            "07:16:30",
            "cache owner (dashboard)",
            "SSO rotated",
            "the previous dashboard URL is void",
        ),
        ("07:14:51", "operator (admin token)", "cache moved", "use1-b → use1-a"),
        (
            "07:12:00",
            "cache owner (dashboard)",
            "log drain changed",
            "shop-app: to logs.example.com",
        ),
        (
            "07:11:00",
            "operator (admin token)",
            "cache created",
            "shop: plan 1gb, us-east-1 / use1-b",
        ),
    ]
    entries = [
        AuditEntryOut(
            id=len(rows) - i,
            t=f"2026-11-18T{clock}.000Z",
            cache_id="c1a2b3c4d5e",
            cache_name="shop",
            actor=actor,
            action=action,
            detail=detail,
        )
        for i, (clock, actor, action, detail) in enumerate(rows)
    ]
    return AuditOut(entries=entries, next_before=None)


def _keys(key: str, gets: int, hits: int, sets: int, deletes: int, written: int) -> KeyCountOut:
    return KeyCountOut(
        key=key, gets=gets, hits=hits, sets=sets, deletes=deletes, bytes=written, error=8
    )


def keys_out() -> KeysOut:
    """A minute of a web shop's traffic, sampled: sessions and the product catalogue."""
    return KeysOut(
        tracking=True,
        tracking_for_s=95.0,
        window_s=95.0,
        sample_every=8,
        keys=[
            _keys("session:8f2c41", 18_400, 18_310, 96, 0, 96 * 1_200),
            _keys("catalog:home", 9_920, 9_920, 8, 0, 8 * 48_000),
            _keys("cart:user:104233", 4_310, 4_100, 420, 16, 420 * 2_300),
            _keys("product:sku-000417:price", 3_880, 3_600, 40, 40, 40 * 12),
            _keys("rate-limit:api:10.0.4.17", 1_210, 1_206, 1_210, 0, 1_210 * 4),
            _keys("product:sku-000981:stock-by-warehouse", 960, 210, 750, 0, 750 * 240),
        ],
        prefixes=[
            _keys("session", 61_200, 60_420, 2_010, 330, 2_010 * 1_150),
            _keys("product", 22_800, 19_950, 3_100, 410, 3_100 * 820),
            _keys("catalog", 10_050, 10_050, 12, 0, 12 * 47_000),
            _keys("cart", 8_700, 8_020, 880, 120, 880 * 2_250),
            _keys("", 410, 120, 300, 0, 300 * 64),
        ],
        largest=[
            LargestOut(key="catalog:home", size=48_210),
            LargestOut(key="catalog:category:shoes", size=31_870),
            LargestOut(key="report:daily:2026-11-17", size=22_400),
        ],
        commands=[
            CommandCountOut(command="get", hits=1_284_330, misses=97_210),
            CommandCountOut(command="delete", hits=4_120, misses=860),
            CommandCountOut(command="incr", hits=96_880, misses=310),
            CommandCountOut(command="decr", hits=0, misses=0),
            CommandCountOut(command="cas", hits=2_010, misses=44),
            CommandCountOut(command="touch", hits=15_300, misses=1_220),
        ],
    )
