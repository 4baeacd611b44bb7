"""BuildKit's endpoints: `POST /grpc` (the client calls the Control service) and
`POST /session` (the client serves its session services to the daemon). Both
upgrade to h2c and carry HTTP/2 over the hijacked connection; the BuildKit front
end (dockerd_py/buildkit) serves them. As dockerd, a missing or other Upgrade
protocol is refused before the upgrade."""

from __future__ import annotations

from aiohttp import web

from ..buildkit.service import BuildKit
from ..errors import InvalidParameter
from .hijack import hijack

BUILDKIT = web.AppKey("buildkit", BuildKit)

routes = web.RouteTableDef()


def _check_upgrade(request: web.Request) -> None:
    proto = request.headers.get("Upgrade", "")
    if not proto:
        raise InvalidParameter("no upgrade proto in request")
    if proto != "h2c":
        raise InvalidParameter(f"protocol {proto[:40]} not supported")


@routes.post("/grpc")
async def grpc(request: web.Request) -> web.StreamResponse:
    _check_upgrade(request)
    frontend = request.app[BUILDKIT]
    conn = await hijack(request, tty=True, upgrade="h2c")
    await frontend.serve_control(conn)
    return conn.response


@routes.post("/session")
async def session(request: web.Request) -> web.StreamResponse:
    _check_upgrade(request)
    frontend = request.app[BUILDKIT]
    headers = frontend.session_headers(request.headers.items())
    conn = await hijack(request, tty=True, upgrade="h2c")
    await frontend.serve_session(conn, headers)
    return conn.response
