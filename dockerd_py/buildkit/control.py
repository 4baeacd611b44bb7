"""BuildKit's Control service (moby.buildkit.v1.Control) over our builder.

Solve runs a Dockerfile build through a Solver (frontend.py) with the client's
session; Status streams its progress; ListWorkers and Info describe the one
worker (this daemon, its platform); DiskUsage and Prune work on the same build
cache as `POST /build/prune` and `docker system df`. The build history API is
not implemented, as in dockerd 20.10: buildx then runs without it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from builder.service import CacheRecord
from dockerd_py.engine.images.platform import ARCH, OS
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.errors import (
    Conflict,
    DaemonError,
    InvalidParameter,
    NotFound,
    NotImplementedByDaemon,
)
from dockerd_py.protos.buildkit.control import control_pb2 as pb
from dockerd_py.protos.buildkit.control import control_pb2_grpc as pb_grpc
from dockerd_py.protos.buildkit.control import ops_pb2, worker_pb2
from dockerd_py.version import VERSION

from .builds import Build, BuildResult, Builds, ReturnedError
from .cacheopts import cache_options
from .frontend import DOCKERFILE_FRONTEND
from .sessions import SessionRegistry
from .status import Jobs, Progress

log = logging.getLogger(__name__)

BUILDKIT_PACKAGE = "github.com/moby/buildkit"
BUILDKIT_VERSION = f"v0.12.5+{VERSION}"   # the BuildKit API level whose calls we serve
CLIENT_LLB_REFUSED = ("LLB definitions sent by the client (buildx bake with its own "
                      "definitions, custom frontends) are not supported: this daemon builds "
                      "Dockerfiles only")


def host_platform() -> tuple[str, str]:
    """(os, architecture) as OCI names them."""
    return OS, ARCH


class Solver(Protocol):
    """The Dockerfile frontend and the exporters over our builder."""

    async def solve(self, attrs: Mapping[str, str], build: Build) -> BuildResult:
        """Run the Dockerfile build the frontend attributes describe."""

    async def export(self, result: BuildResult, build: Build) -> dict[str, str]:
        """Run the request's exporters; returns the exporter response."""

    def check_exporters(self, exporters: list[pb.Exporter]) -> None:
        """Refuse exporters (types, attributes) that are not supported, before building."""

    async def prune(self) -> None:
        """Drop what the solver keeps between builds (the clients' directories)."""


class Cache(Protocol):
    """The build cache (builder/service.py's BuildService)."""

    async def usage(self) -> list[CacheRecord]: ...

    async def prune(self, *, all: bool = False, keep_storage: int = 0,
                    until: float | None = None) -> tuple[list[str], int]: ...


def cache_id(key: str) -> str:
    """Cache record IDs are 25 characters, as BuildKit's (and POST /build/prune's)."""
    return key.removeprefix("sha256:")[:25]


def _timestamp(text: str) -> Timestamp:
    ts = Timestamp()
    try:
        ts.FromNanoseconds(int(parse_time(text) * 1e9))
    except (ValueError, TypeError):
        pass
    return ts


def usage_records(records: list[CacheRecord]) -> list[pb.UsageRecord]:
    by_image = {r.entry.image_id: r.entry.key for r in records}
    out = []
    for r in records:
        parent = by_image.get(r.entry.parent)
        out.append(pb.UsageRecord(
            ID=cache_id(r.entry.key), Mutable=False, InUse=r.in_use, Size=r.size,
            CreatedAt=_timestamp(r.entry.created), LastUsedAt=_timestamp(r.entry.last_used),
            UsageCount=r.entry.usage_count, Description=r.entry.description,
            RecordType="regular", Shared=r.shared,
            Parents=[cache_id(parent)] if parent else []))
    return out


def _filters(raw: list[str] | Any) -> list[str]:
    """BuildKit's client joins its filters into one comma-separated string ("" for none)."""
    return [f for item in raw for f in item.split(",") if f.strip()]


