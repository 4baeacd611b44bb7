"""Volume routes: list, create, inspect, remove, prune (and the swarm-only update)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine.volumes.contract import Volume
from ..errors import Unavailable
from .httputil import json_response, query_bool, query_filters, read_body
from .keys import VOLUMES
from .server import api_version

routes = web.RouteTableDef()

_NO_SWARM = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
             "to connect this node to swarm and try again.")


def volume_json(vol: Volume, usage: tuple[int, int] | None = None) -> dict[str, Any]:
    """Docker's Volume object, keys in dockerd's order; `usage` = (size, refcount) for df."""
    out: dict[str, Any] = {
        "CreatedAt": vol.created_at,
        "Driver": vol.driver,
        "Labels": vol.labels,
        "Mountpoint": vol.mountpoint,
        "Name": vol.name,
        "Options": vol.options,
        "Scope": vol.scope,
    }
    if usage is not None:
        out["UsageData"] = {"RefCount": usage[1], "Size": usage[0]}
    return out


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    volumes, warnings = await request.app[VOLUMES].list(query_filters(request))
    # dockerd sends a nil slice (null) when there is nothing to warn about
    return json_response({"Volumes": [volume_json(v) for v in volumes],
                          "Warnings": warnings or None})


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.Response:
    body = await read_body(request, "VolumeCreate") or {}
    if body.get("ClusterVolumeSpec") is not None and api_version(request) >= (1, 42):
        raise Unavailable(_NO_SWARM)
    vol = await request.app[VOLUMES].create(
        body.get("Name") or None, body.get("Driver") or None, body.get("DriverOpts"),
        body.get("Labels"))
    return json_response(volume_json(vol), status=201)


@routes.post("/volumes/prune")
async def prune_volumes(request: web.Request) -> web.Response:
    # Before API 1.42 prune considered every unused volume, not only anonymous ones.
    report = await request.app[VOLUMES].prune(query_filters(request),
                                        all_volumes=api_version(request) < (1, 42))
    return json_response(report)


@routes.get("/volumes/{name:.+}")
async def inspect_volume(request: web.Request) -> web.Response:
    return json_response(volume_json(await request.app[VOLUMES].get(request.match_info["name"])))


@routes.delete("/volumes/{name:.+}")
async def remove_volume(request: web.Request) -> web.Response:
    await request.app[VOLUMES].remove(request.match_info["name"],
                                      force=query_bool(request, "force"))
    return web.Response(status=204)


@routes.put("/volumes/{name:.+}")
async def update_volume(request: web.Request) -> web.Response:
    raise Unavailable("volume update only valid for cluster volumes, but swarm is unavailable")
