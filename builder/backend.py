"""What a build stands on: the engine's services, the same ones `docker run` uses,
and a way to pull the images a Dockerfile names."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dockerd_py.engine.content.contract import Store
from dockerd_py.engine.images.buildcache import BuildCacheRecords
from dockerd_py.engine.images.contract import Images
from dockerd_py.engine.leases import LeaseManager
from dockerd_py.engine.networks.contract import StepNetworks
from dockerd_py.engine.runtime.contract import RuntimeRegistry
from dockerd_py.engine.snapshots.contract import Snapshotter
from dockerd_py.engine.types import ImageRecord


class Puller(Protocol):
    """Pulls an image from its registry (the distribution service)."""

    async def pull(self, ref: str, *, auth: dict[str, Any] | None = None,
                   platform: str | None = None,
                   progress: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                   credentials: dict[str, dict[str, Any]] | None = None,
                   all_tags: bool = False) -> ImageRecord: ...


@dataclass(frozen=True)
class Backend:
    images: Images
    snapshots: Snapshotter
    content: Store
    leases: LeaseManager
    networks: StepNetworks
    runtimes: RuntimeRegistry
    cache: BuildCacheRecords
    puller: Puller
