"""Pydantic models of the HTTP API: the contract shared with the TUI and scripts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorOut(BaseModel):
    error: str = Field(description="What went wrong, readable by a person")


class CacheCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63, examples=["shop-sessions"])
    plan: str = Field(examples=["100mb"], description="free, 100mb, 250mb, 500mb, 1gb, 2.5gb, 5gb")
    region: str | None = Field(default=None, description="defaults to the first region")


class CredentialOut(BaseModel):
    username: str
    password: str
    primary: bool
    write: bool
    flush: bool


class CapabilitiesPatch(BaseModel):
    """Fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid")

    write: bool | None = None
    flush: bool | None = None


class CacheOut(BaseModel):
    id: str
    name: str
    plan: str
    memory_limit: int = Field(description="the plan's memory limit in bytes")
    region: str
    cluster: str
    servers: str = Field(description="host:port of the region endpoint; stable across moves")
    tls_servers: str | None = Field(description="host:port of the endpoint's TLS listener")
    dashboard_url: str
    created_at: str
    credentials: list[CredentialOut]


class FlushOut(BaseModel):
    cache_id: str
    proxy: str
    origin: str


class HealthOut(BaseModel):
    status: str
