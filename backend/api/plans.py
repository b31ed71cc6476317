"""The plans a cache can be created on: public, like a price list.

Served so that clients (the dashboard's create-cache dialog) ask the backend instead of
importing or copying the control plane's table, which may then change in one place.
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.schemas import PlanOut
from backend.control.models import PLANS

router = APIRouter(prefix="/api/v1", tags=["public"])


@router.get("/plans", response_model=list[PlanOut])
async def list_plans() -> list[PlanOut]:
    """Every plan, smallest first (the order a person chooses from)."""
    return [PlanOut(name=name, memory_limit=limit) for name, limit in PLANS.items()]
