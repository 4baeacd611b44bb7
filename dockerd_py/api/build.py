"""Build routes: POST /build (the legacy builder's protocol), /build/prune, /build/cancel.

POST /build answers a JSON message stream. Nothing is written before the
context has been read and the Dockerfile parsed (moby also holds its output
until the body is consumed), so those errors get a status code and
{"message"}; later errors go in-band as errorDetail, with the RUN's exit
code as `code` (the CLI exits with it). With q=1 the output is held back: on
success only the image ID is sent, on failure everything, then the error.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from builder.dispatch import StepFailed
from builder.options import BuildOptions
from builder.progress import Message
from builder.run import RunOptions

from ..distribution.manifests import parse_platform
from ..engine.reference import InvalidReference, parse_normalized, with_default_tag
from ..engine.timestamps import parse_timestamp
from ..errors import DaemonError, InternalError, InvalidParameter, NotImplementedByDaemon
from .httputil import JsonMessageStream, body_chunks, json_response, query_bool, query_int
from .keys import BUILDER
from .server import api_version

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

_DISCONNECT_POLL = 0.5
_RUNNING: dict[str, asyncio.Future[Any]] = {}  # buildid -> build, for POST /build/cancel


def _json_query(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidParameter(f"invalid {name} value: {raw!r}") from None


def _tags(request: web.Request) -> tuple[str, ...]:
    out = []
    for tag in request.query.getall("t", []):
        try:
            ref = parse_normalized(tag)
        except InvalidReference as e:
            raise InvalidParameter(f"invalid reference format: {e}" if "format" not in str(e)
                                   else str(e)) from None
        if ref.digest:
            raise InvalidParameter("build tag cannot contain a digest")
        out.append(with_default_tag(ref).string())
    return tuple(dict.fromkeys(out))


def _registry_config(request: web.Request) -> dict[str, Any]:
    raw = request.headers.get("X-Registry-Config", "")
    if not raw:
        return {}
    try:
        padded = raw + "=" * (-len(raw) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (ValueError, binascii.Error):
        return {}
    return value if isinstance(value, dict) else {}


def _options(request: web.Request) -> BuildOptions:
    q = request.query
    if q.get("remote"):
        raise NotImplementedByDaemon("remote build contexts are not supported; "
                                     "send the context in the request body")
    build_args = _json_query(request, "buildargs", {})
    labels = _json_query(request, "labels", {})
    ulimits = _json_query(request, "ulimits", [])
    if not isinstance(build_args, dict) or not isinstance(labels, dict) \
            or not isinstance(ulimits, list):
        raise InvalidParameter("buildargs and labels must be JSON objects, ulimits a list")
    # As the reference: RUN steps join the default bridge unless another network, host
    # or none is named; a network that does not exist fails the step.
    network = q.get("networkmode", "")
    network = "bridge" if network in ("", "default") else network
    if network.startswith("container:"):
        raise NotImplementedByDaemon(f"network mode {network!r} is not supported during "
                                     "builds: use bridge, host, none or a network's name")
    shm = query_int(request, "shmsize", 0) or 0
    if shm < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    resources: dict[str, Any] = {}
    for query_name, field in (("memory", "Memory"), ("memswap", "MemorySwap"),
                              ("cpushares", "CpuShares"), ("cpuquota", "CpuQuota"),
                              ("cpuperiod", "CpuPeriod")):
        value = query_int(request, query_name, 0)
        if value:
            resources[field] = value
    if q.get("cpusetcpus"):
        resources["CpusetCpus"] = q["cpusetcpus"]
    extra_hosts = [h for h in q.getall("extrahosts", []) if h]
    return BuildOptions(
        dockerfile=q.get("dockerfile", "") or "Dockerfile",
        tags=_tags(request),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        target=q.get("target", ""),
        no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"),
        labels={str(k): str(v) for k, v in labels.items()},
        platform=_platform(q.get("platform", "")),
        run=RunOptions(network=network, shm_size=shm, ulimits=ulimits,
                       extra_hosts=extra_hosts, cgroup_parent=q.get("cgroupparent", ""),
                       resources=resources),
        auth=_registry_config(request),
    )


def _platform(text: str) -> str:
    """The --platform asked for, checked before the build starts (dockerd's 400)."""
    if text:
        parse_platform(text)
    return text


class _Output:
    """Starts the HTTP stream at the first message; holds everything back with q=1."""

    def __init__(self, request: web.Request, quiet: bool) -> None:
        self.stream = JsonMessageStream(request)
        self.quiet = quiet
        self.held: list[Message] = []
        self.started = False

    async def send(self, message: Message) -> None:
        if self.quiet:
            self.held.append(message)
            return
        self.started = True
        await self.stream.send(message)

    async def release(self) -> None:
        for message in self.held:
            self.started = True
            await self.stream.send(message)
        self.held = []


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    builder = request.app[BUILDER]
    options = _options(request)
    quiet = query_bool(request, "q")
    out = _Output(request, quiet)
    task = asyncio.ensure_future(builder.build(body_chunks(request), options, out.send))
    watcher = asyncio.ensure_future(_cancel_on_disconnect(request, task))
    build_id = request.query.get("buildid", "")
    if build_id:
        _RUNNING[build_id] = task
        task.add_done_callback(lambda _: _RUNNING.pop(build_id, None))
    try:
        image = await task
    except asyncio.CancelledError:
        if request.transport is None or request.transport.is_closing():
            return out.stream.response  # the client went away; nothing left to say
        raise
    except DaemonError as e:
        if not out.started and not out.held:
            raise
        await out.release()
        code = e.code if isinstance(e, StepFailed) else None
        with contextlib.suppress(ConnectionError):
            await out.stream.send({"errorDetail": {"code": code, "message": str(e)}
                                   if code is not None else {"message": str(e)},
                                   "error": str(e)})
            return await out.stream.finish()
        return out.stream.response
    except Exception as e:
        log.exception("build failed")
        if not out.started and not out.held:
            raise
        await out.release()
        with contextlib.suppress(ConnectionError):
            await out.stream.error(str(e) or type(e).__name__)
            return await out.stream.finish()
        return out.stream.response
    finally:
        watcher.cancel()
    if quiet:
        await out.stream.send({"aux": {"ID": image.id}})
        await out.stream.send({"stream": image.id + "\n"})
    return await out.stream.finish()


async def _cancel_on_disconnect(request: web.Request, task: asyncio.Future[Any]) -> None:
    """A client that hangs up cancels its build (the build containers are killed)."""
    while not task.done():
        await asyncio.sleep(_DISCONNECT_POLL)
        transport = request.transport
        if transport is None or transport.is_closing():
            task.cancel()
            return


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    keep = query_int(request, "keep-storage", 0) or query_int(request, "reserved-space", 0) or 0
    filters = _json_query(request, "filters", {})
    until = None
    if isinstance(filters, dict):
        for key in filters:
            if key not in ("until", "id", "parent", "type", "description", "inuse", "shared",
                           "private"):
                raise InvalidParameter(f"invalid filter '{key}'")
        value = filters.get("until")
        if value:
            raw = next(iter(value)) if isinstance(value, (dict, list)) else str(value)
            until = parse_timestamp(raw)  # a duration, an RFC 3339 time or seconds
    ids, reclaimed = await request.app[BUILDER].prune(all=query_bool(request, "all"),
                                                keep_storage=keep, until=until)
    return json_response({"CachesDeleted": ids or None, "SpaceReclaimed": reclaimed})


@routes.post("/build/cancel")
async def cancel(request: web.Request) -> web.Response:
    """Cancel the build started with this `buildid` (as dockerd: 500 without an id, 200
    with an empty body whether or not such a build runs)."""
    build_id = request.query.get("id", "")
    if not build_id:
        raise InternalError("build ID not provided")
    task = _RUNNING.get(build_id)
    if task is not None:
        task.cancel()
    return web.Response(status=200)


async def cache_usage(request: web.Request) -> tuple[list[dict[str, Any]], int]:
    """BuildCache entries of GET /system/df, and their total size (BuilderSize)."""
    records = await request.app[BUILDER].usage()
    by_image = {r.entry.image_id: r.entry.key for r in records if r.entry.image_id}
    new_api = api_version(request) >= (1, 42)
    out = []
    for r in records:
        entry: dict[str, Any] = {"ID": _cache_id(r.entry.key)}
        parent = by_image.get(r.entry.parent)
        if new_api:
            entry["Parents"] = [_cache_id(parent)] if parent else None
        else:
            entry["Parent"] = _cache_id(parent) if parent else ""
        entry.update({"Type": r.type, "Description": r.entry.description,
                      "InUse": r.in_use, "Shared": r.shared, "Size": r.size,
                      "CreatedAt": r.entry.created, "LastUsedAt": r.entry.last_used,
                      "UsageCount": r.entry.usage_count})
        out.append(entry)
    return out, sum(r.size for r in records)


def _cache_id(key: str) -> str:
    """Cache record IDs are 25 characters, as BuildKit's."""
    return key.removeprefix("sha256:")[:25]
