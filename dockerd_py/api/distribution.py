"""Registry routes: login (/auth), pull (images/create?fromImage=), push, distribution inspect.

Pull and push answer with a JSON progress stream; an error before the first
message is an ordinary error response (the CLI shows "Error response from
daemon: ..."), one after it goes in-band, as moby's handlers do.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..distribution.auth import decode_header
from ..distribution.manifests import parse_platform
from ..engine.reference import InvalidReference, parse_normalized, validate_digest, with_tag
from ..errors import DaemonError
from .httputil import JsonMessageStream, json_response, read_body
from .keys import DISTRIBUTION

routes = web.RouteTableDef()


def _auth(request: web.Request) -> dict[str, Any] | None:
    return decode_header(request.headers.get("X-Registry-Auth"))


def _pull_ref(image: str, tag: str) -> tuple[str, bool]:
    """(reference, all tags) from fromImage and tag, as moby's postImagesCreate reads them."""
    ref = parse_normalized(image)
    if tag:
        try:
            validate_digest(tag)
        except InvalidReference:
            return with_tag(ref, tag).string(), False
        return f"{ref.name}@{tag}", False
    return ref.string(), ref.tag is None and ref.digest is None


async def _stream(request: web.Request, run: Any) -> web.StreamResponse:
    stream = JsonMessageStream(request)
    try:
        await run(stream.send)
    except DaemonError as e:
        if not stream.response.prepared:
            raise
        await stream.error(str(e))
    return await stream.finish()


async def pull_image(request: web.Request) -> web.StreamResponse:
    """POST /images/create?fromImage=&tag=&platform= (called by the images route)."""
    ref, all_tags = _pull_ref(request.query.get("fromImage", ""), request.query.get("tag", ""))
    platform = request.query.get("platform") or None
    if platform:
        parse_platform(platform)  # a 400 before any registry is asked (dockerd's order)
    auth = _auth(request)

    async def run(emit: Any) -> None:
        await request.app[DISTRIBUTION].pull(ref, auth=auth, platform=platform, progress=emit,
                                       all_tags=all_tags)

    return await _stream(request, run)


@routes.post("/images/{name:.+}/push")
async def push_image(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    parse_normalized(name)  # a bad name is a 400 before anything streams
    auth = _auth(request)

    async def run(emit: Any) -> None:
        await request.app[DISTRIBUTION].push(name, tag, auth=auth, progress=emit)

    return await _stream(request, run)


@routes.post("/auth")
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, "Auth", required=True)
    token = await request.app[DISTRIBUTION].login(body)
    return json_response({"IdentityToken": token, "Status": "Login Succeeded"})


@routes.get("/distribution/{name:.+}/json")
async def inspect_distribution(request: web.Request) -> web.Response:
    return json_response(await request.app[DISTRIBUTION].inspect(request.match_info["name"],
                                                           auth=_auth(request)))
