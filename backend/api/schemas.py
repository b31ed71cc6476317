"""Pydantic models of the HTTP API: the contract shared with the TUI and scripts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from backend.control.alert_rules import (
    MAX_RATE,
    MAX_SAMPLES,
    MAX_WINDOW_MIN,
    MIN_WINDOW_MIN,
    AlertKind,
)
from backend.control.models import CACHE_NAME_PATTERN, DRAIN_URL_PATTERN, PlanName
from backend.lights import FaultMode, Light, ProxyState


def _integral_float(value: Any) -> Any:
    """JSON has one number type: ``26.0`` is the integer 26 (JSON Schema counts it as an
    "integer"), so strict mode, which refuses floats for ints, would refuse a valid body."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral_float)]


class Schema(BaseModel):
    """Answers build their validator on first use, not at import: the dashboard needs two
    of them for its first frame, and building all of them cost it ~70 ms. Request bodies
    build at once: FastAPI builds their OpenAPI schema outside its warning filter when they
    are deferred, and the dashboard never validates them."""

    model_config = ConfigDict(defer_build=True)


class RequestBody(Schema):
    """A request body: refused (422) unless it is exactly what the route documents.

    Unknown fields are refused rather than ignored, so a misspelt ``wirte`` cannot
    silently do nothing; ``strict`` refuses ``"yes"`` or ``1`` where a boolean is expected
    and ``"5"`` where a number is, instead of guessing what the client meant.
    """

    model_config = ConfigDict(extra="forbid", strict=True, defer_build=False)  # see Schema


class NoBody(RequestBody):
    """The body of an action that takes no parameters: send none (or ``{}``).

    Declared rather than left out, so a body that is sent is still parsed and checked:
    an undeclared body was never read, and ``{nope`` went through as if it were empty.
    """


class ErrorOut(Schema):
    error: str = Field(description="What went wrong, readable by a person")


class CacheCreate(RequestBody):
    # The pattern is documented, and checked by the control plane, whose message says the
    # rule in words rather than as a regular expression.
    name: str = Field(
        min_length=1,
        max_length=63,
        examples=["shop-sessions"],
        json_schema_extra={"pattern": CACHE_NAME_PATTERN},
    )
    plan: PlanName = Field(examples=["100mb"])
    region: str | None = Field(
        default=None,
        description="one of the service's regions (the enum); defaults to the first region",
    )


class LastAuthOut(Schema):
    at: float = Field(description="unix time of the credential's last successful authentication")
    protocol: Literal["ascii", "binary", "meta"] = Field(
        description="how that connection spoke: ASCII, binary, or ASCII that sent meta commands"
    )
    proxy: str = Field(description="hostname of the proxy that served it")
    peer: str = Field(description="the client's address")


class CredentialActivityOut(Schema):
    """Whether a credential is still in use: what tells an owner a rotation is finished.
    Counted by this backend process since it started (``last_auth`` excepted)."""

    last_auth: LastAuthOut | None = Field(
        default=None, description="the last successful authentication; null: never used"
    )
    connections: int = Field(default=0, description="live connections authenticated with it")
    peers: list[str] = Field(
        default_factory=list,
        description="the client address of each live connection, sorted (the first 100)",
    )
    commands_last_minute: int = 0
    commands_last_hour: int = 0
    refused_write: int = Field(
        default=0, description="commands refused for lacking the write capability"
    )
    refused_flush: int = Field(default=0, description="flush_all refused for lacking flush")


class CredentialOut(Schema):
    username: str
    password: str
    primary: bool
    write: bool
    flush: bool
    api: bool = Field(
        description="may call /api/v2 with HTTP Basic auth (username:password); "
        "the primary always may"
    )
    activity: CredentialActivityOut | None = Field(
        default=None,
        description="its usage (the cache dashboard's answers); null in the operator's listing",
    )


class CapabilitiesPatch(RequestBody):
    """Fields left out keep their current value. ``api`` cannot be switched off on the
    primary credential (409)."""

    write: bool | None = None
    flush: bool | None = None
    api: bool | None = None


class CacheUsage(Schema):
    """Live figures of a cache, as its cluster's store has them now."""

    memory_used: int
    items: int
    connections: int
    get_hits: int
    get_misses: int


class CacheOut(Schema):
    id: str
    name: str
    plan: PlanName
    memory_limit: int = Field(description="the plan's memory limit in bytes")
    region: str
    cluster: str
    servers: str = Field(description="host:port of the region endpoint; stable across moves")
    tls_servers: str | None = Field(description="host:port of the endpoint's TLS listener")
    dashboard_url: str
    created_at: str
    credentials: list[CredentialOut]
    usage: CacheUsage
    alerts_firing: int = Field(default=0, description="how many of the cache's alerts fire now")


