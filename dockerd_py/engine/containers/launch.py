"""A container in the runtime: made before its start, taken apart after its exit.

Making it mounts the root filesystem, fills new volumes from the image, joins
the container's networks, writes the OCI bundle and starts its monitor with
`runtime create`, so that attach works before start and no output is lost.
Taking it apart reverses each step; both are safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Iterator

from ...errors import DaemonError, InternalError, InvalidParameter
from ..networks.contract import Attacher, network_mode
from ..runtime import logs as runtime_logs
from ..runtime.contract import RuntimeRegistry, Supervisor
from ..runtime.process import Process
from ..snapshots.contract import Snapshotter
from ..volumes.contract import ContainerVolumes
from . import bundle, ipc, logdriver
from .records import Container
from .store import ContainerStore

CGROUP_PARENT = "dockerd-py"


class SetupFailed(Exception):
    """A start failed before the runtime ran (a mount, a device, a namespace to join).
    dockerd answers such an error in its own category and records exit code 128: its
    126 and 127 come from the runtime's words only."""

    def __init__(self, cause: DaemonError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@contextlib.contextmanager
def _setup() -> Iterator[None]:
    try:
        yield
    except DaemonError as e:
        raise SetupFailed(e) from None
    except OSError as e:
        raise SetupFailed(InternalError(str(e))) from None


def _placed_log(path: str) -> str:
    """Where conmon writes the log (blocking): a front end (the CRI) that put the log where
    its client asked made path a link to it; conmon writes the target, so that its reopen
    (a fresh file renamed over the path) replaces it."""
    try:
        return os.readlink(path)
    except OSError:  # not a link (EINVAL), or no file yet
        return path


class Launcher:
    def __init__(self, store: ContainerStore, snapshots: Snapshotter,
                 volumes: ContainerVolumes, networks: Attacher, runtimes: RuntimeRegistry,
                 monitor: Supervisor) -> None:
        self.store = store
        self.snapshots = snapshots
        self.volumes = volumes
        self.networks = networks
        self.runtimes = runtimes
        self.monitor = monitor

    async def ensure_created(self, c: Container, netns: str | None = None) -> Process:
        """The container exists in the runtime (monitor + `runtime create`). netns: the
        pinned namespace a NetworkMode "none" container joins instead of a new one."""
        with contextlib.suppress(DaemonError):
            proc = self.monitor.load(c.id)
            if self.monitor.alive(proc) and self.monitor.exit_status(proc) is None:
                return proc
            await self.monitor.remove(c.id)
        if netns is not None and (network_mode(c.host_config) != "none"
                                  or not os.path.isabs(netns)):
            raise InvalidParameter(f"container {c.id} cannot join network namespace "
                                   f"{netns!r}: only one of network mode none can")
        runtime = self.runtimes.get(c.host_config.get("Runtime") or self.runtimes.default)
        log_dir = self.store.log_dir(c.id)
        log_settings = logdriver.settings(c, log_dir)  # before anything is made: may refuse
        mounts = await self.snapshots.mounts(c.id)
        state_dir = self.store.state_dir(c.id)
        with _setup():
            rootfs = await asyncio.to_thread(bundle.mount_rootfs, state_dir, mounts,
                                             self.snapshots.root)
            await self._populate_volumes(c, rootfs)
            await self.volumes.before_start(c)
            bundle_dir = await asyncio.to_thread(self.monitor.bundle_dir, c.id)
            sharing = ipc.sharing(self.store, c)
        net = await self.networks.attach(c)
        if netns is not None:
            net = dataclasses.replace(net, netns_path=netns)
        try:
            with _setup():
                await asyncio.to_thread(bundle.prepare, c, state_dir=state_dir,
                                        bundle_dir=bundle_dir, mounts=mounts,
                                        snapshots_root=self.snapshots.root,
                                        cgroup_parent=CGROUP_PARENT, net=net, sharing=sharing)
        except BaseException:
            await asyncio.shield(self.networks.detach(c.id, c.name))
            raise
        cfg = c.config
        log_path = runtime_logs.log_path(log_dir) if log_settings.files else None
        if log_path is not None:
            log_path = await asyncio.to_thread(_placed_log, log_path)
        try:
            proc = await self.monitor.create(
                c.id, runtime, terminal=c.tty, stdin=bool(cfg.get("OpenStdin")),
                # conmon closes stdin when an attach client goes away. dockerd closes it
                # on the client's EOF only without a TTY: a detach (ctrl-p ctrl-q) from
                # a TTY must leave it open for the next `docker attach`.
                stdin_once=bool(cfg.get("StdinOnce")) and not c.tty,
                log_path=log_path, journald_tag=log_settings.journald_tag, name=c.name)
        except BaseException:
            # All of it goes, the endpoints too: an attach before the start makes the
            # container once, and the start makes it again (plainveth's names are fixed).
            await asyncio.to_thread(bundle.teardown, state_dir)
            await asyncio.shield(self.networks.detach(c.id, c.name))
            raise
        await asyncio.to_thread(bundle.release_pins, state_dir)  # the runtime mounted them
        size = c.host_config.get("ConsoleSize") or [0, 0]
        if c.tty and size and size[0] and size[1]:
            self.monitor.resize(proc, int(size[0]), int(size[1]))
        return proc

    async def _populate_volumes(self, c: Container, rootfs: str) -> None:
        """A new, empty volume takes the image's content at its mount point (as dockerd)."""
        for p in c.mounts:
            if p["Type"] == "volume" and p.get("CopyData", True):
                source = bundle.path_in_root(rootfs, p["Destination"])
                if source is not None and os.path.isdir(source):
                    await self.volumes.populate(p["Name"], source, p.get("Subpath") or "")

    async def release_volumes(self, c: Container) -> None:
        for p in c.mounts:
            if p["Type"] == "volume":
                with contextlib.suppress(DaemonError):
                    await self.volumes.unmount(p["Name"], c.id)

    async def cleanup(self, cid: str) -> None:
        """The monitor, the mounts and the network endpoints go; the record stays."""
        with contextlib.suppress(DaemonError):
            await self.monitor.remove(cid)
        await asyncio.to_thread(bundle.teardown, self.store.state_dir(cid))
        await self.networks.detach(cid)
