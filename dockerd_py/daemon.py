"""The composition root: every service built once, each given what it depends on;
the API app over them; the listeners; and the process lifecycle (signals, reload).

Construction order follows the dependencies: the stores first (metadata,
content, snapshots, leases, events, container records), then the services
over them (images, runtimes and the monitor, volumes, networks, containers,
exec, health checks, log rotation), then the clients of the engine
(distribution, builder), then the API. Nothing below is patched in later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass

from aiohttp import web

from builder.backend import Backend
from builder.service import BuildService

from . import config as config_mod
from .api import archive as archive_api
from .api import attach as attach_api
from .api import build as build_api
from .api import buildkit as buildkit_api
from .api import containers, exec, images, keys, networks, server, stats, system, volumes
from .api import distribution as distribution_api
from .api import swarm as swarm_api
from .buildkit.service import BuildKit
from .buildkit.solver import DockerfileSolver
from .config import Config
from .cri import app as cri_app
from .cri.server import CRIServer
from .cri.settings import CRISettings
from .distribution.endpoints import RegistrySettings
from .distribution.service import DistributionService
from .engine.containers.create import ContainerSettings
from .engine.containers.exec import ExecService
from .engine.containers.files import ContainerFiles
from .engine.containers.fsverbs import FileAccess
from .engine.containers.health import HealthChecks
from .engine.containers.launch import CGROUP_PARENT
from .engine.containers.logrotation import LogRotation
from .engine.containers.service import ContainerService
from .engine.containers.store import ContainerStore
from .engine.content.local import ContentStore
from .engine.events import EventBus
from .engine.identity import daemon_id
from .engine.images.buildcache import BuildCacheRecords
from .engine.images.service import ImageService
from .engine.leases import LeaseManager
from .engine.metadata.db import Database
from .engine.networks.service import NetworkService
from .engine.networks.settings import NetworkSettings
from .engine.runtime.monitor import Monitor
from .engine.runtime.runtimes import Runtimes, RuntimeSettings
from .engine.snapshots.contract import Snapshotter
from .engine.snapshots.overlay import OverlaySnapshotter
from .engine.volumes.service import VolumeService
from .errors import InvalidParameter
from .listeners import parse_hosts, tls_context, unix_socket
from .pidfile import DirLock, PidFile

log = logging.getLogger("dockerd_py")

ROUTE_TABLES = (system.routes, images.routes, containers.routes, attach_api.routes,
                exec.routes, volumes.routes, stats.routes, archive_api.routes, networks.routes,
                distribution_api.routes, build_api.routes, swarm_api.routes,
                buildkit_api.routes)


# -- settings: the daemon's configuration, cut to what each service needs ----------------

def container_settings(cfg: Config) -> ContainerSettings:
    return ContainerSettings(cfg.log_driver, dict(cfg.log_opts), cfg.live_restore)


def runtime_settings(cfg: Config) -> RuntimeSettings:
    return RuntimeSettings(cfg.exec_root, cfg.default_runtime, cfg.runtimes)


def network_settings(cfg: Config) -> NetworkSettings:
    return NetworkSettings(cfg.exec_root, cfg.bridge, cfg.bip, cfg.fixed_cidr,
                           cfg.default_address_pools, cfg.iptables)


def registry_settings(cfg: Config) -> RegistrySettings:
    return RegistrySettings(mirrors=cfg.registry_mirrors, insecure=cfg.insecure_registries,
                            hosts=cfg.registry_hosts,
                            max_concurrent_downloads=cfg.max_concurrent_downloads,
                            max_concurrent_uploads=cfg.max_concurrent_uploads)


def cri_settings(cfg: Config) -> CRISettings | None:
    opts = cfg.cri_options
    if not opts["socket"]:
        return None
    return CRISettings(opts["socket"], opts["cni-conf-dir"], opts["cni-bin-dir"],
                       opts["sandbox-image"], state_dir=os.path.join(cfg.data_root, "cri"),
                       run_dir=os.path.join(cfg.exec_root, "cri"))


# -- the services ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Services:
    db: Database
    events: EventBus
    snapshots: Snapshotter
    images: ImageService
    runtimes: Runtimes
    volumes: VolumeService
    networks: NetworkService
    containers: ContainerService
    execs: ExecService
    files: ContainerFiles
    distribution: DistributionService
    builder: BuildService
    buildkit: BuildKit
    daemon_id: str


def build_services(cfg: Config) -> Services:
    root = cfg.data_root
    os.makedirs(root, mode=0o710, exist_ok=True)
    # As dockerd since 20.10.9 (CVE-2021-41091): no other user traverses the data root.
    os.chmod(root, 0o710)
    db = Database(os.path.join(root, "metadata.db"))
    content = ContentStore(os.path.join(root, "content"))
    snapshots = OverlaySnapshotter(os.path.join(root, "snapshots"), db)
    leases = LeaseManager()
    events = EventBus()
    records = ContainerStore(db, events, os.path.join(root, "containers"))
    images = ImageService(db, content, snapshots, leases, events, users=records)
    runtimes = Runtimes(runtime_settings(cfg))
    monitor = Monitor(os.path.join(cfg.exec_root, "rt"), cgroup_parent=CGROUP_PARENT)
    volumes = VolumeService(db, events, root, users=records)
    networks = NetworkService(network_settings(cfg), db, events, records)
    execs = ExecService(records, monitor)
    # Health probes are exec sessions of their own, kept apart from the API's.
    hooks = (LogRotation(records, monitor), HealthChecks(records, ExecService(records, monitor)))
    containers = ContainerService(records, images, snapshots, leases, volumes, networks,
                                  runtimes, monitor, container_settings(cfg), hooks)
    files = ContainerFiles(FileAccess(records, snapshots, monitor, volumes, images, containers))
    distribution = DistributionService(registry_settings(cfg), images)
    backend = Backend(images, snapshots, content, leases, networks, runtimes,
                      BuildCacheRecords(db), distribution)
    builder = BuildService(backend, os.path.join(root, "builder"))
    solver = DockerfileSolver(builder, images, os.path.join(root, "buildkit", "contexts"),
                              distribution.remote)
    buildkit = BuildKit(cfg.exec_root, solver, builder)
    return Services(db, events, snapshots, images, runtimes, volumes, networks, containers,
                    execs, files, distribution, builder, buildkit, daemon_id(root))


async def start(s: Services) -> None:
    """Recover from whatever a crash left: build steps and their mounts, partial ingests,
    staging directories, blobs and snapshots no record reaches; reattach to the
    containers that kept running."""
    await s.networks.load()
    await s.builder.recover()
    await s.containers.restore()
    await s.networks.reconcile({c.id for c in s.containers.list() if c.state.running})
    await s.images.collect_garbage(startup=True)
    await s.buildkit.start()


async def close(s: Services) -> None:
    await s.buildkit.close()
    await s.containers.close()
    await s.networks.close()
    await s.images.wait_gc()
    s.events.close()
    s.db.close()


def make_cri(cfg: Config, s: Services) -> CRIServer | None:
    """The CRI endpoint, when configured, over the same services as the API."""
    settings = cri_settings(cfg)
    if settings is None:
        return None
    return cri_app.build(settings, containers=s.containers, execs=s.execs, images=s.images,
                         distribution=s.distribution, events=s.events,
                         monitor=s.containers.monitor, handlers=sorted(s.runtimes.all()),
                         fs_root=s.snapshots.root)


def make_app(s: Services, config: config_mod.ConfigSource) -> web.Application:
    app = server.make_app(ROUTE_TABLES)
    app[keys.CONFIG] = config
    app[keys.DAEMON_ID] = s.daemon_id
    app[keys.IMAGES] = s.images
    app[keys.CONTAINERS] = s.containers
    app[keys.EXECS] = s.execs
    app[keys.FILES] = s.files
    app[keys.VOLUMES] = s.volumes
    app[keys.NETWORKS] = s.networks
    app[keys.SNAPSHOTS] = s.snapshots
    app[keys.RUNTIMES] = s.runtimes
    app[keys.EVENTS] = s.events
    app[keys.DISTRIBUTION] = s.distribution
    app[keys.BUILDER] = s.builder
    app[buildkit_api.BUILDKIT] = s.buildkit
    return app


# -- the process ---------------------------------------------------------------------------

class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._stop = asyncio.Event()

    async def run(self) -> None:
        cfg = self.cfg
        listeners = parse_hosts(cfg)
        os.makedirs(cfg.exec_root, mode=0o700, exist_ok=True)
        os.makedirs(cfg.data_root, mode=0o710, exist_ok=True)
        pidfile = PidFile(cfg.effective_pidfile)
        pidfile.acquire()
        locks = [DirLock(cfg.data_root, "data root"), DirLock(cfg.exec_root, "exec root")]
        try:
            for lock in locks:
                lock.acquire()
            await self._serve(listeners)
        finally:
            for lock in locks:
                lock.release()
            pidfile.release()

    async def _serve(self, listeners: list[tuple[str, str, int | None]]) -> None:
        cfg = self.cfg
        # Child exits through pidfds on the loop, not a thread per runc/conmon child.
        if asyncio.PidfdChildWatcher is not None and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                os.close(os.pidfd_open(os.getpid()))
                watcher = asyncio.PidfdChildWatcher()
                watcher.attach_loop(asyncio.get_running_loop())
                asyncio.set_child_watcher(watcher)
        services = build_services(cfg)
        await start(services)
        app = make_app(services, lambda: self.cfg)
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=2.0)
        await runner.setup()
        sockets: list[str] = []
        cri = make_cri(cfg, services)
        try:
            if cri is not None:
                await cri.start()
            for scheme, address, port in listeners:
                if scheme == "unix":
                    sock = unix_socket(address, cfg.group)
                    sockets.append(address)
                    await web.SockSite(runner, sock).start()
                else:
                    await web.TCPSite(runner, address, port, ssl_context=tls_context(cfg)).start()
                log.info("API listen on %s", address if port is None else f"{address}:{port}")
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._reload(services))
            log.info("Daemon has completed initialization")
            await self._stop.wait()
            log.info("Processing signal 'terminated'")
        finally:
            if cri is not None:
                await cri.stop()
            await runner.cleanup()
            await close(services)
            for path in sockets:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            log.info("Daemon shutdown complete")

    def _reload(self, s: Services) -> None:
        try:
            new, changed = config_mod.reload(self.cfg)
        except Exception as e:
            log.error("Error reconfiguring the daemon: %s", e)
            return
        self.cfg = new
        s.containers.reconfigure(container_settings(new))
        s.runtimes.reconfigure(runtime_settings(new))
        s.distribution.reconfigure(registry_settings(new))
        if "log_level" in changed or "debug" in changed:
            set_log_level(new.log_level)
        log.info("Reloaded configuration: %s", ", ".join(changed) or "no changes")


def set_log_level(level: str) -> None:
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
              "panic": logging.CRITICAL}
    if level not in levels:
        raise InvalidParameter(f"unable to parse logging level: {level}")
    logging.getLogger().setLevel(levels[level])