class CachePageOut(Schema):
    """One page of the admin list, in order of name."""

    items: list[CacheOut]
    next_cursor: str | None = Field(
        description="pass as ?cursor= (with the same q) for the next page; null on the last"
    )
    total: int = Field(description="caches matching q now, on all pages")
    alerts_firing: int = Field(
        default=0,
        description="alerts firing now over every cache of the service, whatever q (the "
        "operator's title badge: one small request, not a walk through every page)",
    )


class FlushOut(Schema):
    cache_id: str
    proxy: str
    origin: str


class HealthOut(Schema):
    status: str


class CacheInfo(Schema):
    """What a cache's owner sees on the dashboard."""

    id: str
    name: str
    plan: PlanName
    memory_limit: int
    region: str
    cluster: str
    servers: str
    tls_servers: str | None
    dashboard_url: str
    app: str = Field(description="the provider app the cache belongs to")
    can_migrate: bool
    migrate_refusal: str | None = Field(description="why the cache cannot move now, if so")
    alerts_firing: int = Field(default=0, description="how many of the cache's alerts fire now")


class LogLineOut(Schema):
    id: int
    t: str = Field(description="RFC 3339 timestamp")
    source: str
    message: str
    origin: str | None = Field(
        description="for flush lines: memcache client, web interface, admin operation"
    )  # noqa: E501
    proxy: str | None = Field(description="for flush lines: the proxy hostname that ran it")


class LogsOut(Schema):
    lines: list[LogLineOut]
    next_after: int = Field(description="pass as ?after= to get the lines that follow")


class AuditEntryOut(Schema):
    id: int
    t: str = Field(description="RFC 3339 timestamp")
    cache_id: str | None = Field(description="null for a change of the whole service")
    cache_name: str | None
    actor: str = Field(
        description="operator (admin token), cache owner (dashboard), memcache client, system"
    )
    action: str = Field(examples=["capabilities changed"])
    detail: str = Field(examples=["cachier_u2: write off, flush on, api off"])


class AuditOut(Schema):
    entries: list[AuditEntryOut] = Field(description="newest first")
    next_before: int | None = Field(
        description="pass as ?before= for the older entries; null when there are none"
    )


class KeyCountOut(Schema):
    key: str = Field(description="the key (or prefix); bytes that are not UTF-8 as \\xNN")
    gets: int
    hits: int
    sets: int
    deletes: int
    bytes: int = Field(description="value bytes written by its sets")
    error: int = Field(description="the counts may be over by at most this much")


class LargestOut(Schema):
    key: str
    size: int = Field(description="value bytes")


CommandName = Literal["get", "delete", "incr", "decr", "cas", "touch"]


class CommandCountOut(Schema):
    command: CommandName
    hits: int
    misses: int = Field(description="for cas: not found or a changed CAS")


class KeysOut(Schema):
    tracking: bool = Field(
        description="false until sampling has started (the first ask starts it; it stops "
        "5 minutes after the last)"
    )
    tracking_for_s: float
    window_s: float = Field(description="the span the key counts cover (one to two minutes)")
    sample_every: int = Field(description="one command in this many is counted; scaled up")
    keys: list[KeyCountOut] = Field(description="most active first (gets + sets + deletes)")
    prefixes: list[KeyCountOut] = Field(description="the part before the first separator")
    largest: list[LargestOut] = Field(description="largest values written while tracked")
    commands: list[CommandCountOut] = Field(description="since the cache started, as stats")


class ReleaseOut(Schema):
    number: int
    description: str
    t: str


class AppOut(Schema):
    name: str
    config_vars: dict[str, str]
    release: int
    log_drain: str | None
    releases: list[ReleaseOut] = Field(description="newest first")


class LogDrainIn(RequestBody):
    # Documented here, checked (with a message in words) by the route before anything
    # resolves the host: backend.control.apps.check_drain_url.
    url: Annotated[str, Field(json_schema_extra={"pattern": DRAIN_URL_PATTERN})] | None = Field(
        description="http(s) URL receiving RFC 5424 frames, or null to remove"
    )


Percent = Annotated[float, Field(ge=0, le=100)]
Rate = Annotated[float, Field(ge=0, le=MAX_RATE)]
# Constraints inside the validator's Annotated: outside it, the document showed them as
# unknown "ge"/"le" keywords instead of "minimum"/"maximum".
Count = Annotated[Annotated[int, Field(ge=0, le=int(MAX_RATE))], BeforeValidator(_integral_float)]


