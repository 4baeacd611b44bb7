"""Containers in pods: engine containers joining their pause container's namespaces.

Logs: kubelet names the file (the pod's log_directory + the container's log_path);
conmon writes it in the CRI format (k8s-file) because the engine's log file of the
container is made a symbolic link to it before the start, so `docker logs` and
`crictl logs` read the same file and ReopenContainerLog is conmon's reopen.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import signal

from google.protobuf import json_format

from ..engine.containers.contract import Containers, Execs
from ..engine.images.service import ImageService as Images
from ..engine.runtime import logs as runtime_logs
from ..engine.runtime.contract import Supervisor
from ..errors import Conflict, InvalidParameter, NotFound, NotModified
from ..protos.cri import api_pb2 as pb
from . import lookup, meta, translate, views
from .imagevolumes import ImageVolumes
from .sandboxes import Sandboxes

EXEC_OUTPUT_LIMIT = 16 << 20  # kubelet's own cap on exec probe output


class ExecTimeout(Exception):
    pass


class PodContainers:
    def __init__(self, containers: Containers, execs: Execs, images: Images,
                 sandboxes: Sandboxes, monitor: Supervisor, volumes: ImageVolumes) -> None:
        self.containers = containers
        self.execs = execs
        self.images = images
        self.sandboxes = sandboxes
        self.monitor = monitor
        self.volumes = volumes

    async def create(self, sandbox_ref: str, cfg: pb.ContainerConfig) -> str:
        sc, sm = lookup.sandbox(self.containers, sandbox_ref)
        if not views.sandbox_ready(sc):
            raise Conflict(f"sandbox {sc.id} is not running")
        md = cfg.metadata
        if not md.name:
            raise InvalidParameter("container metadata name is required")
        if not cfg.image.image:
            raise InvalidParameter("container image is required")
        try:
            image = await self.images.resolve(cfg.image.image)
        except NotFound:
            raise NotFound(f"image {cfg.image.image!r} not found") from None
        log_path = ""
        if cfg.log_path:
            if not sm.log_directory:
                raise InvalidParameter("log_path given but the sandbox has no log_directory")
            log_path = _log_path(sm.log_directory, cfg.log_path)
        # The pod's own configuration as it was run (hostname, DNS), not the request's copy.
        pod = json_format.ParseDict(sm.extra.get("config") or {}, pb.PodSandboxConfig(),
                                    ignore_unknown_fields=True)
        ns = sm.extra.get("namespaces") or {}
        mounts = [{"container_path": x.container_path, "host_path": x.host_path,
                   "readonly": x.readonly, "propagation": x.propagation} for x in cfg.mounts]
        m = meta.Meta(kind=meta.CONTAINER, name=md.name, namespace=sm.namespace, uid=sm.uid,
                      attempt=md.attempt, labels=dict(cfg.labels),
                      annotations=dict(cfg.annotations), sandbox_id=sc.id, log_path=log_path,
                      image=cfg.image.image, extra={"mounts": mounts})
        name = meta.container_name(md.name, sm, md.attempt)
        sources: dict[int, str] = {}
        try:
            for i, x in enumerate(cfg.mounts):
                if translate.is_image_mount(x):
                    sources[i], point, ref = await self.volumes.mount(x)
                    mounts[i].update(point=point, image=x.image.image, image_ref=ref,
                                     image_sub_path=x.image_sub_path)
            body = await asyncio.to_thread(
                translate.container_body, cfg, pod, sc.id, image.id, m,
                pod_hostnet=ns.get("network") == pb.NODE,
                pod_pid=ns.get("pid", pb.POD), pod_ipc=ns.get("ipc", pb.POD),
                pod_cgroup=str(sm.extra.get("cgroup_parent") or ""), image_sources=sources)
            if sm.runtime_handler:
                body["HostConfig"]["Runtime"] = sm.runtime_handler
            c, _ = await self.containers.create(name, body)
        except BaseException:
            await asyncio.shield(self.volumes.release_of(m.extra))
            raise
        return c.id

    async def start(self, ref: str) -> None:
        c, m = lookup.container(self.containers, ref)
        if c.state.status != "created":
            raise Conflict(f"container {c.id} is in state {c.state.status}, not created")
        if m.log_path:
            await asyncio.to_thread(self._link_log, c.id, m.log_path)
        await self.containers.start(c.id)

    def _link_log(self, cid: str, log_path: str) -> None:
        os.makedirs(os.path.dirname(log_path), mode=0o755, exist_ok=True)
        engine_log = runtime_logs.log_path(self.containers.state_dir(cid))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(engine_log)
        os.symlink(log_path, engine_log)

    async def stop(self, ref: str, timeout: int) -> None:
        try:
            c, _ = lookup.container(self.containers, ref)
        except NotFound:
            return  # idempotent, as kubelet expects
        with contextlib.suppress(NotModified, NotFound):
            await self.containers.stop(c.id, max(int(timeout), 0))

    async def remove(self, ref: str) -> None:
        try:
            c, m = lookup.container(self.containers, ref)
        except NotFound:
            return
        with contextlib.suppress(NotFound):
            await self.containers.remove(c.id, force=True)
        await self.volumes.release_of(m.extra)

    def list(self, f: pb.ContainerFilter | None) -> builtins.list[pb.Container]:
        out = []
        for c, m in lookup.all_of(self.containers, meta.CONTAINER):
            if f is not None:
                if f.id and not c.id.startswith(f.id):
                    continue
                if f.pod_sandbox_id and not m.sandbox_id.startswith(f.pod_sandbox_id):
                    continue
                if f.HasField("state") and f.state.state != views.container_state(c):
                    continue
                if not lookup.labels_match(m.labels, f.label_selector):
                    continue
            out.append(views.container(c, m))
        return out

    def status(self, ref: str, verbose: bool) -> pb.ContainerStatusResponse:
        c, m = lookup.container(self.containers, ref)
        info = {}
        if verbose:
            info["info"] = json.dumps({"pid": c.state.pid, "sandboxID": m.sandbox_id,
                                       "name": c.name, "image": c.image_id,
                                       "config": {"Cmd": c.config.get("Cmd"),
                                                  "Entrypoint": c.config.get("Entrypoint"),
                                                  "User": c.config.get("User")}})
        return pb.ContainerStatusResponse(status=views.container_status(c, m), info=info)

    async def update(self, ref: str, r: pb.LinuxContainerResources) -> None:
        c, _ = lookup.container(self.containers, ref)
        await self.containers.update(c.id, translate.resources_update(r))

    async def reopen_log(self, ref: str) -> None:
        c, m = lookup.container(self.containers, ref)
        if c.state.status != "running":
            raise Conflict(f"container {c.id} is not running")
        if m.log_path:
            await asyncio.to_thread(self._reopen_log, c.id, m.log_path)

    def _reopen_log(self, cid: str, log_path: str) -> None:
        # The new file exists when the call returns (kubelet checks at once); conmon
        # reopens it, appending, when it reads the request.
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o640)
        os.close(fd)
        self.monitor.reopen_log(self.monitor.load(cid))

    async def exec_sync(self, ref: str, cmd: builtins.list[str], timeout: int
                        ) -> pb.ExecSyncResponse:
        c, _ = lookup.container(self.containers, ref)
        if not cmd:
            raise InvalidParameter("exec command is required")
        if c.state.status != "running":
            raise Conflict(f"container {c.id} is not running")
        session = self.execs.create(c.id, {"Cmd": cmd, "AttachStdout": True,
                                           "AttachStderr": True})
        stream = await self.execs.start(session.id, detach=False)
        out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}

        async def collect() -> None:
            assert stream is not None
            while (packet := await stream.recv()) is not None:
                kind, data = packet
                buf = out.get(kind)
                if buf is not None and len(buf) < EXEC_OUTPUT_LIMIT:
                    buf += data[:EXEC_OUTPUT_LIMIT - len(buf)]
            await self.execs.get(session.id).done.wait()

        try:
            await asyncio.wait_for(collect(), timeout if timeout > 0 else None)
        except TimeoutError:
            s = self.execs.get(session.id)
            if s.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGKILL)
            raise ExecTimeout(f"command {cmd!r} timed out after {timeout}s") from None
        finally:
            if stream is not None:
                stream.close()
        code = self.execs.get(session.id).exit_code
        return pb.ExecSyncResponse(stdout=bytes(out[1]), stderr=bytes(out[2]),
                                   exit_code=code if code is not None else -1)


def _log_path(directory: str, relative: str) -> str:
    if not directory.startswith("/") or "\0" in directory or "\0" in relative:
        raise InvalidParameter(f"invalid log directory {directory!r}")
    if relative.startswith("/") or ".." in relative.split("/"):
        raise InvalidParameter(f"invalid log path {relative!r}: relative to log_directory")
    return os.path.normpath(os.path.join(directory, relative))

