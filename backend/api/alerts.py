"""The owner's alert thresholds and the alerts' state over HTTP (``backend.alerts``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fastapi import APIRouter

from backend.api.deps import AlertsDep, Control, Egress, SsoCache
from backend.api.errors import BODY_ERRORS, errors
from backend.api.schemas import AlertOut, AlertSettingsBase, AlertsIn, AlertsOut
from backend.control.alert_rules import AlertSettings
from backend.control.errors import Invalid
from backend.control.models import Cache
from backend.control.plane import ControlPlane, check_webhook_url
from backend.egress import EgressRefused

if TYPE_CHECKING:
    from backend.alerts import Alerts

router = APIRouter(
    prefix="/dashboard/{sso_secret}/api", tags=["dashboard"], responses=errors(404, 422)
)


def _time(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alerts_out(control: ControlPlane, alerts: Alerts, cache: Cache) -> AlertsOut:
    settings = control.alerts_of(cache)
    states = alerts.states(cache.id)
    return AlertsOut(
        settings=AlertSettingsBase(
            hit_rate_below=settings.hit_rate_below,
            hit_rate_window_min=settings.hit_rate_window_min,
            memory_above=settings.memory_above,
            evictions_above=settings.evictions_above,
            connections_above=settings.connections_above,
            refused_above=settings.refused_above,
            fire_after=settings.fire_after,
            resolve_after=settings.resolve_after,
            webhook_url=settings.webhook_url,
        ),
        alerts=[
            AlertOut(
                alert=s.kind,
                firing=s.firing,
                threshold=s.threshold,
                value=None if s.value is None else round(s.value, 4),
                since=_time(s.since),
            )
            for s in states
        ],
        firing=sum(s.firing for s in states),
        interval_s=alerts.interval_s,
    )


@router.get("/alerts", response_model=AlertsOut)
async def get_alerts(cache: SsoCache, control: Control, alerts: AlertsDep) -> AlertsOut:
    """The thresholds, the webhook and every alert's state (firing or not, latest value)."""
    return alerts_out(control, alerts, cache)


@router.put("/alerts", response_model=AlertsOut, responses=errors(*BODY_ERRORS))
async def put_alerts(
    body: AlertsIn, cache: SsoCache, control: Control, alerts: AlertsDep, egress: Egress
) -> AlertsOut:
    """Replace the thresholds and the webhook (fields left out are off or default). Alerts
    are evaluated from the next sample; one whose threshold is removed resolves."""
    settings = AlertSettings(**body.model_dump())
    settings.check()
    if settings.webhook_url is not None:  # before anything is stored: a clear error
        check_webhook_url(settings.webhook_url)
        try:
            await egress.vet_url(settings.webhook_url)
        except (EgressRefused, ValueError) as exc:
            raise Invalid(f"this webhook cannot be used: {exc}") from None
    control.set_alerts(cache, settings)
    alerts.settings_changed(cache.id)
    return alerts_out(control, alerts, cache)