class AlertSettingsBase(Schema):
    """A cache's thresholds: null turns one off. ``PUT`` replaces them all (a field left
    out is off, or its default)."""

    hit_rate_below: Percent | None = Field(
        default=None, description="fire when the hit rate (%) over the window is below this"
    )
    hit_rate_window_min: Annotated[float, Field(ge=MIN_WINDOW_MIN, le=MAX_WINDOW_MIN)] = Field(
        default=5.0, description="the hit rate's window, in minutes"
    )
    memory_above: Percent | None = Field(
        default=None, description="fire when memory used is above this % of the plan's limit"
    )
    evictions_above: Rate | None = Field(default=None, description="evictions per second")
    connections_above: Count | None = Field(default=None, description="open connections")
    refused_above: Rate | None = Field(
        default=None, description="commands refused for a missing capability, per minute"
    )
    fire_after: JsonInt = Field(
        default=3,
        ge=1,
        le=MAX_SAMPLES,
        description="samples in a row the condition must hold before the alert fires",
    )
    resolve_after: JsonInt = Field(
        default=5,
        ge=1,
        le=MAX_SAMPLES,
        description="samples in a row the condition must be clear before it resolves",
    )
    webhook_url: Annotated[str, Field(json_schema_extra={"pattern": DRAIN_URL_PATTERN})] | None = (
        Field(default=None, description="http(s) URL that firing and resolved alerts are POSTed to")
    )


class AlertsIn(AlertSettingsBase, RequestBody):
    model_config = RequestBody.model_config  # strict, unknown fields refused


class AlertOut(Schema):
    alert: AlertKind
    firing: bool
    threshold: float
    value: float | None = Field(description="the latest value evaluated; null if none yet")
    since: str | None = Field(description="RFC 3339 time of its last change, if any")


class AlertsOut(Schema):
    settings: AlertSettingsBase
    alerts: list[AlertOut] = Field(description="one per threshold set")
    firing: int = Field(description="how many alerts fire now")
    interval_s: float = Field(description="one sample every this many seconds")


class RotateOut(Schema):
    dashboard_url: str


class MigrateOut(Schema):
    cluster: str
    previous_cluster: str
    servers: str


class DeleteOut(Schema):
    username: str
    closed_connections: int


class Sample(Schema):
    """One analytics point: counters cumulative (as memcached's stats), gauges as sampled."""

    t: float = Field(description="unix time of the sample (bucket start for rolled-up points)")
    memory_used: int
    memory_limit: int
    items: int
    get_hits: int
    get_misses: int
    hit_rate: float | None = Field(description="hits / gets since the previous point")
    cmd_get: int
    cmd_set: int
    cmd_delete: int
    cmd_flush: int
    evictions: int
    curr_connections: int
    bytes_read: int
    bytes_written: int
    latency_p50_us: int | None = Field(
        default=None,
        description="median command latency over this point's span, µs: from the proxy's "
        "read of a command to its write of the reply (a pipelined batch counts once); "
        "null when no read was answered. Latencies are kept to within 5.1 % (the nearest "
        "of 24 levels a decade; 1 µs under 20 µs)",
    )
    latency_p99_us: int | None = Field(default=None, description="99th percentile, µs")
    latency_max_us: int | None = Field(default=None, description="the longest, µs")


class StatsOut(Schema):
    interval_s: float = Field(description="the resolution of these samples")
    samples: list[Sample] = Field(description="oldest first")


class FaultIn(RequestBody):
    mode: FaultMode
    delay_ms: JsonInt = Field(
        default=0, ge=0, le=60_000, description="for slow: added to each reply"
    )


class ProxyStatus(Schema):
    hostname: str
    address: str
    state: ProxyState
    latency_ms: float | None = Field(description="latest probe round trip; null if it failed")
    baseline_ms: float | None = Field(description="the proxy's usual latency (median)")
    fault: FaultMode
    delay_ms: int


class ClusterStatusOut(Schema):
    name: str
    light: Light
    label: str = Field(description="UP, SLOW, DOWN or RESOLVED")
    since: str = Field(description="RFC 3339 time of the last change of light")
    proxies: list[ProxyStatus]
    rss_url: str = Field(description="the RSS feed of this cluster's changes only")


class RegionStatus(Schema):
    name: str
    clusters: list[ClusterStatusOut]


class IncidentOut(Schema):
    id: int
    cluster: str
    light: str
    previous: str
    started_at: str
    ended_at: str | None
    cause: str
    proxies: list[str]


class StatusOut(Schema):
    regions: list[RegionStatus]
    incidents: list[IncidentOut] = Field(description="changes of light, newest first")
    rss_url: str = Field(description="RSS feed of every cluster (?cluster= or ?region= for one)")
    json_feed_url: str = Field(description="the same feed as a JSON Feed 1.1")


class PlanOut(Schema):
    name: str = Field(examples=["100mb"], description="what POST /api/v1/admin/caches takes")
    memory_limit: int = Field(description="the plan's memory limit in bytes")
