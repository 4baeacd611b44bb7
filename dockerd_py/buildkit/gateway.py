"""BuildKit's frontend gateway (moby.buildkit.v1.frontend.LLBBridge), as far as a
client that runs its build function itself (buildx, Compose) calls it: Ping for
the capabilities, Solve to run the built-in Dockerfile frontend, Return to hand
back the final result that Control.Solve exports. The build a call belongs to is
named by the "buildkit-controlapi-buildid" metadata.

The capabilities announced are the ones implemented here; a client then avoids
the others (ReadFile, Evaluate, containers, ...). LLB from the client is refused.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from dockerd_py.errors import DaemonError
from dockerd_py.protos.buildkit.control import caps_pb2
from dockerd_py.protos.buildkit.control import gateway_pb2 as gw
from dockerd_py.protos.buildkit.control import gateway_pb2_grpc as gw_grpc

from .builds import Build, Builds, Returned
from .cacheopts import import_refs
from .control import CLIENT_LLB_REFUSED, Control, grpc_code
from .frontend import DOCKERFILE_FRONTEND

log = logging.getLogger(__name__)

BUILD_ID_KEY = "buildkit-controlapi-buildid"
_FRONTEND_CAPS = ("solve.base", "return", "returnmap", "proto.refarray", "frontend.inputs",
                  "frontend.caps")
# LLB capabilities: what a client may put in LLB it marshals for the frontend's inputs;
# we accept none, but the list must not be empty (an empty one means "BuildKit's old
# defaults" to the client).
_LLB_CAPS = ("source.local", "source.local.sharedkeyhint")

Context = grpc.aio.ServicerContext


def _caps(ids: tuple[str, ...]) -> list[caps_pb2.APICap]:
    return [caps_pb2.APICap(ID=i, Enabled=True) for i in ids]


class Gateway(gw_grpc.LLBBridgeServicer):
    def __init__(self, control: Control) -> None:
        self.control = control
        self.builds: Builds = control.builds

    async def _build(self, context: Context[object, object]) -> Build:
        ref = ""
        for key, value in context.invocation_metadata() or ():
            if key == BUILD_ID_KEY and isinstance(value, str):
                ref = value
        build = await self.builds.get(ref) if ref else None
        if build is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no such job {ref[:80]}")
            raise AssertionError  # abort() raises
        if build.ended:
            await context.abort(grpc.StatusCode.CANCELLED, build.ended)
        return build

    async def Ping(self, request: gw.PingRequest,
                   context: Context[gw.PingRequest, gw.PongResponse]) -> gw.PongResponse:
        return gw.PongResponse(FrontendAPICaps=_caps(_FRONTEND_CAPS),
                               LLBCaps=_caps(_LLB_CAPS), Workers=[self.control.worker()])

    async def Solve(self, request: gw.SolveRequest,
                    context: Context[gw.SolveRequest, gw.SolveResponse]) -> gw.SolveResponse:
        build = await self._build(context)  # type: ignore[arg-type]
        await build.ready.wait()
        if build.ended:
            await context.abort(grpc.StatusCode.CANCELLED, build.ended)
        if getattr(request.Definition, "def") or request.FrontendInputs:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, CLIENT_LLB_REFUSED)
        if request.Frontend != DOCKERFILE_FRONTEND:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                f"frontend {request.Frontend[:80]!r} is not supported; "
                                f"only {DOCKERFILE_FRONTEND}")
        if request.SourcePolicies:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                "source policies are not supported")
        try:
            imports = import_refs(request.CacheImports)     # the client's build function's
            build.cache_from = tuple(dict.fromkeys([*build.cache_from, *imports]))
            result = await self.control.solver.solve(request.FrontendOpt, build)
        except DaemonError as e:
            await build.progress.fail_open(str(e))
            await context.abort(grpc_code(e), str(e))
            raise AssertionError from None
        except asyncio.CancelledError:
            await build.progress.fail_open("context canceled")
            raise
        except Exception as e:
            log.exception("build %s failed", build.ref)
            await build.progress.fail_open(str(e) or type(e).__name__)
            await context.abort(grpc.StatusCode.UNKNOWN, str(e) or type(e).__name__)
            raise AssertionError from None
        rid = build.keep(result)
        if not request.allowResultReturn:
            return gw.SolveResponse(ref=rid)
        out = gw.Result(ref=gw.Ref(id=rid), metadata={"containerimage.config": result.config})
        return gw.SolveResponse(result=out)

    async def Return(self, request: gw.ReturnRequest,
                     context: Context[gw.ReturnRequest, gw.ReturnResponse]
                     ) -> gw.ReturnResponse:
        build = await self._build(context)  # type: ignore[arg-type]
        if build.returned.done():
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "result already returned")
        returned = Returned()
        log.debug("return %s: %s", build.ref, request)
        if request.HasField("error") and request.error.code != 0:
            returned.error = request.error.message or "build function failed"
            returned.code = _status_code(request.error.code)
        else:
            which = request.result.WhichOneof("result")
            if which == "ref":
                returned.ref = request.result.ref.id
            elif which == "refDeprecated":
                returned.ref = request.result.refDeprecated
            elif which in ("refs", "refsDeprecated"):
                await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                                    "results with several refs (multi-platform) are not "
                                    "supported")
        build.returned.set_result(returned)
        return gw.ReturnResponse()


def _status_code(code: int) -> grpc.StatusCode:
    return next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.UNKNOWN)
