"""Volumes across a container's lifecycle: the calls the container service makes
(contract.ContainerVolumes), over the service's records, locks and device mounts."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ...errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound
from ..events import EventBus
from .contract import MountingContainer, VolumeUsers
from .locks import NameLocks
from .mounts import LocalMounts
from .records import DEFAULT_DRIVER, Volume
from .safepath import open_subpath
from .tree import copy_into_empty

log = logging.getLogger(__name__)


class _Service(Protocol):
    """What the mixin needs of the service it is mixed into."""

    events: EventBus
    users: VolumeUsers
    locks: NameLocks
    mounts: LocalMounts

    async def get(self, name: str) -> Volume: ...

    async def create_or_get(self, name: str | None, driver: str | None,
                            driver_opts: Mapping[str, str] | None,
                            labels: Mapping[str, str] | None,
                            anonymous: bool) -> tuple[Volume, bool]: ...

    async def remove(self, name: str, force: bool = False) -> None: ...

    async def mount(self, name: str, container_id: str, *, destination: str = "",
                    rw: bool = True, propagation: str = "") -> str: ...

    async def unmount(self, name: str, container_id: str) -> None: ...

    async def restore(self, refs: Mapping[str, Iterable[str]] | None = None) -> None: ...

    async def ensure_restored(self) -> None: ...


class ContainerLifecycle:
    """Mixed into VolumeService."""

    # -- holders and device mounts -----------------------------------------------------

    async def mount(self: _Service, name: str, container_id: str, *, destination: str = "",
                    rw: bool = True, propagation: str = "") -> str:
        """The container starts using the volume: mount its device if it has one and this is
        the first user. Returns the host path to bind. Emits the `mount` event."""
        async with self.locks.hold(name):
            vol = await self.get(name)
            await self.ensure_restored()
            await self.mounts.acquire(vol, container_id)
        self.events.publish("volume", "mount", name, {
            "driver": vol.driver, "container": container_id, "destination": destination,
            "read/write": "true" if rw else "false", "propagation": propagation})
        return vol.mountpoint

    async def unmount(self: _Service, name: str, container_id: str) -> None:
        """The container stopped using the volume: unmount its device after the last user.
        Emits the `unmount` event."""
        async with self.locks.hold(name):
            vol = await self.get(name)
            await self.ensure_restored()
            await self.mounts.release(vol, container_id)
        self.events.publish("volume", "unmount", name,
                            {"driver": vol.driver, "container": container_id})

    async def restore(self: _Service, refs: Mapping[str, Iterable[str]] | None = None) -> None:
        """Set which containers hold each volume's device mount after a daemon restart
        (live-restored running containers). None: the running containers' volumes."""
        if refs is None:
            refs = self.users.volume_users(running_only=True)
        self.mounts.restore(refs)

    async def ensure_restored(self: _Service) -> None:
        if not self.mounts.restored:
            await self.restore()

    async def populate(self: _Service, name: str, source_dir: str, subpath: str = "") -> bool:
        """Copy `source_dir` (a directory of the container's image) into the volume if the
        volume is empty, preserving owners, modes, times, xattrs, symlinks, hard links and
        device nodes; the volume's root takes the source directory's owner and mode, as
        dockerd does. Returns whether anything was copied.

        With a subpath, its directory is filled instead, if it exists inside the volume
        (as dockerd, nothing is copied otherwise: the mount reports the problem).

        Call it after `mount()`: for a device-backed volume that is not mounted, the device
        is mounted just for the copy (useless for tmpfs, whose content then goes away)."""
        async with self.locks.hold(name):
            vol = await self.get(name)
            await self.ensure_restored()
            temporary = vol.needs_mount and name not in self.mounts.mounted
            if temporary:
                await self.mounts.mount(vol)
            try:
                return await asyncio.to_thread(_fill, source_dir, vol.mountpoint, subpath)
            except OSError as e:
                raise InternalError(f"populate volume {name} from {source_dir}: {e}") from None
            finally:
                if temporary:
                    await self.mounts.umount(vol)

    # -- create, start, removal ---------------------------------------------------------

    async def attach_point(self: _Service, container_id: str, point: dict[str, Any]
                           ) -> tuple[dict[str, Any], bool]:
        """At container create: the volume a mount point names (created if missing; an
        anonymous one when it has no name), recorded in the point as Name/Source/Driver;
        and whether it was created here (a failed create removes it again)."""
        name = point.get("Name") or None
        vol, created = await self.create_or_get(
            name, point.get("Driver") or DEFAULT_DRIVER, None, point.get("Labels") or None,
            anonymous=name is None)
        return {**point, "Name": vol.name, "Source": vol.mountpoint,
                "Driver": vol.driver}, created

    async def discard_created(self: _Service, names: Iterable[str]) -> None:
        """Undo the volumes a failed container create made; best effort, as the create's
        own error is what the client must see."""
        for name in names:
            try:
                await self.remove(name)
            except DaemonError as e:
                log.warning("removing volume %s of a failed create: %s", name, e)

    async def before_start(self: _Service, container: MountingContainer) -> None:
        """At container start: mount every volume of the container (events as dockerd)."""
        done: builtins.list[str] = []
        try:
            for p in _volume_points(container):
                await self.mount(p["Name"], container.id, destination=p.get("Destination", ""),
                                 rw=bool(p.get("RW", True)),
                                 propagation=p.get("Propagation") or "")
                done.append(p["Name"])
        except BaseException:
            for name in done:
                with contextlib.suppress(Exception):
                    await self.unmount(name, container.id)
            raise

    async def detach_container(self: _Service, container: MountingContainer, *,
                               remove_anonymous: bool = False) -> None:
        """At container removal (its row already gone): release its mounts and, for
        `rm -v`, remove its anonymous volumes unless another container uses them."""
        for p in _volume_points(container):
            name = p["Name"]
            with contextlib.suppress(NotFound):
                if self.mounts.holds(name, container.id):
                    await self.unmount(name, container.id)
                if remove_anonymous and (await self.get(name)).anonymous:
                    try:
                        await self.remove(name)
                    except Conflict:
                        pass  # still used by another container: not an error (as dockerd)
                    except InternalError as e:
                        log.warning("removing volume %s of container %s: %s", name,
                                    container.id, e)


def _fill(source_dir: str, mountpoint: str, subpath: str) -> bool:
    if not subpath:
        return copy_into_empty(source_dir, mountpoint)
    try:
        fd = open_subpath(mountpoint, subpath, os.O_RDONLY | os.O_DIRECTORY)
    except (NotFound, InvalidParameter):
        return False
    try:
        return copy_into_empty(source_dir, fd)
    finally:
        os.close(fd)


def _volume_points(container: MountingContainer) -> builtins.list[Mapping[str, Any]]:
    return [p for p in getattr(container, "mounts", None) or []
            if isinstance(p, dict) and p.get("Type") == "volume" and p.get("Name")]
