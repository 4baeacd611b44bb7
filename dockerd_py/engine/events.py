"""Events: publish/subscribe with a bounded replay buffer (`docker events`).

Subscribers get a bounded queue; one that falls that far behind is dropped
(its stream ends) rather than slowing down the daemon, as dockerd does.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .filters import Filters

EVENT_FILTERS = ("type", "event", "container", "image", "label", "network", "volume", "daemon",
                 "scope", "plugin", "node", "service", "secret", "config")

_REPLAY = 1024
_QUEUE = 4096


@dataclass(frozen=True)
class Event:
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    scope: str = "local"
    time_nano: int = field(default_factory=time.time_ns)

    def to_json(self, api_version: tuple[int, int] = (1, 50)) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if api_version < (1, 52):  # legacy fields, dropped in 1.52
            if self.type in ("container", "image"):
                out["status"] = self.action
                out["id"] = self.actor_id
            if self.type == "container" and "image" in self.attributes:
                out["from"] = self.attributes["image"]
        out.update({
            "Type": self.type,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": dict(self.attributes)},
            "scope": self.scope,
            "time": self.time_nano // 1_000_000_000,
            "timeNano": self.time_nano,
        })
        return out


def _strip_tag(ref: str) -> str:
    name, _, tag = ref.rpartition(":")
    return name if name and "/" not in tag else ref


def matches(f: Filters, ev: Event) -> bool:
    attrs = ev.attributes
    if not f.exact_match("type", ev.type):
        return False
    if f.contains("event") and not (ev.action in f.get("event")
                                    or ev.action.split(":", 1)[0] in f.get("event")):
        return False
    if f.contains("scope") and ev.scope not in f.get("scope"):
        return False
    if not f.match_labels(attrs):
        return False
    for key in ("container", "network", "volume", "plugin", "daemon"):
        if f.contains(key):
            if ev.type != key:
                return False
            if not (ev.actor_id in f.get(key) or attrs.get("name") in f.get(key)
                    or any(ev.actor_id.startswith(v) for v in f.get(key) if len(v) >= 12)):
                return False
    if f.contains("image"):
        wanted = f.get("image")
        candidates = {ev.actor_id, attrs.get("image", ""), attrs.get("name", "")}
        candidates |= {_strip_tag(c) for c in candidates if c}
        if not (candidates & wanted):
            return False
    return True


class EventBus:
    def __init__(self) -> None:
        self._past: collections.deque[Event] = collections.deque(maxlen=_REPLAY)
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    def publish(self, type: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> Event:
        ev = Event(type, action, actor_id, dict(attributes or {}))
        self._past.append(ev)
        for q in list(self._subscribers):
            try:
                q.put_nowait(ev)
            except asyncio.QueueFull:
                self._subscribers.discard(q)
                q.get_nowait()
                q.put_nowait(None)  # tells the reader it was dropped
        return ev

    def since(self, since_ns: int | None, until_ns: int | None) -> list[Event]:
        return [e for e in self._past
                if (since_ns is None or e.time_nano >= since_ns)
                and (until_ns is None or e.time_nano <= until_ns)]

    def listeners(self) -> int:
        """How many streams are subscribed (`docker info` NEventsListener)."""
        return len(self._subscribers)

    def subscribe(self) -> asyncio.Queue[Event | None]:
        q: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(q)

    def close(self) -> None:
        for q in list(self._subscribers):
            try:
                q.put_nowait(None)
            except asyncio.QueueFull:
                pass
        self._subscribers.clear()
