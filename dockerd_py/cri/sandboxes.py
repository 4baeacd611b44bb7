"""Pod sandboxes: a pause container holding the pod's namespaces, and its network."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import time

from google.protobuf import json_format

from ..distribution.service import DistributionService
from ..engine.aio import run_all
from ..engine.containers.contract import Containers
from ..engine.containers.records import Container
from ..engine.images.service import ImageService as Images
from ..errors import DaemonError, InvalidParameter, NotFound, NotModified
from ..protos.cri import api_pb2 as pb
from . import lookup, meta, translate, views
from .imagevolumes import ImageVolumes
from .network import Pod, PodNetworks, PortMapping

log = logging.getLogger("dockerd_py.cri")

_PROTOCOLS = {pb.TCP: "tcp", pb.UDP: "udp", pb.SCTP: "sctp"}
STOP_TIMEOUT = 10


class Sandboxes:
    def __init__(self, containers: Containers, images: Images,
                 distribution: DistributionService, networks: PodNetworks,
                 volumes: ImageVolumes, sandbox_image: str) -> None:
        self.containers = containers
        self.images = images
        self.distribution = distribution
        self.networks = networks
        self.volumes = volumes
        self.sandbox_image = sandbox_image
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, sid: str) -> asyncio.Lock:
        return self._locks.setdefault(sid, asyncio.Lock())

    async def _pause_image(self) -> str:
        try:
            return (await self.images.resolve(self.sandbox_image)).id
        except NotFound:
            return (await self.distribution.pull(self.sandbox_image)).id

    async def run(self, cfg: pb.PodSandboxConfig, handler: str) -> str:
        md = cfg.metadata
        if not md.name or not md.namespace or not md.uid:
            raise InvalidParameter("sandbox metadata needs name, namespace and uid")
        ns = translate.pod_namespaces(cfg)
        m = meta.Meta(kind=meta.SANDBOX, name=md.name, namespace=md.namespace, uid=md.uid,
                      attempt=md.attempt, labels=dict(cfg.labels),
                      annotations=dict(cfg.annotations), log_directory=cfg.log_directory,
                      runtime_handler=handler,
                      extra={"namespaces": {"network": ns.network, "pid": ns.pid,
                                            "ipc": ns.ipc},
                             "cgroup_parent": cfg.linux.cgroup_parent,
                             "config": json_format.MessageToDict(cfg)})
        name = meta.sandbox_name(md.name, md.namespace, md.uid, md.attempt)
        body = await asyncio.to_thread(translate.sandbox_body, cfg, await self._pause_image(),
                                       m)
        if handler:
            body["HostConfig"]["Runtime"] = handler
        c, _ = await self.containers.create(name, body)
        try:
            async with self.lock(c.id):
                if translate.host_network(cfg):
                    await self.containers.start(c.id)
                    return c.id
                ports = tuple(PortMapping(_PROTOCOLS.get(p.protocol, "tcp"),
                                          p.container_port, p.host_port, p.host_ip)
                              for p in cfg.port_mappings)
                d = cfg.dns_config
                dns = (tuple(d.servers), tuple(d.searches), tuple(d.options))
                pod = Pod(c.id, md.name, md.namespace, md.uid, "", ports, dns)
                # The namespace first; then the pause container joins it while the CNI
                # plugins set it up: neither needs the other (containerd runs the CNI ADD
                # before the sandbox container exists).
                path = await self.networks.create_netns(pod)
                await run_all(self.containers.start(c.id, netns=path), self.networks.setup(pod))
        except BaseException:
            await asyncio.shield(self._remove(c.id))
            raise
        return c.id

    async def stop(self, ref: str) -> None:
        try:
            c, _ = lookup.sandbox(self.containers, ref)
        except NotFound:
            return  # stopping what is gone succeeds, as kubelet expects
        async with self.lock(c.id):
            for cc, _ in self.members(c.id):
                with contextlib.suppress(NotFound, NotModified):
                    await self.containers.stop(cc.id, 0)
            await self.networks.teardown(c.id)
            with contextlib.suppress(NotFound, NotModified):
                await self.containers.stop(c.id, STOP_TIMEOUT)

    async def remove(self, ref: str) -> None:
        try:
            c, _ = lookup.sandbox(self.containers, ref)
        except NotFound:
            # Removing what is gone succeeds, as kubelet expects; a pause container
            # removed behind the CRI's back (`docker rm -f`) still has its network and
            # containers to take apart.
            if ref in self.networks.known() or self.members(ref):
                async with self.lock(ref):
                    await self._remove(ref)
            return
        async with self.lock(c.id):
            await self._remove(c.id)
        self._locks.pop(c.id, None)

    async def _remove(self, sid: str) -> None:
        for cc, mm in self.members(sid):
            with contextlib.suppress(NotFound):
                await self.containers.remove(cc.id, force=True)
            await self.volumes.release_of(mm.extra)
        await self.networks.teardown(sid)
        with contextlib.suppress(NotFound):
            await self.containers.remove(sid, force=True)

    def members(self, sid: str) -> list[tuple[Container, meta.Meta]]:
        return lookup.members(self.containers, sid)

    def status(self, ref: str, verbose: bool) -> pb.PodSandboxStatusResponse:
        c, m = lookup.sandbox(self.containers, ref)
        status = views.sandbox_status(c, m, self.networks.ips(c.id))
        info = {}
        if verbose:
            info["info"] = json.dumps({
                "pid": c.state.pid, "image": self.sandbox_image,
                "netnsPath": self.networks.netns_path(c.id)
                if m.extra.get("namespaces", {}).get("network") != pb.NODE else "",
                "config": m.extra.get("config") or {}})
        # With its containers' statuses, as kubelet's evented PLEG reads them.
        members = [views.container_status(cc, mm) for cc, mm in self.members(c.id)]
        return pb.PodSandboxStatusResponse(status=status, info=info,
                                           containers_statuses=members,
                                           timestamp=time.time_ns())

    def list(self, f: pb.PodSandboxFilter | None) -> builtins.list[pb.PodSandbox]:
        out = []
        for c, m in lookup.all_of(self.containers, meta.SANDBOX):
            if f is not None:
                if f.id and not c.id.startswith(f.id):
                    continue
                if f.HasField("state") and f.state.state != views.sandbox_state(c):
                    continue
                if not lookup.labels_match(m.labels, f.label_selector):
                    continue
            out.append(views.sandbox(c, m))
        return out


async def recover(sandboxes: Sandboxes) -> None:
    """At start-up: the networks and image volumes of pods and containers removed behind
    the CRI's back (`docker rm -f` of a pause container) go."""
    pods = lookup.all_of(sandboxes.containers, meta.SANDBOX)
    for c, m in pods:
        hostnet = (m.extra.get("namespaces") or {}).get("network") == pb.NODE
        if views.sandbox_ready(c) and not hostnet and not sandboxes.networks.complete(c.id):
            # The daemon died while the pod's network was being set up: the pod is not
            # ready (kubelet makes a new one), as containerd marks it.
            log.warning("CRI: pod %s has no complete network; stopping it", c.id)
            with contextlib.suppress(DaemonError):
                await sandboxes.containers.stop(c.id, 0)
    live = {c.id for c, _ in pods}
    for sid in sandboxes.networks.known() - live:
        try:
            await sandboxes.networks.teardown(sid)
        except DaemonError as e:
            log.warning("CRI: tearing down the network of removed pod %s: %s", sid, e)
    await sweep_image_volumes(sandboxes)


async def sweep_image_volumes(sandboxes: Sandboxes) -> None:
    keep = {str(x["point"]) for _, m in lookup.all_of(sandboxes.containers, meta.CONTAINER)
            for x in m.extra.get("mounts") or () if x.get("point")}
    await sandboxes.volumes.sweep(keep)
