"""The volume service contract: named directories that outlive containers.

A volume is a directory the daemon owns (dockerd's `local` driver): its data lives
in ``<data-root>/volumes/<name>/_data`` and is bound into containers at their mount
points. A volume created with device options (``-o type=tmpfs -o device=tmpfs``,
nfs, cifs, a block device) has that device mounted on its data directory while a
container uses it.

Lifecycle:
  * ``create(name, driver, driver_opts, labels)`` records a volume and makes its
    directory. Without a name it gets a random 64-hex one and the label
    ``com.docker.volume.anonymous`` (the label prune keys on). A name that exists
    already returns that volume as it is: options and labels are not compared (as
    dockerd). Names and options are checked as the local driver does
    (InvalidParameter); a driver other than ``local`` is NotFound.
  * ``get``, ``list(filters)`` and ``disk_usage()`` read. list's filters are
    ``name``, ``driver``, ``label`` and ``dangling`` (used by no container). disk
    usage covers local volumes without driver options: (volume, bytes, users).
  * A container *uses* a volume from its create on, when one of its mount points
    names it (its own, or one `--volumes-from` copied); ``VolumeUsers`` (the container
    store) says which containers those are. A point may mount only a ``Subpath`` of
    its volume: ``safepath.py`` finds it without leaving the volume.
    ``remove(name)`` refuses a volume in use (Conflict, even when forced: ``force``
    only makes a missing volume no error); ``prune`` removes unused local volumes
    without driver options, anonymous ones only unless the ``all`` filter is true.

As the container service uses it (``ContainerVolumes``):
  * at create, ``attach_point(container_id, point)`` finds or creates the volume a
    mount point names (an anonymous one for a point without a name) and records it
    in the point (Name, Source, Driver); ``discard_created(names)`` removes the
    anonymous volumes of a create that failed, best effort.
  * at start, ``populate(name, image_dir, subpath)`` copies the image's directory at
    the mount point into the volume (or the sub-path the point mounts, when it exists)
    if that is empty, then ``before_start``
    mounts every volume of the container: ``mount(name, container_id)`` mounts a
    device for its first holder and returns the host path to bind. Holders are
    counted by container id; a ``mount`` event is published for each.
  * at exit, ``unmount(name, container_id)`` drops the holder, unmounting the device
    after the last one (an ``unmount`` event each time).
  * at removal (the container's record already gone), ``detach_container`` releases
    whatever it still holds and, for ``rm -v``, removes its anonymous volumes unless
    another container uses them.

After a daemon restart, the holders of device mounts are the containers that kept
running; the service asks ``VolumeUsers`` for them once, before its first mount,
unmount, populate or volume removal. The container records must therefore be loaded
before any of those (the daemon loads them first when it restores its containers).
Devices still mounted are found in the mount table when the service starts.

Creating, removing and mounting one volume are serialised; different volumes are not.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..filters import Filters
from .records import ANONYMOUS_LABEL, DEFAULT_DRIVER, Volume

__all__ = ["ANONYMOUS_LABEL", "DEFAULT_DRIVER", "ContainerVolumes", "MountingContainer",
           "Volume", "VolumeAdmin", "VolumeLookup", "VolumeMounter", "VolumeUsers", "Volumes"]


class VolumeUsers(Protocol):
    """Who uses volumes: the containers whose mount points name them."""

    def volume_users(self, *, running_only: bool) -> dict[str, builtins.list[str]]:
        """Volume name -> IDs of the containers with a mount point of type "volume" that
        names it, oldest container first; running_only: running, paused or restarting."""


class MountingContainer(Protocol):
    """What the service reads of a container: its id and its mount points (Docker's
    MountPoint shape; those of Type "volume" name a volume)."""

    @property
    def id(self) -> str: ...

    @property
    def mounts(self) -> Sequence[Mapping[str, Any]]: ...


class VolumeLookup(Protocol):
    async def get(self, name: str) -> Volume:
        """The volume of that name (NotFound: "get NAME: no such volume")."""


class VolumeAdmin(VolumeLookup, Protocol):
    """The verbs of `docker volume` and `docker system df`."""

    async def create(self, name: str | None = None, driver: str | None = DEFAULT_DRIVER,
                     driver_opts: Mapping[str, str] | None = None,
                     labels: Mapping[str, str] | None = None, *,
                     anonymous: bool = False) -> Volume:
        """Create a volume, or return the existing one of that name."""

    async def list(self, filters: Filters | None = None
                   ) -> tuple[builtins.list[Volume], builtins.list[str]]:
        """Volumes matching the filters, by name, and warnings."""

    async def remove(self, name: str, force: bool = False) -> None: ...

    async def prune(self, filters: Filters | None = None, *,
                    all_volumes: bool = False) -> dict[str, Any]:
        """{"VolumesDeleted": names, "SpaceReclaimed": bytes}; all_volumes: API < 1.42."""

    async def disk_usage(self) -> builtins.list[tuple[Volume, int, int]]:
        """(volume, size in bytes or -1, number of containers using it)."""


class VolumeMounter(VolumeLookup, Protocol):
    """Holding a volume's data where a container (or a view of its files) can see it."""

    async def mount(self, name: str, container_id: str, *, destination: str = "",
                    rw: bool = True, propagation: str = "") -> str:
        """Hold the volume for container_id; returns the host path to bind."""

    async def unmount(self, name: str, container_id: str) -> None: ...

    async def populate(self, name: str, source_dir: str, subpath: str = "") -> bool:
        """Copy source_dir into the volume (or its existing `subpath` directory) if it is
        empty; whether anything was copied."""


class ContainerVolumes(VolumeMounter, Protocol):
    """What the container service calls across a container's lifecycle."""

    async def attach_point(self, container_id: str, point: dict[str, Any]
                           ) -> tuple[dict[str, Any], bool]:
        """The point with Name/Source/Driver filled in, and whether the volume was made."""

    async def discard_created(self, names: Iterable[str]) -> None: ...

    async def before_start(self, container: MountingContainer) -> None: ...

    async def detach_container(self, container: MountingContainer, *,
                               remove_anonymous: bool = False) -> None: ...


class Volumes(VolumeAdmin, ContainerVolumes, Protocol):
    """The whole service."""