def grpc_code(e: DaemonError) -> grpc.StatusCode:
    if isinstance(e, InvalidParameter):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(e, NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(e, Conflict):
        return grpc.StatusCode.ALREADY_EXISTS
    if isinstance(e, NotImplementedByDaemon):
        return grpc.StatusCode.UNIMPLEMENTED
    return grpc.StatusCode.UNKNOWN


class Control(pb_grpc.ControlServicer):
    def __init__(self, solver: Solver, cache: Cache, sessions: SessionRegistry) -> None:
        self.solver = solver
        self.cache = cache
        self.sessions = sessions
        self.jobs = Jobs()
        self.builds = Builds()
        self._worker_id = socket.gethostname()

    def _version(self) -> worker_pb2.BuildkitVersion:
        return worker_pb2.BuildkitVersion(package=BUILDKIT_PACKAGE, version=BUILDKIT_VERSION,
                                          revision=VERSION)

    async def Info(self, request: pb.InfoRequest,
                   context: grpc.aio.ServicerContext[pb.InfoRequest, pb.InfoResponse],
                   ) -> pb.InfoResponse:
        return pb.InfoResponse(buildkitVersion=self._version())

    async def ListWorkers(
            self, request: pb.ListWorkersRequest,
            context: grpc.aio.ServicerContext[pb.ListWorkersRequest, pb.ListWorkersResponse],
    ) -> pb.ListWorkersResponse:
        return pb.ListWorkersResponse(record=[self.worker()])

    def worker(self) -> worker_pb2.WorkerRecord:
        """The one worker: this daemon, its platform."""
        os_name, arch = host_platform()
        # no "org.mobyproject.buildkit.worker.snapshotter" label: buildx reads it as the
        # containerd image store, which would make it offer the OCI/docker exporters
        worker = worker_pb2.WorkerRecord(
            ID=self._worker_id,
            Labels={"org.mobyproject.buildkit.worker.executor": "oci",
                    "org.mobyproject.buildkit.worker.hostname": self._worker_id,
                    "org.mobyproject.buildkit.worker.network": "host",
                    "org.mobyproject.buildkit.worker.moby.host-gateway-ips": ""},
            platforms=[ops_pb2.Platform(OS=os_name, Architecture=arch)],
            BuildkitVersion=self._version())
        return worker

    async def DiskUsage(
            self, request: pb.DiskUsageRequest,
            context: grpc.aio.ServicerContext[pb.DiskUsageRequest, pb.DiskUsageResponse],
    ) -> pb.DiskUsageResponse:
        if _filters(request.filter):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "filters are not supported by this builder's disk usage")
        return pb.DiskUsageResponse(record=usage_records(await self.cache.usage()))

    async def Prune(self, request: pb.PruneRequest,
                    context: grpc.aio.ServicerContext[pb.PruneRequest, pb.UsageRecord],
                    ) -> AsyncIterator[pb.UsageRecord]:
        if _filters(request.filter):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "filters are not supported by this builder's prune")
        if request.minFreeSpace or request.maxUsedSpace:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "max-used-space and min-free-space are not supported; "
                                "use reserved-space (keep-storage)")
        until = None
        if request.keepDuration:
            until = time.time() - request.keepDuration / 1e9
        before = {cache_id(r.entry.key): r for r in await self.cache.usage()}
        ids, _ = await self.cache.prune(all=request.all, keep_storage=request.reservedSpace,
                                        until=until)
        if request.all:
            await self.solver.prune()
        for pruned in usage_records([before[i] for i in ids if i in before]):
            yield pruned

    async def ListenBuildHistory(
            self, request: pb.BuildHistoryRequest,
            context: grpc.aio.ServicerContext[pb.BuildHistoryRequest, pb.BuildHistoryEvent],
    ) -> AsyncIterator[pb.BuildHistoryEvent]:
        # As dockerd 20.10's BuildKit (no history API): buildx then keeps no build records
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "build history is not supported")
        yield pb.BuildHistoryEvent()  # type: ignore[unreachable]  # makes it a generator

    async def UpdateBuildHistory(
            self, request: pb.UpdateBuildHistoryRequest,
            context: grpc.aio.ServicerContext[pb.UpdateBuildHistoryRequest,
                                              pb.UpdateBuildHistoryResponse],
    ) -> pb.UpdateBuildHistoryResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "build history is not supported")
        raise AssertionError  # abort() raises

    async def Session(self, request_iterator: AsyncIterator[pb.BytesMessage],
                      context: grpc.aio.ServicerContext[pb.BytesMessage, pb.BytesMessage],
                      ) -> AsyncIterator[pb.BytesMessage]:
        # sessions come through POST /session (the client's session dialer), as dockerd's
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "sessions over the control API are not supported: use POST "
                            "/session")
        yield pb.BytesMessage()  # type: ignore[unreachable]  # makes it a generator

    async def Status(self, request: pb.StatusRequest,
                     context: grpc.aio.ServicerContext[pb.StatusRequest, pb.StatusResponse],
                     ) -> AsyncIterator[pb.StatusResponse]:
        job = await self.jobs.get(request.Ref)
        if job is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no such job {request.Ref}")
        async for message in job.follow():
            yield message

    async def Solve(self, request: pb.SolveRequest,
                    context: grpc.aio.ServicerContext[pb.SolveRequest, pb.SolveResponse],
                    ) -> pb.SolveResponse:
        try:
            job = await self.jobs.start(request.Ref)
        except ValueError as e:
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, str(e))
            raise AssertionError from None  # abort() raises
        progress = Progress(job)
        log.debug("solve %s: frontend %r, cache %s, exporters %s", request.Ref,
                  request.Frontend, request.Cache,
                  [(e.Type, dict(e.Attrs)) for e in request.Exporters])
        # registered first: the client's gateway calls for this ref find it even when the
        # request is refused, and end at once with its error
        build = Build(request, progress)
        await self.builds.add(build)
        try:
            self._check(request)
            cache = cache_options(request.Cache)
            build.cache_from, build.inline_cache = cache.imports, cache.inline
            if request.Session:
                build.session = await self.sessions.get(request.Session)
            build.ready.set()
            response = await self._solve(build)
            await progress.complete_open()
        except ReturnedError as e:
            build.end(e.message)
            await progress.fail_open(e.message)
            await context.abort(e.code, e.message)
            raise AssertionError from None
        except DaemonError as e:
            build.end(str(e))
            await progress.fail_open(str(e))
            await context.abort(grpc_code(e), str(e))
            raise AssertionError from None
        except asyncio.CancelledError:
            build.end("context canceled")
            await progress.fail_open("context canceled")
            raise
        except Exception as e:
            log.exception("solve %s failed", request.Ref)
            build.end(str(e) or type(e).__name__)
            await progress.fail_open(str(e))
            await context.abort(grpc.StatusCode.UNKNOWN, str(e) or type(e).__name__)
            raise AssertionError from None
        finally:
            build.end("the build is over")
            await self.builds.remove(build)
            await self.jobs.end(job)
        return pb.SolveResponse(ExporterResponse=response)

    def _check(self, request: pb.SolveRequest) -> None:
        """What this daemon refuses, before anything runs."""
        if getattr(request.Definition, "def"):  # "def" is a Python keyword
            raise NotImplementedByDaemon(CLIENT_LLB_REFUSED)
        if request.Frontend not in ("", DOCKERFILE_FRONTEND):
            raise NotImplementedByDaemon(f"frontend {request.Frontend[:80]!r} is not "
                                         f"supported; only {DOCKERFILE_FRONTEND}")
        if request.FrontendInputs:
            raise NotImplementedByDaemon("frontend inputs (LLB) are not supported")
        if request.SourcePolicy.ByteSize():
            raise NotImplementedByDaemon("source policies are not supported")
        for entitlement in request.Entitlements:
            if entitlement != "network.host":
                raise NotImplementedByDaemon(f"entitlement {entitlement[:40]!r} is not "
                                             "supported")
        exporters = list(request.Exporters)
        if not exporters and request.ExporterDeprecated:
            exporters = [pb.Exporter(Type=request.ExporterDeprecated,
                                     Attrs=request.ExporterAttrsDeprecated)]
            del request.Exporters[:]
            request.Exporters.extend(exporters)
        self.solver.check_exporters(exporters)

    async def _solve(self, build: Build) -> dict[str, str]:
        request = build.request
        if request.Frontend == DOCKERFILE_FRONTEND:
            result: BuildResult | None = await self.solver.solve(request.FrontendAttrs, build)
        else:   # buildx: the build function runs on the client, through LLBBridge
            returned = await build.returned
            if returned.error:
                raise ReturnedError(returned.code, returned.error)
            result = build.results.get(returned.ref) if returned.ref else None
            if returned.ref and result is None:
                raise InvalidParameter(f"no such result {returned.ref[:80]}")
        if result is None:
            return {}
        return await self.solver.export(result, build)
