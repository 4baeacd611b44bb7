"""Swarm and plugin routes, answered as a dockerd that is not part of a swarm and has
no plugins: what clients see there, and what their cleanup code expects (a
`POST /swarm/leave` must say "not part of a swarm", never 404).

Every swarm route is a 503 with dockerd's wording; the update routes check their
`version` first, as dockerd does. A swarm cannot be initialised or joined: this daemon
runs containers on this node only (a clear 501). The plugin routes list nothing and
name no plugin; installing one is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from ..errors import InvalidParameter, NotFound, NotImplementedByDaemon, Unavailable
from .httputil import json_response, query_bool

routes = web.RouteTableDef()

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')
NOT_IN_A_SWARM = "This node is not part of a swarm"

# (method, path) of every swarm route that needs a manager (Engine API 1.50).
_MANAGER_ROUTES = (
    ("GET", "/swarm"), ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"),
    ("GET", "/nodes"), ("GET", "/nodes/{id}"), ("DELETE", "/nodes/{id}"),
    ("GET", "/services"), ("POST", "/services/create"), ("GET", "/services/{id}"),
    ("DELETE", "/services/{id}"),
    ("GET", "/tasks"), ("GET", "/tasks/{id}"),
    ("GET", "/secrets"), ("POST", "/secrets/create"), ("GET", "/secrets/{id}"),
    ("DELETE", "/secrets/{id}"),
    ("GET", "/configs"), ("POST", "/configs/create"), ("GET", "/configs/{id}"),
    ("DELETE", "/configs/{id}"),
)
# The update routes: which object's version they name.
_UPDATE_ROUTES = (("/swarm/update", "swarm"), ("/nodes/{id}/update", "node"),
                  ("/services/{id}/update", "service"), ("/secrets/{id}/update", "secret"),
                  ("/configs/{id}/update", "config"))


async def _not_a_manager(request: web.Request) -> web.Response:
    raise Unavailable(NOT_A_MANAGER)


for _method, _path in _MANAGER_ROUTES:
    routes.route(_method, _path)(_not_a_manager)


def _updater(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def update(request: web.Request) -> web.Response:
        version = request.query.get("version", "")
        if not version.isdigit():
            raise InvalidParameter(f"invalid {kind} version '{version}': strconv.ParseUint: "
                                   f'parsing "{version}": invalid syntax')
        raise Unavailable(NOT_A_MANAGER)
    return update


for _path, _kind in _UPDATE_ROUTES:
    routes.post(_path)(_updater(_kind))


@routes.post("/swarm/leave")
async def leave(request: web.Request) -> web.Response:
    raise Unavailable(NOT_IN_A_SWARM)


@routes.post("/swarm/init")
@routes.post("/swarm/join")
async def init_or_join(request: web.Request) -> web.Response:
    raise NotImplementedByDaemon("swarm mode is not supported: this daemon runs containers "
                                 "on this node only")


@routes.get("/services/{id}/logs")
@routes.get("/tasks/{id}/logs")
async def swarm_logs(request: web.Request) -> web.Response:
    if not (query_bool(request, "stdout") or query_bool(request, "stderr")):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    raise Unavailable(NOT_A_MANAGER)


# -- plugins ----------------------------------------------------------------------------

@routes.get("/plugins")
async def plugins(request: web.Request) -> web.Response:
    return json_response([])


@routes.get("/plugins/{name:.+}/json")
@routes.post("/plugins/{name:.+}/enable")
@routes.post("/plugins/{name:.+}/disable")
@routes.post("/plugins/{name:.+}/push")
@routes.post("/plugins/{name:.+}/set")
@routes.post("/plugins/{name:.+}/upgrade")
@routes.delete("/plugins/{name:.+}")
async def no_such_plugin(request: web.Request) -> web.Response:
    raise NotFound(f'plugin "{request.match_info["name"]}" not found')


@routes.get("/plugins/privileges")
@routes.post("/plugins/pull")
@routes.post("/plugins/create")
async def no_plugins(request: web.Request) -> web.Response:
    raise NotImplementedByDaemon("plugins are not supported by this daemon")
