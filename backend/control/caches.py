"""Kept so ``from backend.control.caches import ControlPlane`` still works: the control
plane lives in ``backend.control.plane``."""

from backend.control.plane import LOG_SOURCE, MAX_LOG_PAGE, NAME_PATTERN, ControlPlane

__all__ = ["LOG_SOURCE", "MAX_LOG_PAGE", "NAME_PATTERN", "ControlPlane"]
