"""Image routes: list, inspect, history, tag, remove, prune, import, load, save."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..engine.images import delete as image_delete
from ..engine.images import load as image_load
from ..engine.images import query
from ..engine.images import save as image_save
from ..engine.images.import_ import import_image
from ..engine.reference import parse_normalized
from ..engine.timestamps import parse_time
from ..engine.types import ImageRecord
from ..errors import DaemonError, InvalidParameter, NotImplementedByDaemon
from . import distribution as distribution_api
from .httputil import JsonMessageStream, body_chunks, json_response, query_bool, query_filters
from .keys import IMAGES
from .server import api_version

routes = web.RouteTableDef()


def familiar_tags(image: ImageRecord) -> list[str]:
    return [parse_normalized(r).familiar() for r in image.tags]


def familiar_digests(image: ImageRecord) -> list[str]:
    return [parse_normalized(r).familiar() for r in image.digests]


def summary(image: ImageRecord, version: tuple[int, int], *, shared_size: int = -1,
            containers: int = -1) -> dict[str, Any]:
    out: dict[str, Any] = {
        "Containers": containers,
        "Created": int(parse_time(image.created)),
        "Id": image.id,
        "Labels": image.labels or None,
        "ParentId": image.parent,
        "RepoDigests": familiar_digests(image),
        "RepoTags": familiar_tags(image),
        "SharedSize": shared_size,
        "Size": image.size,
    }
    if version < (1, 43) and not image.tags and not image.digests:
        out["RepoTags"] = ["<none>:<none>"]
        out["RepoDigests"] = ["<none>@<none>"]
    if version < (1, 44):
        out["VirtualSize"] = image.size
    return out


_CONFIG_FIELDS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
                  "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")
_DEFAULTS: dict[str, Any] = {"User": "", "Env": None, "Cmd": None, "Volumes": None,
                             "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}
_LEGACY_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Image": ""}


def _runtime_config(config: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    out = dict(_DEFAULTS)
    if version < (1, 50):
        out = {**_LEGACY_DEFAULTS, **out}
    out.update({k: v for k, v in config.items() if k in _CONFIG_FIELDS})
    for key in ("Cmd", "Entrypoint", "Shell"):  # strslice: a lone string is a one-item list
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def inspect(image: ImageRecord, version: tuple[int, int], data_dirs: list[str]) -> dict[str, Any]:
    cfg = image.config
    out: dict[str, Any] = {
        "Id": image.id,
        "RepoTags": familiar_tags(image),
        "RepoDigests": familiar_digests(image),
        "Parent": image.parent,
        "Comment": _comment(cfg),
        "Created": image.created or None,
        "DockerVersion": cfg.get("docker_version", ""),
        "Author": cfg.get("author", ""),
        "Config": _runtime_config(cfg.get("config") or {}, version),
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": image.size,
        "GraphDriver": {"Data": _graph_data(data_dirs), "Name": "overlay2"},
        "RootFS": {"Type": "layers", "Layers": [layer.diff_id for layer in image.layers]},
        "Metadata": {"LastTagTime": image.last_tag_time or "0001-01-01T00:00:00Z"},
    }
    if cfg.get("variant"):
        out["Variant"] = cfg["variant"]
    if version < (1, 45):
        out["Container"] = ""
        out["ContainerConfig"] = _runtime_config({}, (1, 49))
    if version < (1, 44):
        out["VirtualSize"] = image.size
    return out


def _comment(cfg: dict[str, Any]) -> str:
    """As dockerd: the config's comment, else the last history entry's."""
    history = cfg.get("history")
    last = history[-1] if isinstance(history, list) and history else None
    return cfg.get("comment") or (last.get("comment") if isinstance(last, dict) else "") or ""


def _graph_data(dirs: list[str]) -> dict[str, str] | None:
    if not dirs:
        return None
    if len(dirs) == 1:
        return {"MergedDir": "", "UpperDir": dirs[0], "WorkDir": ""}
    return {"LowerDir": ":".join(dirs[1:]), "UpperDir": dirs[0]}


@routes.get("/images/json")
async def list_images(request: web.Request) -> web.Response:
    filters = query_filters(request)
    images = await query.list_images(request.app[IMAGES], filters, all=query_bool(request, "all"))
    shared = query_bool(request, "shared-size")
    counts = shared_layer_counts(images) if shared else {}
    version = api_version(request)
    return json_response([
        summary(i, version, shared_size=shared_size(i, counts) if shared else -1)
        for i in images])


def shared_layer_counts(images: list[ImageRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for image in images:
        for layer in {layer.chain_id: layer for layer in image.layers}.values():
            counts[layer.chain_id] = counts.get(layer.chain_id, 0) + 1
    return counts


def shared_size(image: ImageRecord, counts: dict[str, int]) -> int:
    return sum(layer.size for layer in image.layers if counts.get(layer.chain_id, 0) > 1)


@routes.get("/images/{name:.+}/json")
async def inspect_image(request: web.Request) -> web.Response:
    image = await request.app[IMAGES].resolve(request.match_info["name"])
    dirs = await request.app[IMAGES].layer_dirs(image)
    return json_response(inspect(image, api_version(request), dirs))


@routes.get("/images/{name:.+}/history")
async def image_history(request: web.Request) -> web.Response:
    rows = await query.history(request.app[IMAGES], request.match_info["name"])
    return json_response([
        {"Id": r.id, "Created": int(r.created), "CreatedBy": r.created_by,
         "Tags": list(r.tags) or None, "Size": r.size, "Comment": r.comment} for r in rows])


@routes.post("/images/{name:.+}/tag")
async def tag_image(request: web.Request) -> web.Response:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidParameter("repository name (repo) must be set")
    await request.app[IMAGES].tag(request.match_info["name"], repo, request.query.get("tag", ""))
    return web.Response(status=201)


@routes.delete("/images/{name:.+}")
async def remove_image(request: web.Request) -> web.Response:
    report = await image_delete.delete(request.app[IMAGES], request.match_info["name"],
                                       force=query_bool(request, "force"),
                                       prune=not query_bool(request, "noprune"))
    return json_response(report)


@routes.post("/images/prune")
async def prune_images(request: web.Request) -> web.Response:
    result = await image_delete.prune(request.app[IMAGES], query_filters(request))
    return json_response(result)


@routes.post("/images/create")
async def create_image(request: web.Request) -> web.StreamResponse:
    source = request.query.get("fromSrc")
    if source is None:
        if request.query.get("fromImage"):
            return await distribution_api.pull_image(request)
        raise InvalidParameter("either fromSrc or fromImage must be set")
    if source != "-":
        raise NotImplementedByDaemon("importing from a URL is not supported; "
                                     "pipe the archive to docker import -")
    repo, tag = request.query.get("repo", ""), request.query.get("tag", "")
    if repo and tag:
        repo = f"{repo}:{tag}"
    stream = JsonMessageStream(request)
    image = await import_image(request.app[IMAGES], body_chunks(request), repo=repo,
                               message=request.query.get("message", ""),
                               changes=request.query.getall("changes", []))
    await stream.send({"status": image.id})
    return await stream.finish()


@routes.post("/images/load")
async def load_images(request: web.Request) -> web.StreamResponse:
    quiet = query_bool(request, "quiet")
    stream = JsonMessageStream(request)
    messages = image_load.load(request.app[IMAGES], body_chunks(request))
    # As dockerd: every load error goes in-band after a 200, also one found before any
    # progress, so that clients raise their load error (docker-py's ImageLoadError).
    try:
        async for message in messages:
            if not (quiet and "progressDetail" in message):
                await stream.send(message)
    except DaemonError as e:
        await stream.error(str(e))
    return await stream.finish()


@routes.get("/images/get")
async def save_images(request: web.Request) -> web.StreamResponse:
    return await _save(request, request.query.getall("names", []))


@routes.get("/images/{name:.+}/get")
async def save_image(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    if not names:
        raise InvalidParameter("no images specified")
    items = await image_save.plan(request.app[IMAGES], names)
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    async for chunk in image_save.save(request.app[IMAGES], items):
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/images/search")
async def search_images(request: web.Request) -> web.Response:
    raise NotImplementedByDaemon("searching a registry is not supported")
