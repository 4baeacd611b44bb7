"""What the container filesystem verbs (cp, export, diff, commit) share: the services
they stand on, the checks dockerd makes before them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ...errors import Conflict, InvalidParameter
from ..images.contract import Images
from ..runtime.contract import Supervisor
from ..snapshots.contract import Snapshotter
from ..volumes.contract import VolumeMounter
from .records import Container
from .store import ContainerStore


class Pausing(Protocol):
    """The lifecycle's pause and unpause (commit pauses the container it reads)."""

    async def pause(self, ref: str) -> None: ...

    async def unpause(self, ref: str) -> None: ...


@dataclass(frozen=True)
class FileAccess:
    store: ContainerStore
    snapshots: Snapshotter
    monitor: Supervisor
    volumes: VolumeMounter
    images: Images
    lifecycle: Pausing
    rootfs_users: dict[str, int] = field(default_factory=dict)  # cid -> holders of its rootfs


def check_ref(ref: str) -> None:
    if not ref:
        raise InvalidParameter('invalid name or ID supplied: ""')


def check_exportable(c: Container, verb: str) -> None:
    if c.state.status == "dead":
        raise Conflict(f"You cannot {verb} container {c.id} which is Dead")
    if c.state.status == "removing":
        raise Conflict(f"You cannot {verb} container {c.id} which is being removed")
