"""The container service: create, start, stop, kill, wait, remove, ... as dockerd.

Records live in memory (authoritative while the daemon runs) and are written
through to the metadata database on every change. Each container's changes
are serialised by its own lock. The runtime work is done by conmon (one
monitor per running container, which outlives the daemon) and the OCI runtime.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
import logging
import os
import re
import secrets
import shutil
import signal as signals
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from ...config import Config
from ...errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound, NotModified
from ..events import EventBus
from ..images.changes import parse_signal
from ..images.mediatypes import now_rfc3339, rfc3339_nano
from ..images.service import ImageService
from ..leases import protect_snapshot
from ..metadata.db import Database
from ..runtime import logs as runtime_logs
from ..runtime.attach import AttachStream
from ..runtime.hostlimits import host_limits
from ..runtime.monitor import Monitor
from ..runtime.oci import OCIRuntime, start_failure_exit_code
from ..runtime.process import ExitStatus, Process
from ..runtime.spec import validate as validate_spec
from ..snapshots.overlay import OverlaySnapshotter
from ..timestamps import parse_time
from . import bundle, health, logrotation, names, records
from .config import check_restart_policy, merge_image_config, mount_points
from .records import ZERO_TIME, Container

log = logging.getLogger(__name__)

_CGROUP_PARENT = "dockerd-py"
_HEX = re.compile(r"^[0-9a-f]+$")
_CRUN_WRAPPER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "contrib",
                             "crun-hybrid")


@functools.cache
def _crun_path() -> str:
    """The crun to run: the hybrid-cgroup wrapper where needed, else the crun on PATH
    (its full path, as `docker info` shows it; the bare name when not installed)."""
    hybrid = os.path.ismount("/sys/fs/cgroup/unified")
    wrapper = os.path.realpath(_CRUN_WRAPPER)
    if hybrid and os.access(wrapper, os.X_OK):
        return wrapper
    return shutil.which("crun") or "crun"


class ContainerService:
    def __init__(self, config: Config, db: Database, images: ImageService,
                 snapshots: OverlaySnapshotter, events: EventBus) -> None:
        self.config = config
        self.db = db
        self.images = images
        self.snapshots = snapshots
        self.events = events
        self.state_root = os.path.join(config.data_root, "containers")
        self.monitor = Monitor(os.path.join(config.exec_root, "rt"),
                               cgroup_parent=_CGROUP_PARENT)
        self.volumes: Any = None  # set by the engine when the volume service exists
        self.networks: Any = None  # set by the engine: engine/networks/service.py
        self._containers: dict[str, Container] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._exited: dict[str, asyncio.Event] = {}    # set on each exit, then replaced
        self._removed: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._restarts: dict[str, asyncio.Task[None]] = {}
        self._tombstones: dict[str, Container] = {}   # recently removed, for waiters
        self._pending_attach: dict[str, list[asyncio.Future[AttachStream | None]]] = {}
        os.makedirs(self.state_root, mode=0o710, exist_ok=True)
        images.usage = self._image_usage

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without '/'), or unique ID prefix."""
        if ref in self._containers:
            return self._containers[ref]
        name = ref.lstrip("/")
        for c in self._containers.values():
            if c.name == name:
                return c
        if ref and _HEX.match(ref):
            found = [c for c in self._containers.values() if c.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def list(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.seq, reverse=True)

    def state_dir(self, cid: str) -> str:
        return os.path.join(self.state_root, cid)

    def log_dir(self, cid: str) -> str:
        return self.state_dir(cid)

    async def layer_dirs(self, c: Container) -> dict[str, str]:
        """Overlay directories of the container, as `docker inspect` GraphDriver.Data shows."""
        chain = await self.snapshots.chain(c.id)
        upper = self.snapshots.fs_dir(chain[0])
        return {"LowerDir": ":".join(self.snapshots.fs_dir(i) for i in chain[1:]),
                "MergedDir": os.path.join(self.state_dir(c.id), "rootfs"),
                "UpperDir": upper, "WorkDir": os.path.join(os.path.dirname(upper), "work")}

    async def sizes(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): bytes the container wrote, and that plus its image."""
        info = await self.snapshots.stat(c.id)
        rw = await asyncio.to_thread(_tree_size, self.snapshots.fs_dir(info)) if info else 0
        image = await self.images.get(c.image_id)
        return rw, rw + (image.size if image else 0)

    async def _image_usage(self, image_id: str
                           ) -> tuple[builtins.list[str], builtins.list[str]]:
        running = [c.id for c in self._containers.values()
                   if c.image_id == image_id and c.state.running]
        stopped = [c.id for c in self._containers.values()
                   if c.image_id == image_id and not c.state.running]
        return running, stopped

    def runtimes(self) -> dict[str, dict[str, Any]]:
        """Every runtime a container may name, with the path that runs: the stock runc,
        crun as found on this host, then daemon.json's (which win, as in dockerd)."""
        known: dict[str, dict[str, Any]] = {"runc": {"path": "runc"},
                                            "crun": {"path": _crun_path()}}
        known.update({name: {**entry, "path": entry.get("path") or name}
                      for name, entry in self.config.runtimes.items()})
        return known

    def runtime(self, name: str) -> OCIRuntime:
        entry = self.runtimes().get(name)
        if entry is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return OCIRuntime(name, entry["path"], entry.get("runtimeArgs") or (),
                          root=os.path.join(self.config.exec_root, f"runtime-{name}"))

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def lock(self, cid: str) -> asyncio.Lock:
        """The container's lock, for services that change its record (network connect)."""
        return self._lock(cid)

    async def set_networking(self, cid: str, networking: dict[str, Any]) -> Container:
        """Record the networks a container is connected to; the caller holds lock(cid)."""
        return await self._save(dataclasses.replace(self.get(cid), networking=networking))

    async def _save(self, c: Container) -> Container:
        await self.db.run(lambda conn: records.save(conn, c))
        self._containers[c.id] = c
        return c

    def _event(self, c: Container, action: str, **extra: str) -> None:
        attrs = dict(c.config.get("Labels") or {})
        attrs.update({"image": c.image, "name": c.name}, **extra)
        self.events.publish("container", action, c.id, attrs)

    # -- create --------------------------------------------------------------

    async def create(self, name: str | None, body: dict[str, Any]
                     ) -> tuple[Container, builtins.list[str]]:
        hc = dict(body.get("HostConfig") or {})
        networking = dict(body.get("NetworkingConfig") or {})
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        if name:
            name = names.validate(name)
            self._check_name_free(name)
        image_ref = config.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("config.Image must be set")
        image = await self.images.resolve(image_ref)
        check_restart_policy(hc)
        hc.setdefault("NetworkMode", "default")
        if hc.get("Memory") and not hc.get("MemorySwap"):
            hc["MemorySwap"] = 2 * hc["Memory"]  # dockerd's default: as much swap as memory
        hc.setdefault("Runtime", self.config.default_runtime)
        self.runtime(hc["Runtime"])  # unknown runtime → 400 now, not at start
        hc.setdefault("LogConfig", {"Type": self.config.log_driver,
                                    "Config": dict(self.config.log_opts)})
        runtime_logs.parse_log_opts((hc.get("LogConfig") or {}).get("Config") or {})
        merged = merge_image_config(config, (image.config.get("config") or {}))
        cid = secrets.token_hex(32)
        merged["Image"] = image_ref
        if not merged.get("Hostname"):  # with the host's network, the host's name (as dockerd)
            merged["Hostname"] = (os.uname().nodename if hc.get("NetworkMode") == "host"
                                  else cid[:12])
        validate_spec(merged, hc, host_limits())
        if self.networks is not None:
            networking = self.networks.validate(hc, networking, merged)
        points = mount_points(merged, hc)
        for p in points:
            if p.pop("MustExist", False) and not os.path.exists(p["Source"]):
                raise InvalidParameter('invalid mount config for type "bind": bind source path '
                                       f"does not exist: {p['Source']}")
        async with self._lock("create"):
            name = name or names.random_name({c.name for c in self._containers.values()})
            self._check_name_free(name)
            made: builtins.list[str] = []  # anonymous volumes made here: a failure removes them
            try:
                points = await self._create_volumes(cid, points, made)
                # Until the row exists, only the lease keeps GC off the new snapshot and
                # the image's layers.
                async with self.images.leases.lease():
                    if image.top_chain:
                        protect_snapshot(image.top_chain)
                    await self.snapshots.prepare(cid, image.top_chain)
                    c = await self._insert(Container(
                        id=cid, name=name, image=image_ref, image_id=image.id,
                        created=now_rfc3339(), seq=0, config=merged, host_config=hc,
                        networking=networking, mounts=points))
            except BaseException:
                if made:
                    await asyncio.shield(self.volumes.discard_created(made))
                raise
            os.makedirs(self.state_dir(cid), mode=0o710, exist_ok=True)
            self._containers[cid] = c
        self._event(c, "create")
        return c, []

    async def _insert(self, c: Container) -> Container:
        def insert(conn: sqlite3.Connection) -> Container:
            added = dataclasses.replace(c, seq=records.next_seq(conn))
            records.save(conn, added)
            return added

        try:
            # Shielded: a cancelled request must not undo a row the thread commits.
            return await asyncio.shield(self.db.run(insert))
        except BaseException:
            with contextlib.suppress(DaemonError):
                await self.snapshots.remove(c.id)
            raise

    def _check_name_free(self, name: str) -> None:
        for c in self._containers.values():
            if c.name == name:
                raise Conflict(f'Conflict. The container name "/{name}" is already in use by '
                               f'container "{c.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")

    async def _create_volumes(self, cid: str, points: builtins.list[dict[str, Any]],
                              made: builtins.list[str]) -> builtins.list[dict[str, Any]]:
        """The points with their volumes created or found; the anonymous ones created are
        appended to `made` as they appear, so a failure midway leaves them known. Named
        volumes stay, as with dockerd (moby's removeMountPoints skips them)."""
        out = []
        for p in points:
            if p["Type"] == "volume":
                if self.volumes is None:
                    raise InvalidParameter("volumes are not supported yet")
                anonymous = not p.get("Name")
                p, created = await self.volumes.attach_point(cid, p)
                if created and anonymous:
                    made.append(p["Name"])
            out.append(p)
        return out

    # -- start -----------------------------------------------------------------

    async def _ensure_created(self, c: Container) -> Process:
        """The container exists in the runtime (monitor + `runtime create`), so that
        attach works before start and no output is lost."""
        with contextlib.suppress(DaemonError):
            proc = self.monitor.load(c.id)
            if self.monitor.alive(proc) and self.monitor.exit_status(proc) is None:
                return proc
            await self.monitor.remove(c.id)
        runtime = self.runtime(c.host_config.get("Runtime") or self.config.default_runtime)
        mounts = await self.snapshots.mounts(c.id)
        state_dir = self.state_dir(c.id)
        if self.volumes is not None:
            rootfs = await asyncio.to_thread(bundle.mount_rootfs, state_dir, mounts,
                                             self.snapshots.root)
            await self._populate_volumes(c, rootfs)
            await self.volumes.before_start(c)
        bundle_dir = await asyncio.to_thread(self.monitor.bundle_dir, c.id)
        net = await self.networks.attach(c) if self.networks is not None else None
        try:
            await asyncio.to_thread(bundle.prepare, c, state_dir=state_dir,
                                    bundle_dir=bundle_dir, mounts=mounts,
                                    snapshots_root=self.snapshots.root,
                                    cgroup_parent=_CGROUP_PARENT, net=net)
        except BaseException:
            if self.networks is not None:
                await asyncio.shield(self.networks.detach(c.id, c.name))
            raise
        cfg = c.config
        try:
            proc = await self.monitor.create(
                c.id, runtime, terminal=c.tty, stdin=bool(cfg.get("OpenStdin")),
                # conmon closes stdin when an attach client goes away. dockerd closes it
                # on the client's EOF only without a TTY: a detach (ctrl-p ctrl-q) from
                # a TTY must leave it open for the next `docker attach`.
                stdin_once=bool(cfg.get("StdinOnce")) and not c.tty,
                log_path=runtime_logs.log_path(self.log_dir(c.id)), name=c.name)
        except BaseException:
            await asyncio.to_thread(bundle.teardown, state_dir)
            raise
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
                    await self.volumes.populate(p["Name"], source)

    async def _release_volumes(self, c: Container) -> None:
        if self.volumes is None:
            return
        for p in c.mounts:
            if p["Type"] == "volume":
                with contextlib.suppress(DaemonError):
                    await self.volumes.unmount(p["Name"], c.id)

    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            c = self.get(c.id)
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified("container already started")
            await self._start_locked(c)

    async def _start_locked(self, c: Container) -> Container:
        try:
            try:
                proc = await self._ensure_created(c)
            except Exception:
                await self._resolve_pending_attach(c.id, None)
                raise
            await self._resolve_pending_attach(c.id, proc)
            await proc.oci_runtime().start(c.id)
        except Exception as failure:
            # OS errors (a bind source that cannot be made, a full disk) fail the start
            # the same way, with the cleanup, and reach the client as dockerd's 500.
            e = failure if isinstance(failure, DaemonError) else InternalError(str(failure))
            await self._cleanup_runtime(c.id)
            await self._release_volumes(c)
            code = start_failure_exit_code(str(e))
            await self._save(c.with_state(status="exited" if c.state.started_at != ZERO_TIME
                                          else "created", exit_code=code, error=str(e)))
            if c.host_config.get("AutoRemove"):  # `run --rm` waits for the removal
                asyncio.get_running_loop().create_task(self._remove_quietly(c.id))
            if code in (126, 127):
                raise InvalidParameter(str(e)) from None
            raise e from None
        c = await self._save(c.with_state(status="running", pid=proc.pid, exit_code=0, error="",
                                          oom_killed=False, started_at=now_rfc3339(),
                                          finished_at=ZERO_TIME, manually_stopped=False))
        self._exited.setdefault(c.id, asyncio.Event())
        self._watch(c.id, proc)
        self._event(c, "start")
        logrotation.register(self, c, proc)
        await health.start(self, c)
        return c

    async def _remove_quietly(self, cid: str) -> None:
        with contextlib.suppress(DaemonError):
            await self.remove(cid, force=True, volumes=True)

    def _watch(self, cid: str, proc: Process) -> None:
        old = self._watchers.get(cid)
        if old is not None and not old.done():
            return
        self._watchers[cid] = asyncio.get_running_loop().create_task(self._watch_exit(cid, proc))

    async def _watch_exit(self, cid: str, proc: Process) -> None:
        try:
            status = await self.monitor.wait(proc)
        except asyncio.CancelledError:
            return
        # From here on a new start must get a watcher of its own.
        if self._watchers.get(cid) is asyncio.current_task():
            del self._watchers[cid]
        try:
            await self._on_exit(cid, status, pid=proc.pid)
        except Exception:
            log.exception("handling the exit of container %s failed", cid)

    async def _cleanup_runtime(self, cid: str) -> None:
        with contextlib.suppress(DaemonError):
            await self.monitor.remove(cid)
        await asyncio.to_thread(bundle.teardown, self.state_dir(cid))
        if self.networks is not None:
            await self.networks.detach(cid)

    async def _on_exit(self, cid: str, status: ExitStatus, pid: int | None = None) -> None:
        """Record an exit; pid names the process that exited (a start that won the lock
        meanwhile runs a new one, whose exit this is not)."""
        if cid not in self._containers:
            return
        async with self._lock(cid):
            c = self._containers.get(cid)
            if c is None or not c.state.running or (pid is not None and c.state.pid != pid):
                return
            await self._cleanup_runtime(cid)
            await self._release_volumes(c)
            started = c.state.started_at
            c = await self._save(c.with_state(
                status="exited", pid=0, exit_code=status.code, oom_killed=status.oom_killed,
                error=status.error, finished_at=rfc3339_nano(status.finished_at)))
            if status.oom_killed:
                self._event(c, "oom")
            self._event(c, "die", exitCode=str(status.code),
                        execDuration=str(int(time.time() - parse_time(started))))
            logrotation.discard(self, cid)
            await health.stop(self, cid)
            event = self._exited.pop(cid, None)
            if event is not None:
                event.set()
        if c.host_config.get("AutoRemove"):
            await self._remove_quietly(cid)
            return
        if self._should_restart(c):
            async with self._lock(cid):
                current = self._containers.get(cid)
                if current is not None and current.state.status == "exited":
                    await self._save(current.with_state(status="restarting"))
                    self._schedule_restart(current)

    def _should_restart(self, c: Container) -> bool:
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if c.state.manually_stopped or name == "no":
            return False
        if name == "on-failure":
            retries = policy.get("MaximumRetryCount") or 0
            return c.state.exit_code != 0 and (not retries or c.state.restart_count < retries)
        return True

    def _schedule_restart(self, c: Container) -> None:
        delay = min(0.1 * 2 ** c.state.restart_count, 60.0)  # dockerd's backoff

        async def restart_now() -> None:
            async with self._lock(c.id):
                current = self._containers.get(c.id)
                if current is None or current.state.status != "restarting":
                    return
                current = current.with_state(restart_count=current.state.restart_count + 1)
                try:
                    await self._start_locked(current)
                    self._event(current, "restart")
                except DaemonError as e:
                    log.warning("restarting container %s failed: %s", c.id, e)

        async def later() -> None:
            await asyncio.sleep(delay)
            # Cancelling (stop, rm) during the back-off is fine; half-way through a
            # start it would leave runtime state behind, so the start is shielded.
            await asyncio.shield(restart_now())

        self._restarts[c.id] = asyncio.get_running_loop().create_task(later())

    async def _cancel_restart(self, cid: str) -> None:
        """Stop a pending policy restart; a start already under way completes first."""
        task = self._restarts.pop(cid, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with self._lock(cid):
            current = self._containers.get(cid)
            if current is not None and current.state.status == "restarting":
                await self._save(current.with_state(status="exited", manually_stopped=True))

    # -- stop, kill, restart, pause --------------------------------------------

    def _signal(self, c: Container, sig: str | None) -> int:
        text = sig or c.config.get("StopSignal") or "SIGTERM"
        try:
            return parse_signal(str(text))
        except ValueError as e:
            raise InvalidParameter(str(e)) from None

    async def kill(self, ref: str, sig: str | None = None) -> None:
        c = self.get(ref)
        try:
            number = parse_signal(sig) if sig else signals.SIGKILL
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if c.state.status == "restarting":
            await self._cancel_restart(c.id)
            return
        async with self._lock(c.id):
            c = self.get(c.id)
            if c.state.status not in ("running", "paused"):
                raise Conflict(f"container {c.id} is not running")
            c = await self._save(c.with_state(manually_stopped=True))
            proc = self.monitor.load(c.id)
            await proc.oci_runtime().kill(c.id, number, all=number == signals.SIGKILL)
            if c.state.status == "paused" and number == signals.SIGKILL:
                with contextlib.suppress(DaemonError):
                    await proc.oci_runtime().resume(c.id)
        self._event(c, "kill", signal=str(number))

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotModified("container already stopped")
        await self._stop(c, self._signal(c, sig), self._stop_timeout(c, timeout))
        self._event(self.get(c.id), "stop")

    @staticmethod
    def _stop_timeout(c: Container, timeout: int | None) -> int:
        """The -t given, else the container's StopTimeout, else dockerd's 10 s."""
        if timeout is not None:
            return timeout
        configured = c.config.get("StopTimeout")
        return 10 if configured is None else int(configured)

    async def _stop(self, c: Container, number: int, timeout: int) -> None:
        await self._cancel_restart(c.id)
        async with self._lock(c.id):
            current = self.get(c.id)
            await self._save(current.with_state(manually_stopped=True))
            if not current.state.running:
                return
            exited = self._exited.setdefault(c.id, asyncio.Event())
            proc = self.monitor.load(c.id)
            runtime = proc.oci_runtime()
            if current.state.status == "paused":
                with contextlib.suppress(DaemonError):
                    await runtime.resume(c.id)
            if number != signals.SIGKILL:
                with contextlib.suppress(DaemonError):
                    await runtime.kill(c.id, number)
                self._event(current, "kill", signal=str(number))
        if number != signals.SIGKILL and timeout != 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(exited.wait(), None if timeout < 0 else timeout)
                return
        async with self._lock(c.id):
            if self.get(c.id).state.running:
                with contextlib.suppress(DaemonError):
                    await runtime.kill(c.id, signals.SIGKILL, all=True)
                self._event(current, "kill", signal=str(int(signals.SIGKILL)))
        await exited.wait()

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            await self._stop(c, self._signal(c, sig), self._stop_timeout(c, timeout))
            self._event(self.get(c.id), "stop")
        async with self._lock(c.id):
            await self._start_locked(self.get(c.id))
        self._event(self.get(c.id), "restart")

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            c = self.get(c.id)
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"container {c.id} is not running")
            await self.monitor.load(c.id).oci_runtime().pause(c.id)
            c = await self._save(c.with_state(status="paused"))
        self._event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            c = self.get(c.id)
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            await self.monitor.load(c.id).oci_runtime().resume(c.id)
            c = await self._save(c.with_state(status="running"))
        self._event(c, "unpause")

    # -- wait, remove, rename -----------------------------------------------------

    def waiter(self, ref: str, condition: str) -> Callable[[], Any]:
        """Validate now; the returned coroutine function waits (after the headers went out)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f'invalid condition: "{condition}"')
        c = self.get(ref)
        exited = self._exited.setdefault(c.id, asyncio.Event())
        removed = self._removed.setdefault(c.id, asyncio.Event())
        already_stopped = not c.state.running

        async def wait() -> dict[str, Any]:
            if condition == "removed":
                await removed.wait()
            elif condition == "next-exit" or not already_stopped:
                await exited.wait()
            current = self._containers.get(c.id) or self._tombstones.get(c.id, c)
            error = {"Message": current.state.error} if current.state.error else None
            return {"StatusCode": current.state.exit_code, "Error": error}

        return wait

    async def remove(self, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.running:
            if not force:
                if c.state.status == "paused":
                    raise Conflict(f'cannot remove container "/{c.name}": container is paused '
                                   "and must be unpaused first")
                raise Conflict(f'cannot remove container "/{c.name}": container is running: '
                               "stop the container before removing or force remove")
            await self._stop(c, signals.SIGKILL, 0)
        await self._cancel_restart(c.id)
        async with self._lock(c.id):
            current = self._containers.get(c.id)
            if current is None:
                return
            c = current
            started_meanwhile = c.state.running  # by a start that held the lock
            if not started_meanwhile:
                await self._remove_locked(c, volumes)
        if started_meanwhile:
            await self.remove(c.id, force=force, volumes=volumes)  # as if running before
            return
        self._after_remove(c)

    async def _remove_locked(self, c: Container, volumes: bool) -> None:
        logrotation.discard(self, c.id)
        health.discard(self, c.id)
        await self._cleanup_runtime(c.id)
        await asyncio.to_thread(bundle.remove_state, self.state_dir(c.id))
        with contextlib.suppress(NotFound):
            await self.snapshots.remove(c.id)
        await self.db.run(lambda conn: records.delete(conn, c.id))
        del self._containers[c.id]
        if self.volumes is not None:
            await self.volumes.detach_container(c, remove_anonymous=volumes)

    def _after_remove(self, c: Container) -> None:
        self._locks.pop(c.id, None)
        self._tombstones[c.id] = c  # for `wait --condition removed`, which reads the exit code
        while len(self._tombstones) > 1024:
            del self._tombstones[next(iter(self._tombstones))]
        self._event(c, "destroy")
        removed = self._removed.pop(c.id, None)
        if removed is not None:
            removed.set()
        exited = self._exited.pop(c.id, None)
        if exited is not None:
            exited.set()
        self.images.schedule_gc()

    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        new_name = names.validate(new_name)
        if new_name == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current "
                                   "name")
        async with self._lock("create"):
            try:
                self._check_name_free(new_name)
            except Conflict as e:
                raise Conflict(f"Error when allocating new name: {e}") from None
            old = c.name
            c = await self._save(dataclasses.replace(self.get(c.id), name=new_name))
        self._event(c, "rename", oldName="/" + old)

    # -- streams -------------------------------------------------------------------

    async def attach(self, ref: str) -> tuple[Container, AttachStream | DeferredAttach]:
        """A stream of the container's stdio. When the container cannot be created in
        the runtime yet (its command is missing, say), the client still attaches, as
        with dockerd: the stream connects at the next start, or ends when it fails."""
        c = self.get(ref)
        async with self._lock(c.id):
            try:
                proc = await self._ensure_created(self.get(c.id))
            except Exception:  # start reports why; this stream connects if a start works
                pending = asyncio.get_running_loop().create_future()
                self._pending_attach.setdefault(c.id, []).append(pending)
                self._event(c, "attach")
                return c, DeferredAttach(pending)
        stream = await self.monitor.attach(proc)
        self._event(c, "attach")
        return c, stream

    async def _resolve_pending_attach(self, cid: str, proc: Process | None) -> None:
        for pending in self._pending_attach.pop(cid, []):
            if pending.done():
                continue
            stream = None
            if proc is not None:
                with contextlib.suppress(DaemonError, OSError):
                    stream = await self.monitor.attach(proc)
            pending.set_result(stream)

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        self.monitor.resize(self.monitor.load(c.id), height, width)

    def logs(self, ref: str, **options: Any) -> AsyncIterator[tuple[int, bytes, int]]:
        c = self.get(ref)
        stop = asyncio.Event()
        if not c.state.running:
            stop.set()
        else:
            exited = self._exited.setdefault(c.id, asyncio.Event())
            asyncio.get_running_loop().create_task(_relay(exited, stop))
        return runtime_logs.read_logs(self.log_dir(c.id), stop=stop, **options)

    # -- daemon start/stop -------------------------------------------------------------

    async def restore(self) -> None:
        """Load records; reattach to containers that kept running while the daemon was
        down, and record the exits that happened meanwhile."""
        await self.monitor.start()
        for c in await self.db.run(records.load_all):
            self._containers[c.id] = c
        for c in list(self._containers.values()):
            if c.state.status == "restarting":  # was waiting out its back-off: resume it
                await self._cleanup_runtime(c.id)
                self._schedule_restart(c)
                continue
            if not c.state.running:
                # A start interrupted by the crash may have left a monitor, mounts, volumes.
                await self._cleanup_runtime(c.id)
                await self._release_volumes(c)
                continue
            try:
                proc = self.monitor.load(c.id)
            except DaemonError:
                await self._on_exit(c.id, ExitStatus(255, time.time_ns(), False,
                                                     "monitor state lost"))
                continue
            self._exited.setdefault(c.id, asyncio.Event())
            self._watch(c.id, proc)  # exits that already happened resolve at once
            if c.state.status == "running":
                logrotation.register(self, c, proc)
                health.resume(self, c)
        for c in list(self._containers.values()):
            policy = (c.host_config.get("RestartPolicy") or {}).get("Name") or "no"
            if not c.state.running and (policy == "always" or (
                    policy == "unless-stopped" and not c.state.manually_stopped)):
                async with self._lock(c.id):
                    with contextlib.suppress(DaemonError):
                        await self._start_locked(self.get(c.id))

    async def close(self) -> None:
        if not self.config.live_restore:  # as dockerd: without live restore, stop them all
            await asyncio.gather(*(self._stop(c, self._signal(c, None), 10)
                                   for c in self.list() if c.state.running),
                                 return_exceptions=True)
        for task in list(self._watchers.values()) + list(self._restarts.values()):
            task.cancel()
        await self.monitor.close()


def _tree_size(root: str) -> int:
    """Bytes of regular files and symlinks under root (what dockerd counts)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


class DeferredAttach:
    """An attach stream that connects when the container is next created in the
    runtime (None: that failed, and the stream is empty)."""

    def __init__(self, pending: asyncio.Future[AttachStream | None]) -> None:
        self._pending = pending

    async def recv(self) -> tuple[int, bytes] | None:
        stream = await self._pending
        return None if stream is None else await stream.recv()

    async def send(self, data: bytes) -> None:
        stream = await self._pending
        if stream is not None:
            await stream.send(data)

    def close_stdin(self) -> None:
        if self._pending.done() and self._pending.result() is not None:
            self._pending.result().close_stdin()  # type: ignore[union-attr]

    def close(self) -> None:
        if not self._pending.done():
            self._pending.cancel()
        elif self._pending.result() is not None:
            self._pending.result().close()  # type: ignore[union-attr]


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()

