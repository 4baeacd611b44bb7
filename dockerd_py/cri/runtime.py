"""runtime.v1.RuntimeService: status and configuration, and the verbs of pods and
containers (sandboxes.py, containers.py, stats.py do the work)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from ..engine.containers.contract import Containers
from ..engine.events import EventBus
from ..errors import DaemonError
from ..protos.cri import api_pb2 as pb
from ..protos.cri import api_pb2_grpc as rpc_pb
from ..version import VERSION
from . import lookup, meta, views
from .containers import ExecTimeout, PodContainers
from .errors import Context, rpc
from .sandboxes import Sandboxes
from .stats import Stats
from .streams import Streams

RUNTIME_NAME = "dockerd-py"
CRI_API_VERSION = "v1"
_EVENTS = {"create": pb.CONTAINER_CREATED_EVENT, "start": pb.CONTAINER_STARTED_EVENT,
           "die": pb.CONTAINER_STOPPED_EVENT, "destroy": pb.CONTAINER_DELETED_EVENT}


class RuntimeServicer(rpc_pb.RuntimeServiceServicer):
    def __init__(self, containers: Containers, sandboxes: Sandboxes, pods: PodContainers,
                 stats: Stats, events: EventBus, streams: Streams,
                 handlers: list[str]) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.pods = pods
        self.stats = stats
        self.events = events
        self.streams = streams
        self.handlers = handlers

    # -- the runtime

    @rpc
    async def Version(self, request: pb.VersionRequest, context: Context
                      ) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name=RUNTIME_NAME,
                                  runtime_version=VERSION, runtime_api_version=CRI_API_VERSION)

    @rpc
    async def Status(self, request: pb.StatusRequest, context: Context
                     ) -> pb.StatusResponse:
        problem = await self.sandboxes.networks.status()
        conditions = [
            pb.RuntimeCondition(type="RuntimeReady", status=True),
            pb.RuntimeCondition(type="NetworkReady", status=problem is None,
                                reason="" if problem is None else "NetworkPluginNotReady",
                                message=problem or ""),
        ]
        handlers = [pb.RuntimeHandler(name=h, features=pb.RuntimeHandlerFeatures())
                    for h in ["", *self.handlers]]
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions),
                                 runtime_handlers=handlers, features=pb.RuntimeFeatures())

    @rpc
    async def RuntimeConfig(self, request: pb.RuntimeConfigRequest,
                            context: Context) -> pb.RuntimeConfigResponse:
        return pb.RuntimeConfigResponse(
            linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))

    @rpc
    async def UpdateRuntimeConfig(self, request: pb.UpdateRuntimeConfigRequest,
                                  context: Context
                                  ) -> pb.UpdateRuntimeConfigResponse:
        # The pod CIDR goes to the CNI configuration (a template, as containerd's).
        cidr = request.runtime_config.network_config.pod_cidr
        if cidr:
            await asyncio.to_thread(self.sandboxes.networks.update_pod_cidr, cidr)
        return pb.UpdateRuntimeConfigResponse()

    # -- pod sandboxes

    @rpc
    async def RunPodSandbox(self, request: pb.RunPodSandboxRequest,
                            context: Context) -> pb.RunPodSandboxResponse:
        sid = await self.sandboxes.run(request.config, request.runtime_handler)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sid)

    @rpc
    async def StopPodSandbox(self, request: pb.StopPodSandboxRequest,
                             context: Context) -> pb.StopPodSandboxResponse:
        await self.sandboxes.stop(request.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    @rpc
    async def RemovePodSandbox(self, request: pb.RemovePodSandboxRequest,
                               context: Context
                               ) -> pb.RemovePodSandboxResponse:
        await self.sandboxes.remove(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    @rpc
    async def PodSandboxStatus(self, request: pb.PodSandboxStatusRequest,
                               context: Context
                               ) -> pb.PodSandboxStatusResponse:
        return self.sandboxes.status(request.pod_sandbox_id, request.verbose)

    @rpc
    async def ListPodSandbox(self, request: pb.ListPodSandboxRequest,
                             context: Context) -> pb.ListPodSandboxResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListPodSandboxResponse(items=self.sandboxes.list(f))

    # -- containers

    @rpc
    async def CreateContainer(self, request: pb.CreateContainerRequest,
                              context: Context) -> pb.CreateContainerResponse:
        cid = await self.pods.create(request.pod_sandbox_id, request.config)
        return pb.CreateContainerResponse(container_id=cid)

    @rpc
    async def StartContainer(self, request: pb.StartContainerRequest,
                             context: Context) -> pb.StartContainerResponse:
        await self.pods.start(request.container_id)
        return pb.StartContainerResponse()

    @rpc
    async def StopContainer(self, request: pb.StopContainerRequest,
                            context: Context) -> pb.StopContainerResponse:
        await self.pods.stop(request.container_id, request.timeout)
        return pb.StopContainerResponse()

    @rpc
    async def RemoveContainer(self, request: pb.RemoveContainerRequest,
                              context: Context) -> pb.RemoveContainerResponse:
        await self.pods.remove(request.container_id)
        return pb.RemoveContainerResponse()

    @rpc
    async def ListContainers(self, request: pb.ListContainersRequest,
                             context: Context) -> pb.ListContainersResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListContainersResponse(containers=self.pods.list(f))

    @rpc
    async def ContainerStatus(self, request: pb.ContainerStatusRequest,
                              context: Context) -> pb.ContainerStatusResponse:
        return self.pods.status(request.container_id, request.verbose)

    @rpc
    async def UpdateContainerResources(self, request: pb.UpdateContainerResourcesRequest,
                                       context: Context
                                       ) -> pb.UpdateContainerResourcesResponse:
        await self.pods.update(request.container_id, request.linux)
        return pb.UpdateContainerResourcesResponse()

    @rpc
    async def ReopenContainerLog(self, request: pb.ReopenContainerLogRequest,
                                 context: Context
                                 ) -> pb.ReopenContainerLogResponse:
        await self.pods.reopen_log(request.container_id)
        return pb.ReopenContainerLogResponse()

    @rpc
    async def ExecSync(self, request: pb.ExecSyncRequest, context: Context
                       ) -> pb.ExecSyncResponse:
        try:
            return await self.pods.exec_sync(request.container_id, list(request.cmd),
                                             request.timeout)
        except ExecTimeout as e:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(e))
            raise

    # -- streaming: URLs of the streaming server

    @rpc
    async def Exec(self, request: pb.ExecRequest, context: Context
                   ) -> pb.ExecResponse:
        c, _ = lookup.container(self.containers, request.container_id)
        return pb.ExecResponse(url=self.streams.exec(c, request))

    @rpc
    async def Attach(self, request: pb.AttachRequest, context: Context
                     ) -> pb.AttachResponse:
        c, _ = lookup.container(self.containers, request.container_id)
        return pb.AttachResponse(url=self.streams.attach(c, request))

    @rpc
    async def PortForward(self, request: pb.PortForwardRequest,
                          context: Context) -> pb.PortForwardResponse:
        c, _ = lookup.sandbox(self.containers, request.pod_sandbox_id)
        return pb.PortForwardResponse(url=self.streams.port_forward(c, list(request.port)))

    # -- statistics

    @rpc
    async def ContainerStats(self, request: pb.ContainerStatsRequest,
                             context: Context) -> pb.ContainerStatsResponse:
        return pb.ContainerStatsResponse(stats=await self.stats.one(request.container_id))

    @rpc
    async def ListContainerStats(self, request: pb.ListContainerStatsRequest,
                                 context: Context
                                 ) -> pb.ListContainerStatsResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListContainerStatsResponse(stats=await self.stats.list(f))

    @rpc
    async def PodSandboxStats(self, request: pb.PodSandboxStatsRequest,
                              context: Context) -> pb.PodSandboxStatsResponse:
        c, m = lookup.sandbox(self.containers, request.pod_sandbox_id)
        return pb.PodSandboxStatsResponse(stats=await self.stats.pod(c, m))

    @rpc
    async def ListPodSandboxStats(self, request: pb.ListPodSandboxStatsRequest,
                                  context: Context
                                  ) -> pb.ListPodSandboxStatsResponse:
        f = request.filter if request.HasField("filter") else None
        return pb.ListPodSandboxStatsResponse(stats=await self.stats.pods(f))

    # -- events

    async def GetContainerEvents(self, request: pb.GetEventsRequest,
                                 context: Context
                                 ) -> AsyncIterator[pb.ContainerEventResponse]:
        q = self.events.subscribe()
        try:
            while (ev := await q.get()) is not None:
                kind = _EVENTS.get(ev.action)
                if ev.type != "container" or kind is None:
                    continue
                if ev.attributes.get(meta.KIND) != meta.CONTAINER:
                    continue
                yield self._event(ev.actor_id, kind, ev.time_nano)
        finally:
            self.events.unsubscribe(q)

    def _event(self, cid: str, kind: int, when: int) -> pb.ContainerEventResponse:
        out = pb.ContainerEventResponse(container_id=cid, container_event_type=kind,  # type: ignore[arg-type]
                                        created_at=when)
        try:
            c, m = lookup.container(self.containers, cid)
        except DaemonError:  # gone already (destroy): the ID is all there is
            return out
        out.containers_statuses.append(views.container_status(c, m))
        try:
            sc, sm = lookup.sandbox(self.containers, m.sandbox_id)
        except DaemonError:
            return out
        out.pod_sandbox_status.CopyFrom(views.sandbox_status(
            sc, sm, self.sandboxes.networks.ips(sc.id)))
        return out
