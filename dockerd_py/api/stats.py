"""Container operations routes: top, stats, update."""

from __future__ import annotations

import contextlib

from aiohttp import web

from .httputil import json_bytes, json_response, query_bool, read_body
from .keys import CONTAINERS
from .server import api_version

routes = web.RouteTableDef()


@routes.get("/containers/{id}/top")
async def container_top(request: web.Request) -> web.Response:
    result = await request.app[CONTAINERS].top(request.match_info["id"],
                                               request.query.get("ps_args") or None)
    return json_response(result)


@routes.get("/containers/{id}/stats")
async def container_stats(request: web.Request) -> web.StreamResponse:
    stream = query_bool(request, "stream", True)
    one_shot = api_version(request) >= (1, 41) and query_bool(request, "one-shot")
    records = request.app[CONTAINERS].stats(request.match_info["id"], stream=stream,
                                            one_shot=one_shot)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)  # clients wait for the headers, a sample may take 1 s
    try:
        async for record in records:
            await response.write(json_bytes(record))
        await response.write_eof()
    except ConnectionError:
        pass  # the client left (`docker stats` ended, a --no-stream reader closed early)
    finally:
        with contextlib.suppress(Exception):
            await records.aclose()
    return response


@routes.post("/containers/{id}/update")
async def container_update(request: web.Request) -> web.Response:
    body = await read_body(request, "ContainerUpdate")
    warnings = await request.app[CONTAINERS].update(request.match_info["id"], body,
                                                    api_version(request))
    return json_response({"Warnings": warnings})
