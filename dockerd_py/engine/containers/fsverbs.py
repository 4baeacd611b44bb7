"""What the container filesystem verbs (cp, export, diff, commit) share: the checks
dockerd makes before them, and the event each sends."""

from __future__ import annotations

from typing import Any

from ...errors import Conflict, InvalidParameter
from .records import Container


def check_ref(ref: str) -> None:
    if not ref:
        raise InvalidParameter('invalid name or ID supplied: ""')


def check_exportable(c: Container, verb: str) -> None:
    if c.state.status == "dead":
        raise Conflict(f"You cannot {verb} container {c.id} which is Dead")
    if c.state.status == "removing":
        raise Conflict(f"You cannot {verb} container {c.id} which is being removed")


def send_event(service: Any, c: Container, action: str, **extra: str) -> None:
    attrs = dict(c.config.get("Labels") or {})
    attrs.update({"image": c.image, "name": c.name}, **extra)
    service.events.publish("container", action, c.id, attrs)
