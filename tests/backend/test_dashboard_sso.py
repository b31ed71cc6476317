"""Dashboard secrets, found by their hash: each secret finds its cache, and a secret that
was rotated away or whose cache was deleted stops working at once (also after a restart).

In process on a real SQLite control plane (``ControlPlane.cache_by_sso`` is what the
gate and the dashboard routes ask), then once through the running service's HTTP API.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from backend.control.database import open_repository, parse_database_url
from backend.control.errors import NotFound
from backend.control.plane import ControlPlane
from backend.control.secrets import Secrets
from backend.dataplane import DataPlane
from backend.events import EventBus
from backend.throttle import AuthThrottle
from backend.topology import default_topology
from tests.conftest import CacheHandle, RunningService


def control_plane(data_dir: Path) -> ControlPlane:
    topology = default_topology()
    bus = EventBus()
    dataplane = DataPlane(topology, AuthThrottle())
    dataplane.subscribe(bus)
    repository = open_repository(parse_database_url(""), data_dir)
    control = ControlPlane(repository, Secrets.load_or_create(data_dir), topology, bus, dataplane)
    control.endpoints = {r.name: "127.0.0.1:11211" for r in topology.regions}
    return control


def secret_of(control: ControlPlane, cache_id: str) -> str:
    return control.dashboard_url(control.get_cache(cache_id)).rsplit("/", 1)[1]


def test_each_secret_finds_its_own_cache(tmp_path: Path) -> None:
    control = control_plane(tmp_path)
    caches = [control.create_cache(f"c{i}", "free") for i in range(50)]
    for cache in caches:
        assert control.cache_by_sso(secret_of(control, cache.id)) is cache
    for wrong in ("", "x", secret_of(control, caches[0].id)[:-1], "0" * 64):
        with pytest.raises(NotFound):
            control.cache_by_sso(wrong)


def test_rotation_and_deletion_void_a_secret_at_once_and_after_a_restart(tmp_path: Path) -> None:
    control = control_plane(tmp_path)
    kept, rotated, deleted = (control.create_cache(n, "free") for n in ("kept", "rot", "del"))
    old = secret_of(control, rotated.id)
    control.rotate_sso(rotated)
    new = secret_of(control, rotated.id)
    with pytest.raises(NotFound):
        control.cache_by_sso(old)
    assert control.cache_by_sso(new) is rotated
    again = control.rotate_sso(rotated).rsplit("/", 1)[1]
    with pytest.raises(NotFound):
        control.cache_by_sso(new)
    assert control.cache_by_sso(again) is rotated

    doomed = secret_of(control, deleted.id)
    control.delete_cache(deleted)
    with pytest.raises(NotFound):
        control.cache_by_sso(doomed)

    restarted = control_plane(tmp_path)
    restarted.load()
    assert restarted.cache_by_sso(secret_of(control, kept.id)).id == kept.id
    assert restarted.cache_by_sso(again).id == rotated.id
    for void in (old, new, doomed):
        with pytest.raises(NotFound):
            restarted.cache_by_sso(void)


def test_a_deleted_cache_s_dashboard_is_gone_at_once(service: RunningService) -> None:
    cache = CacheHandle(service.create_cache("sso-doomed"))
    assert httpx.get(cache.dashboard_api + "/cache").status_code == 200
    with service.admin() as admin:
        assert admin.delete(f"/api/v1/admin/caches/{cache.info['id']}").status_code == 204
    assert httpx.get(cache.dashboard_api + "/cache").status_code == 404
