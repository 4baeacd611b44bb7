"""`docker create`: a new container record on a fresh snapshot of its image.

Everything the client sent is checked before anything is made (dockerd's
400s), then volumes, the writable snapshot and the row are made under the
store's "create" lock, so names stay unique; a failure midway removes what
this create made (anonymous volumes, the snapshot) and nothing else.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import DaemonError, InvalidParameter, NotFound
from ..images.contract import Images
from ..images.mediatypes import now_rfc3339
from ..leases import LeaseManager, protect_snapshot
from ..networks.contract import NetworkValidator
from ..runtime import logs as runtime_logs
from ..runtime.contract import RuntimeRegistry
from ..runtime.defaults import discard_unsupported
from ..runtime.hostlimits import host_limits
from ..runtime.spec import validate as validate_spec
from ..snapshots.contract import Snapshotter
from ..volumes.contract import ContainerVolumes
from . import etcfiles, ipc, names
from .config import (
    check_restart_policy,
    inherited,
    merge_image_config,
    mount_points,
    parse_volumes_from,
)
from .records import Container
from .store import ContainerStore


@dataclass(frozen=True)
class ContainerSettings:
    """The daemon's defaults for new containers, and what happens to them at shutdown.

    Its log-opts are checked as a container's are, when the daemon starts (moby
    setupDefaultLogConfig: only when there are some; a driver alone is met at
    create)."""
    log_driver: str = runtime_logs.DEFAULT_DRIVER
    log_opts: Mapping[str, str] = field(default_factory=dict)
    live_restore: bool = True

    def __post_init__(self) -> None:
        if self.log_opts:
            try:
                runtime_logs.validate(self.log_driver, self.log_opts)
            except InvalidParameter as e:
                raise InvalidParameter(f"failed to set log opts: {e}") from None


class Creator:
    def __init__(self, store: ContainerStore, images: Images,
                 snapshots: Snapshotter, leases: LeaseManager, volumes: ContainerVolumes,
                 networks: NetworkValidator, runtimes: RuntimeRegistry,
                 settings: ContainerSettings) -> None:
        self.store = store
        self.images = images
        self.snapshots = snapshots
        self.leases = leases
        self.volumes = volumes
        self.networks = networks
        self.runtimes = runtimes
        self.settings = settings

    async def create(self, name: str | None, body: dict[str, Any]
                     ) -> tuple[Container, builtins.list[str]]:
        hc = dict(body.get("HostConfig") or {})
        networking = dict(body.get("NetworkingConfig") or {})
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        if name:
            name = names.validate(name)
            self.store.check_name_free(name)
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("config.Image must be set")
        check_restart_policy(hc)
        hc.setdefault("NetworkMode", "default")
        if hc.get("Memory") and not hc.get("MemorySwap"):
            hc["MemorySwap"] = 2 * hc["Memory"]  # dockerd's default: as much swap as memory
        hc.setdefault("Runtime", self.runtimes.default)
        self.runtimes.get(hc["Runtime"])  # unknown runtime → 400 now, not at start
        hc["LogConfig"] = runtime_logs.merge(hc.get("LogConfig"), self.settings.log_driver,
                                             self.settings.log_opts)
        runtime_logs.validate(hc["LogConfig"]["Type"], hc["LogConfig"]["Config"])
        # As dockerd (verifyContainerSettings before GetImage): the client's settings
        # are checked before the image is looked up; again below with the image's.
        host = host_limits()
        warnings = discard_unsupported(hc, host.blkio_weight, host.blkio_weight_device)
        validate_spec(config, hc, host)
        mount_points(config, hc)
        image = await self.images.resolve(image_ref)
        merged = merge_image_config(config, (image.config.get("config") or {}))
        cid = secrets.token_hex(32)
        merged["Image"] = image_ref
        if not merged.get("Hostname"):  # with the host's network, the host's name (as dockerd)
            merged["Hostname"] = (os.uname().nodename if hc.get("NetworkMode") == "host"
                                  else cid[:12])
        validate_spec(merged, hc, host_limits())
        etcfiles.validate(merged, hc)
        ipc.adapt(self.store, hc)
        networking = self.networks.validate(hc, networking, merged)
        points = mount_points(merged, hc, self._volumes_from(hc))
        for p in points:
            if p.pop("MustExist", False) and not os.path.exists(p["Source"]):
                raise InvalidParameter('invalid mount config for type "bind": bind source path '
                                       f"does not exist: {p['Source']}")
        async with self.store.lock("create"):
            name = name or names.random_name(self.store.names())
            self.store.check_name_free(name)
            made: builtins.list[str] = []  # anonymous volumes made here: a failure removes them
            try:
                points = await self._create_volumes(cid, points, made)
                # Until the row exists, only the lease keeps GC off the new snapshot and
                # the image's layers.
                async with self.leases.lease():
                    if image.top_chain:
                        # Protect, then look (leases.py): the image may have been removed
                        # and collected since it was resolved.
                        protect_snapshot(image.top_chain)
                        try:
                            await self.snapshots.chain(image.top_chain)
                        except NotFound:
                            raise NotFound(f"No such image: {image_ref}") from None
                    await self.snapshots.prepare(cid, image.top_chain)
                    c = await self._insert(Container(
                        id=cid, name=name, image=image_ref, image_id=image.id,
                        created=now_rfc3339(), seq=0, config=merged, host_config=hc,
                        networking=networking, mounts=points))
            except BaseException:
                if made:
                    await asyncio.shield(self.volumes.discard_created(made))
                raise
            os.makedirs(self.store.state_dir(cid), mode=0o710, exist_ok=True)
        self.store.event(c, "create")
        return c, warnings

    def _volumes_from(self, hc: Mapping[str, Any]) -> builtins.list[dict[str, Any]]:
        """The mount points `--volumes-from` brings, in order (a later one wins)."""
        out: builtins.list[dict[str, Any]] = []
        for spec in hc.get("VolumesFrom") or ():
            ref, rw = parse_volumes_from(str(spec) if isinstance(spec, str) else "")
            try:
                donor = self.store.get(ref)
            except NotFound as e:
                raise InvalidParameter(str(e)) from None
            out += inherited(donor.mounts, rw)
        return out

    async def _insert(self, c: Container) -> Container:
        try:
            return await self.store.insert(c)
        except BaseException:
            with contextlib.suppress(DaemonError):
                await self.snapshots.remove(c.id)
            raise

    async def _create_volumes(self, cid: str, points: builtins.list[dict[str, Any]],
                              made: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """The points with their volumes created or found; the anonymous ones created are
        appended to `made` as they appear, so a failure midway leaves them known. Named
        volumes stay, as with dockerd (moby's removeMountPoints skips them)."""
        out = []
        for p in points:
            if p["Type"] == "volume":
                anonymous = not p.get("Name")
                p, created = await self.volumes.attach_point(cid, p)
                if created and anonymous:
                    made.append(p["Name"])
            out.append(p)
        return out
