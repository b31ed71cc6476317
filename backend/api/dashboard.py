"""Cache-owner routes, reached through the cache's secret dashboard URL."""

from __future__ import annotations

from fastapi import APIRouter, status

from backend.api.deps import Control, SsoCache
from backend.api.schemas import CapabilitiesPatch, CredentialOut, ErrorOut
from backend.control.models import Credential

router = APIRouter(
    prefix="/dashboard/{sso}/api",
    tags=["dashboard"],
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


def credential_out(credential: Credential) -> CredentialOut:
    return CredentialOut(username=credential.username, password=credential.password.decode(),
                         primary=credential.primary, write=credential.write,
                         flush=credential.flush)  # fmt: skip


@router.get("/credentials", response_model=list[CredentialOut])
async def list_credentials(cache: SsoCache) -> list[CredentialOut]:
    return [credential_out(c) for c in cache.credentials]


@router.post("/credentials", response_model=CredentialOut, status_code=status.HTTP_201_CREATED)
async def add_credential(cache: SsoCache, control: Control) -> CredentialOut:
    return credential_out(control.add_credential(cache))


@router.patch("/credentials/{username}", response_model=CredentialOut)
async def set_capabilities(username: str, body: CapabilitiesPatch, cache: SsoCache,
                           control: Control) -> CredentialOut:  # fmt: skip
    return credential_out(control.set_capabilities(cache, username, body.write, body.flush))
