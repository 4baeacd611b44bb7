"""The container lifecycle: start, stop, kill, restart, pause, wait, remove, as dockerd.

The records, their locks and events are the store's (store.py), the legal
status changes the state machine's (state.py). Running containers are
conmon's (one monitor per container, which outlives the daemon) and the OCI
runtime's; the launcher puts a container into the runtime and takes it out.
Health checks and log rotation follow each container through the hooks.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import signal as signals
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from ...errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound, NotModified
from ..images.contract import Images
from ..images.mediatypes import now_rfc3339, rfc3339_nano
from ..leases import LeaseManager
from ..networks.contract import ContainerNetworking
from ..runtime.attach import AttachStream
from ..runtime.contract import RuntimeRegistry, Supervisor
from ..runtime.oci import start_failure_exit_code
from ..runtime.process import ExitStatus, Process
from ..runtime.signals import parse_signal
from ..snapshots.contract import Snapshotter
from ..timestamps import parse_time
from ..volumes.contract import ContainerVolumes
from . import bundle, layers, logdriver, names
from . import stats as stats_mod
from . import top as top_mod
from . import update as update_mod
from .attach import Attachments, DeferredAttach
from .contract import LifecycleHooks
from .create import ContainerSettings, Creator
from .launch import Launcher, SetupFailed
from .records import ZERO_TIME, Container
from .restart import Restarts, should_restart, starts_with_daemon
from .store import ContainerStore

log = logging.getLogger(__name__)

_KILL_WAIT = 10.0  # seconds dockerd waits for a SIGKILLed container to be gone


class ContainerService:
    def __init__(self, store: ContainerStore, images: Images,
                 snapshots: Snapshotter, leases: LeaseManager, volumes: ContainerVolumes,
                 networks: ContainerNetworking, runtimes: RuntimeRegistry, monitor: Supervisor,
                 settings: ContainerSettings, hooks: Sequence[LifecycleHooks] = ()) -> None:
        self.store = store
        self.images = images
        self.snapshots = snapshots
        self.volumes = volumes
        self.monitor = monitor
        self.settings = settings
        self.hooks = tuple(hooks)
        self.launcher = Launcher(store, snapshots, volumes, networks, runtimes, monitor)
        self.creator = Creator(store, images, snapshots, leases, volumes, networks, runtimes,
                               settings)
        self.attachments = Attachments(store, self.launcher, monitor)
        self._exited: dict[str, asyncio.Event] = {}    # set on each exit, then replaced
        self._removed: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self.restarts = Restarts(store, self._start_locked)
        self._tombstones: dict[str, Container] = {}   # recently removed, for waiters

    def reconfigure(self, settings: ContainerSettings) -> None:
        self.settings = self.creator.settings = settings

    # -- queries -------------------------------------------------------------

    def get(self, ref: str) -> Container:
        return self.store.get(ref)

    def list(self) -> builtins.list[Container]:
        return self.store.list()

    def state_dir(self, cid: str) -> str:
        return self.store.state_dir(cid)

    async def layer_dirs(self, c: Container) -> dict[str, str]:
        return await layers.overlay_dirs(self.snapshots, self.store.state_dir(c.id), c.id)

    async def sizes(self, c: Container) -> tuple[int, int]:
        return await layers.sizes(self.snapshots, self.images, c)

    def exit_event(self, cid: str) -> asyncio.Event:
        """Set when the container's current run ends."""
        return self._exited.setdefault(cid, asyncio.Event())

    async def top(self, ref: str, ps_args: str | None) -> dict[str, Any]:
        return await top_mod.top(self.store, self.monitor, ref, ps_args)

    def stats(self, ref: str, *, stream: bool, one_shot: bool
              ) -> AsyncGenerator[dict[str, Any], None]:
        return stats_mod.open_stats(self.store, ref, stream=stream, one_shot=one_shot)

    async def update(self, ref: str, body: Any, api_version: tuple[int, int] = (1, 50)
                     ) -> builtins.list[str] | None:
        return await update_mod.update(self.store, self.monitor, ref, body, api_version)

    # -- create ----------------------------------------------------------------

    async def create(self, name: str | None, body: dict[str, Any]
                     ) -> tuple[Container, builtins.list[str]]:
        return await self.creator.create(name, body)

    # -- start -----------------------------------------------------------------

    async def start(self, ref: str, *, netns: str | None = None) -> None:
        c = self.get(ref)
        async with self.store.lock(c.id):
            c = self.get(c.id)
            if c.state.status == "paused":
                raise Conflict("cannot start a paused container, try unpause instead")
            if c.state.running:
                raise NotModified("container already started")
            await self._start_locked(c, netns)

    async def _start_locked(self, c: Container, netns: str | None = None) -> Container:
        try:
            try:
                proc = await self.launcher.ensure_created(c, netns)
            except Exception:
                await self.attachments.resolve_pending(c.id, None)
                raise
            await self.attachments.resolve_pending(c.id, proc)
            await proc.oci_runtime().start(c.id)
        except Exception as failure:
            # OS errors (a bind source that cannot be made, a full disk) fail the start
            # the same way, with the cleanup, and reach the client as dockerd's 500.
            cause = failure.cause if isinstance(failure, SetupFailed) else failure
            e = cause if isinstance(cause, DaemonError) else InternalError(str(cause))
            await self.launcher.cleanup(c.id)
            await self.launcher.release_volumes(c)
            code = 128 if cause is not failure else start_failure_exit_code(str(e))
            status = "exited" if c.state.started_at != ZERO_TIME else "created"
            await self.store.save(c.with_state(status=status, exit_code=code, error=str(e)))
            if c.host_config.get("AutoRemove"):  # `run --rm` waits for the removal
                asyncio.get_running_loop().create_task(self._remove_quietly(c.id))
            if code in (126, 127):
                raise InvalidParameter(str(e)) from None
            raise e from None
        c = await self.store.save(c.with_state(
            status="running", pid=proc.pid, exit_code=0, error="", oom_killed=False,
            started_at=now_rfc3339(), finished_at=ZERO_TIME, manually_stopped=False))
        self.exit_event(c.id)
        self._watch(c.id, proc)
        self.store.event(c, "start")
        for hook in self.hooks:
            await hook.started(c, proc)
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

    async def _on_exit(self, cid: str, status: ExitStatus, pid: int | None = None) -> None:
        """Record an exit; pid names the process that exited (a start that won the lock
        meanwhile runs a new one, whose exit this is not)."""
        if self.store.find(cid) is None:
            return
        async with self.store.lock(cid):
            c = self.store.find(cid)
            if c is None or not c.state.running or (pid is not None and c.state.pid != pid):
                return
            await self.launcher.cleanup(cid)
            await self.launcher.release_volumes(c)
            started = c.state.started_at
            c = await self.store.save(c.with_state(
                status="exited", pid=0, exit_code=status.code, oom_killed=status.oom_killed,
                error=status.error, finished_at=rfc3339_nano(status.finished_at)))
            if status.oom_killed:
                self.store.event(c, "oom")
            self.store.event(c, "die", exitCode=str(status.code),
                        execDuration=str(int(time.time() - parse_time(started))))
            for hook in self.hooks:
                await hook.exited(cid)
            event = self._exited.pop(cid, None)
            if event is not None:
                event.set()
        if c.host_config.get("AutoRemove"):
            await self._remove_quietly(cid)
            return
        if should_restart(c):
            async with self.store.lock(cid):
                current = self.store.find(cid)
                if current is not None and current.state.status == "exited":
                    await self.store.save(current.with_state(status="restarting"))
                    self.restarts.schedule(current)

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
            await self.restarts.cancel(c.id)
            return
        async with self.store.lock(c.id):
            c = self.get(c.id)
            if c.state.status not in ("running", "paused"):
                raise Conflict(f"container {c.id} is not running")
            c = await self.store.save(c.with_state(manually_stopped=True))
            exited = self.exit_event(c.id)
            proc = self.monitor.load(c.id)
            await proc.oci_runtime().kill(c.id, number, all=number == signals.SIGKILL)
            if c.state.status == "paused" and number == signals.SIGKILL:
                with contextlib.suppress(DaemonError):
                    await proc.oci_runtime().resume(c.id)
        self.store.event(c, "kill", signal=str(number))
        if number == signals.SIGKILL:  # as dockerd: a kill returns once the container is dead
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.wait(), _KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotModified("container already stopped")
        await self._stop(c, self._signal(c, sig), self._stop_timeout(c, timeout))
        self.store.event(self.get(c.id), "stop")

    @staticmethod
    def _stop_timeout(c: Container, timeout: int | None) -> int:
        """The -t given, else the container's StopTimeout, else dockerd's 10 s."""
        if timeout is not None:
            return timeout
        configured = c.config.get("StopTimeout")
        return 10 if configured is None else int(configured)

    async def _stop(self, c: Container, number: int, timeout: int) -> None:
        await self.restarts.cancel(c.id)
        async with self.store.lock(c.id):
            current = self.get(c.id)
            await self.store.save(current.with_state(manually_stopped=True))
            if not current.state.running:
                return
            exited = self.exit_event(c.id)
            proc = self.monitor.load(c.id)
            runtime = proc.oci_runtime()
            if current.state.status == "paused":
                with contextlib.suppress(DaemonError):
                    await runtime.resume(c.id)
            if number != signals.SIGKILL:
                with contextlib.suppress(DaemonError):
                    await runtime.kill(c.id, number)
                self.store.event(current, "kill", signal=str(number))
        if number != signals.SIGKILL and timeout != 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(exited.wait(), None if timeout < 0 else timeout)
                return
        async with self.store.lock(c.id):
            if self.get(c.id).state.running:
                with contextlib.suppress(DaemonError):
                    await runtime.kill(c.id, signals.SIGKILL, all=True)
                self.store.event(current, "kill", signal=str(int(signals.SIGKILL)))
        await exited.wait()

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        if c.state.running:
            await self._stop(c, self._signal(c, sig), self._stop_timeout(c, timeout))
            self.store.event(self.get(c.id), "stop")
        async with self.store.lock(c.id):
            await self._start_locked(self.get(c.id))
        self.store.event(self.get(c.id), "restart")

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.store.lock(c.id):
            c = self.get(c.id)
            if c.state.status == "paused":
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != "running":
                raise Conflict(f"container {c.id} is not running")
            await self.monitor.load(c.id).oci_runtime().pause(c.id)
            c = await self.store.save(c.with_state(status="paused"))
        self.store.event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.store.lock(c.id):
            c = self.get(c.id)
            if c.state.status != "paused":
                raise Conflict(f"Container {c.id} is not paused")
            await self.monitor.load(c.id).oci_runtime().resume(c.id)
            c = await self.store.save(c.with_state(status="running"))
        self.store.event(c, "unpause")

    # -- wait, remove, rename -----------------------------------------------------

    def waiter(self, ref: str, condition: str) -> Callable[[], Any]:
        """Validate now; the returned coroutine function waits (after the headers went out)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f'invalid condition: "{condition}"')
        c = self.get(ref)
        exited = self.exit_event(c.id)
        removed = self._removed.setdefault(c.id, asyncio.Event())
        already_stopped = not c.state.running

        async def wait() -> dict[str, Any]:
            if condition == "removed":
                await removed.wait()
            elif condition == "next-exit" or not already_stopped:
                await exited.wait()
            current = self.store.find(c.id) or self._tombstones.get(c.id, c)
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
        await self.restarts.cancel(c.id)
        async with self.store.lock(c.id):
            current = self.store.find(c.id)
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
        for hook in self.hooks:
            hook.removed(c.id)
        await self.launcher.cleanup(c.id)
        await asyncio.to_thread(bundle.remove_state, self.store.state_dir(c.id))
        with contextlib.suppress(NotFound):
            await self.snapshots.remove(c.id)
        await self.store.delete(c.id)
        await self.volumes.detach_container(c, remove_anonymous=volumes)

    def _after_remove(self, c: Container) -> None:
        self.store.forget_lock(c.id)
        self._tombstones[c.id] = c  # for `wait --condition removed`, which reads the exit code
        while len(self._tombstones) > 1024:
            del self._tombstones[next(iter(self._tombstones))]
        self.store.event(c, "destroy")
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
        async with self.store.lock("create"):
            try:
                self.store.check_name_free(new_name)
            except Conflict as e:
                raise Conflict(f"Error when allocating new name: {e}") from None
            old = c.name
            c = await self.store.save(dataclasses.replace(self.get(c.id), name=new_name))
        self.store.event(c, "rename", oldName="/" + old)

    # -- streams -------------------------------------------------------------------

    async def attach(self, ref: str, *, live: bool = True
                     ) -> tuple[Container, AttachStream | DeferredAttach | None]:
        """A stream of the container's stdio (see attach.py)."""
        return await self.attachments.attach(ref, live=live)

    def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        self.monitor.resize(self.monitor.load(c.id), height, width)

    def logs(self, ref: str, **options: Any) -> AsyncIterator[tuple[int, bytes, int]]:
        c = self.get(ref)
        stop = asyncio.Event()
        messages = logdriver.read(c, self.store.log_dir(c.id), stop, **options)
        if not c.state.running:
            stop.set()
        else:
            asyncio.get_running_loop().create_task(_relay(self.exit_event(c.id), stop))
        return messages

    # -- daemon start/stop -------------------------------------------------------------

    async def restore(self) -> None:
        """Load records; reattach to containers that kept running while the daemon was
        down, and record the exits that happened meanwhile."""
        await self.monitor.start()
        for c in await self.store.load():
            if c.state.status == "restarting":  # was waiting out its back-off: resume it
                await self.launcher.cleanup(c.id)
                self.restarts.schedule(c)
                continue
            if not c.state.running:
                # A start interrupted by the crash may have left a monitor, mounts, volumes.
                await self.launcher.cleanup(c.id)
                await self.launcher.release_volumes(c)
                continue
            try:
                proc = self.monitor.load(c.id)
            except DaemonError:
                await self._on_exit(c.id, ExitStatus(255, time.time_ns(), False,
                                                     "monitor state lost"))
                continue
            self.exit_event(c.id)
            self._watch(c.id, proc)  # exits that already happened resolve at once
            if c.state.status == "running":
                for hook in self.hooks:
                    hook.restored(c, proc)
        for c in reversed(self.store.list()):
            if starts_with_daemon(c):
                async with self.store.lock(c.id):
                    with contextlib.suppress(DaemonError):
                        await self._start_locked(self.get(c.id))

    async def close(self) -> None:
        if not self.settings.live_restore:  # as dockerd: without live restore, stop them all
            await asyncio.gather(*(self._stop(c, self._signal(c, None), 10)
                                   for c in self.list() if c.state.running),
                                 return_exceptions=True)
        for task in list(self._watchers.values()):
            task.cancel()
        self.restarts.close()
        await self.monitor.close()


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()

