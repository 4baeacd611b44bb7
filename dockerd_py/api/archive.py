"""Container filesystem routes: archive (docker cp), export, changes (docker diff), commit."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from ..errors import InvalidParameter
from .httputil import body_chunks, json_response, query_bool, read_body
from .keys import FILES

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"
TAR = "application/x-tar"


def _path(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidParameter("bad parameter: path cannot be empty")
    if "\0" in path:   # no file has such a name; the system calls would refuse it
        raise InvalidParameter(f"bad parameter: path {path!r} contains a NUL byte")
    return path


def _stat_header(stat: dict[str, Any]) -> dict[str, str]:
    raw = json.dumps(stat, separators=(",", ":")).encode()
    return {PATH_STAT_HEADER: base64.standard_b64encode(raw).decode()}


async def _send(request: web.Request, response: web.StreamResponse,
                chunks: AsyncIterator[bytes]) -> web.StreamResponse:
    """Stream chunks; a failure after the headers went out cuts the connection, so the
    client sees a broken transfer rather than a short tar that looks complete."""
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(chunk)
    except ConnectionResetError:
        raise
    except Exception as e:
        log.error("%s %s: failed while streaming: %s", request.method, request.path, e)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


@routes.head("/containers/{id}/archive")
async def stat_path(request: web.Request) -> web.Response:
    stat = await request.app[FILES].stat_path(request.match_info["id"], _path(request))
    return web.Response(status=200, headers=_stat_header(stat))


@routes.get("/containers/{id}/archive")
async def archive_path(request: web.Request) -> web.StreamResponse:
    async with request.app[FILES].archive_path(request.match_info["id"],
                                 _path(request)) as (stat, chunks):
        response = web.StreamResponse(headers={**_stat_header(stat), "Content-Type": TAR})
        return await _send(request, response, chunks)


@routes.put("/containers/{id}/archive")
async def extract_to_dir(request: web.Request) -> web.Response:
    # As dockerd: overwriting a directory with a file (and the reverse) is allowed unless
    # the client says noOverwriteDirNonDir (the CLI always does).
    strict = "noOverwriteDirNonDir" in request.query and query_bool(request,
                                                                   "noOverwriteDirNonDir")
    await request.app[FILES].extract_to_dir(
        request.match_info["id"], _path(request), body_chunks(request),
        copy_uid_gid=query_bool(request, "copyUIDGID"), allow_overwrite_dir_with_file=not strict)
    return web.Response(status=200)


@routes.get("/containers/{id}/export")
async def export_container(request: web.Request) -> web.StreamResponse:
    async with request.app[FILES].export(request.match_info["id"]) as chunks:
        return await _send(request, web.StreamResponse(headers={"Content-Type": TAR}), chunks)


@routes.get("/containers/{id}/changes")
async def container_changes(request: web.Request) -> web.Response:
    found = await request.app[FILES].changes(request.match_info["id"])
    # dockerd answers null, not [], for a container without changes.
    return json_response([c.to_api() for c in found] or None)


@routes.post("/commit")
async def commit_container(request: web.Request) -> web.Response:
    # As dockerd: the body is decoded as a create request; only its Config part counts.
    body = await read_body(request, "ContainerCreate")
    config = None if body is None else {k: v for k, v in body.items()
                                        if k not in ("HostConfig", "NetworkingConfig")}
    query = request.query
    # pause is on unless the client turns it off explicitly.
    pause = "pause" not in query or query_bool(request, "pause")
    image_id = await request.app[FILES].commit(
        query.get("container", ""), repo=query.get("repo", ""),
        tag=query.get("tag", ""), comment=query.get("comment", ""),
        author=query.get("author", ""), pause=pause, changes=query.getall("changes", []),
        config=config)
    return json_response({"Id": image_id}, status=201)
