"""Container routes: create, list, inspect, lifecycle, wait, logs, remove, prune."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..engine.containers.records import Container
from ..engine.images.contract import Images
from ..engine.runtime.logs import driver_of
from ..engine.timestamps import parse_time, to_nanos
from ..engine.types import ImageRecord
from ..errors import Conflict, DaemonError, InvalidParameter
from . import shapes
from .httputil import json_bytes, json_response, query_bool, query_filters, query_int, read_body
from .keys import CONTAINERS, EXECS, IMAGES, NETWORKS
from .networks import (
    container_config,
    container_host_config,
    container_networks,
    network_settings,
    port_filter_matches,
    summary_ports,
)
from .server import api_version
from .streams import frame

routes = web.RouteTableDef()

LIST_FILTERS = ("ancestor", "before", "expose", "exited", "health", "id", "isolation",
                "is-task", "label", "name", "network", "publish", "since", "status", "volume")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, which the CLI and the daemon's Status use."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


def status_text(c: Container, now: float | None = None) -> str:
    now = time.time() if now is None else now
    st = c.state
    if st.status in ("running", "paused"):
        text = f"Up {human_duration(now - parse_time(st.started_at))}"
        if st.status == "paused":
            return text + " (Paused)"
        health = (st.health or {}).get("Status")
        if health:
            text += " (health: starting)" if health == "starting" else f" ({health})"
        return text
    if st.status == "restarting":
        return f"Restarting ({st.exit_code}) {human_duration(now - parse_time(st.finished_at))} ago"
    if st.status == "removing":
        return "Removal In Progress"
    if st.status == "dead":
        return "Dead"
    if st.started_at.startswith("0001-"):
        return "Created"
    return f"Exited ({st.exit_code}) {human_duration(now - parse_time(st.finished_at))} ago"


def _command(c: Container) -> list[str]:
    return list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])


def _mounts(c: Container) -> list[dict[str, Any]]:
    out = []
    for p in c.mounts:
        if p["Type"] == "tmpfs":
            continue
        m = {"Type": p["Type"]}
        if p["Type"] == "volume":
            m["Name"] = p.get("Name", "")
        m.update({"Source": p.get("Source", ""), "Destination": p["Destination"]})
        if p["Type"] == "volume":
            m["Driver"] = p.get("Driver", "local")
        m.update({"Mode": p.get("Mode", ""), "RW": p.get("RW", True),
                  "Propagation": p.get("Propagation", "")})
        out.append(m)
    return out


def _network_mode(c: Container) -> str:
    return c.host_config.get("NetworkMode") or "default"


def _networks(c: Container) -> dict[str, Any]:
    mode = _network_mode(c)
    name = {"default": "none", "bridge": "none"}.get(mode, mode)  # no bridge network yet
    return {name: {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
                   "DriverOpts": None, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
                   "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                   "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}}


def list_command(cmd: list[str]) -> str:
    """As dockerd lists it: arguments with a space in single quotes."""
    if not cmd:
        return ""
    return " ".join([cmd[0]] + [f"'{a}'" if " " in a else a for a in cmd[1:]])


def summary(c: Container, sizes: tuple[int, int] | None = None,
            image: str | None = None, request: web.Request | None = None) -> dict[str, Any]:
    cmd = _command(c)
    out: dict[str, Any] = {
        "Id": c.id, "Names": ["/" + c.name], "Image": image or c.image, "ImageID": c.image_id,
        "Command": list_command(cmd), "Created": int(parse_time(c.created)),
        "Ports": summary_ports(request, c) if request is not None else [],
        "Labels": c.config.get("Labels") or {}, "State": c.state.status,
        "Status": status_text(c), "HostConfig": {"NetworkMode": _network_mode(c)},
        "NetworkSettings": {"Networks": container_networks(request, c) if request is not None
                            else _networks(c)}, "Mounts": _mounts(c),
    }
    if sizes is not None:
        out["SizeRw"], out["SizeRootFs"] = sizes
    return out


def inspect(request: web.Request, c: Container, layer_dirs: dict[str, str] | None,
            sizes: tuple[int, int] | None) -> dict[str, Any]:
    cmd = _command(c)
    state_dir = request.app[CONTAINERS].state_dir(c.id)
    exec_ids = request.app[EXECS].of_container(c.id)
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": cmd[0] if cmd else "",
        "Args": cmd[1:],
        "State": c.state.to_api(),
        "Image": c.image_id,
        "ResolvConfPath": f"{state_dir}/resolv.conf",
        "HostnamePath": f"{state_dir}/hostname",
        "HostsPath": f"{state_dir}/hosts",
        # dockerd shows a path for json-file only (local's files are its own business).
        "LogPath": (f"{state_dir}/container.log" if driver_of(c.host_config) == "json-file"
                    else ""),
        "Name": "/" + c.name,
        "RestartCount": c.state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": container_host_config(request, c, shapes.host_config(c.host_config)),
        "GraphDriver": {"Data": layer_dirs, "Name": "overlay2"},
        "Mounts": _mounts(c),
        **({"SizeRw": sizes[0], "SizeRootFs": sizes[1]} if sizes else {}),
        "Config": container_config(request, c, shapes.config(c.config)),
        "NetworkSettings": network_settings(request, c),
    }


def _matches(request: web.Request, c: Container, filters: Any, ancestors: set[str]) -> bool:
    if filters.contains("status") and c.state.status not in filters.get("status"):
        return False
    if filters.contains("name") and not any(filters.match("name", n)
                                            for n in (c.name, "/" + c.name)):
        return False
    if filters.contains("id") and not any(c.id.startswith(v) for v in filters.get("id")):
        return False
    if not filters.match_labels(c.config.get("Labels") or {}):
        return False
    if filters.contains("exited"):
        if c.state.running or str(c.state.exit_code) not in filters.get("exited") \
                or c.state.started_at.startswith("0001-"):
            return False
    if filters.contains("ancestor") and c.image_id not in ancestors:
        return False
    if filters.contains("volume"):
        names = {p.get("Name") for p in c.mounts} | {p["Destination"] for p in c.mounts}
        if not names & filters.get("volume"):
            return False
    if filters.contains("health"):
        status = (c.state.health or {}).get("Status") or "none"
        if status not in filters.get("health"):
            return False
    if filters.contains("network"):
        names = set(container_networks(request, c)) | {_network_mode(c)}
        ids = {n.get("NetworkID") for n in container_networks(request, c).values()}
        if not any(v in names or any(i and i.startswith(v) for i in ids)
                   for v in filters.get("network")):
            return False
    for key in ("publish", "expose"):
        if filters.contains(key) and not port_filter_matches(request, c, key, filters.get(key)):
            return False
    orders: tuple[tuple[str, Callable[[Container, Container], bool]], ...] = (
        ("before", lambda a, b: a.seq < b.seq), ("since", lambda a, b: a.seq > b.seq))
    for key, cmp in orders:
        for ref in filters.get(key):
            if not cmp(c, request.app[CONTAINERS].get(ref)):
                return False
    return True


async def _image_id(images: Images, ref: str) -> str | None:
    try:
        image: ImageRecord = await images.resolve(ref)
        return image.id
    except DaemonError:
        return None


async def _ancestor_ids(images: Images, refs: frozenset[str]) -> set[str]:
    """The images named, and every local image built on one of them (as dockerd)."""
    ids = {i for i in [await _image_id(images, r) for r in refs] if i}
    if not ids:
        return ids
    listing = await images.list()
    grew = True
    while grew:
        children = {i.id for i in listing if i.parent in ids} - ids
        ids |= children
        grew = bool(children)
    return ids


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    filters = query_filters(request, LIST_FILTERS)
    show_all = query_bool(request, "all")
    limit = query_int(request, "limit", -1) or -1
    for key in ("before", "since"):
        for ref in filters.get(key):
            request.app[CONTAINERS].get(ref)  # 404 for an unknown reference, as dockerd
    ancestors = await _ancestor_ids(request.app[IMAGES], filters.get("ancestor"))
    want_sizes = query_bool(request, "size")
    current_ids: dict[str, str | None] = {}  # image name -> the image it names now
    out = []
    for c in request.app[CONTAINERS].list():
        if not show_all and not c.state.running and limit <= 0 and not filters.contains("status") \
                and not filters.contains("exited"):
            continue
        if _matches(request, c, filters, ancestors):
            if c.image not in current_ids:
                current_ids[c.image] = await _image_id(request.app[IMAGES], c.image)
            # As dockerd: once the name points elsewhere (or nowhere), show the image ID.
            shown = c.image if current_ids[c.image] == c.image_id else c.image_id
            sizes = await request.app[CONTAINERS].sizes(c) if want_sizes else None
            out.append(summary(c, sizes, shown, request=request))
        if limit > 0 and len(out) >= limit:
            break
    return json_response(out)


def _subpaths(body: dict[str, Any]) -> bool:
    """Does a mount ask for a volume's sub-path (API 1.45)?"""
    hc = body.get("HostConfig")
    mounts = hc.get("Mounts") if isinstance(hc, dict) else None
    if not isinstance(mounts, list):
        return False
    return any(isinstance(m, dict) and isinstance(m.get("VolumeOptions"), dict)
               and bool(m["VolumeOptions"].get("Subpath")) for m in mounts)


@routes.post("/containers/create")
async def create_container(request: web.Request) -> web.Response:
    body = await read_body(request, "ContainerCreate", required=True)
    if api_version(request) < (1, 45) and _subpaths(body):
        raise InvalidParameter("VolumeOptions.Subpath needs API v1.45 or newer")
    c, warnings = await request.app[CONTAINERS].create(request.query.get("name") or None, body)
    return json_response({"Id": c.id, "Warnings": warnings}, status=201)


@routes.get("/containers/{id}/json")
async def inspect_container(request: web.Request) -> web.Response:
    containers = request.app[CONTAINERS]
    c = containers.get(request.match_info["id"])
    try:
        dirs: dict[str, str] | None = await containers.layer_dirs(c)
    except DaemonError:
        dirs = None
    sizes = await containers.sizes(c) if query_bool(request, "size") else None
    return json_response(inspect(request, c, dirs, sizes))


@routes.post("/containers/{id}/start")
async def start_container(request: web.Request) -> web.Response:
    await request.app[CONTAINERS].start(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/stop")
async def stop_container(request: web.Request) -> web.Response:
    await request.app[CONTAINERS].stop(
        request.match_info["id"], query_int(request, "t"), request.query.get("signal") or None)
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart_container(request: web.Request) -> web.Response:
    await request.app[CONTAINERS].restart(
        request.match_info["id"], query_int(request, "t"), request.query.get("signal") or None)
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill_container(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    try:
        await request.app[CONTAINERS].kill(ref, request.query.get("signal") or None)
    except (InvalidParameter, Conflict) as e:  # dockerd names the container in these
        raise type(e)(f"cannot kill container: {ref}: {e}") from None
    return web.Response(status=204)


@routes.post("/containers/{id}/pause")
async def pause_container(request: web.Request) -> web.Response:
    await request.app[CONTAINERS].pause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause_container(request: web.Request) -> web.Response:
    await request.app[CONTAINERS].unpause(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename_container(request: web.Request) -> web.Response:
    name = request.query.get("name") or ""
    if not name:
        raise InvalidParameter("Neither old nor new names may be empty")
    await request.app[CONTAINERS].rename(request.match_info["id"], name)
    return web.Response(status=204)


@routes.post("/containers/{id}/resize")
async def resize_container(request: web.Request) -> web.Response:
    h, w = query_int(request, "h", 0), query_int(request, "w", 0)
    request.app[CONTAINERS].resize(request.match_info["id"], h or 0, w or 0)
    return web.Response(status=200)


@routes.delete("/containers/{id:.+}")  # a link's name has a slash: /parent/alias
async def remove_container(request: web.Request) -> web.Response:
    if query_bool(request, "link"):
        await request.app[NETWORKS].remove_link(request.match_info["id"])
        return web.Response(status=204)
    await request.app[CONTAINERS].remove(
        request.match_info["id"], force=query_bool(request, "force"),
        volumes=query_bool(request, "v"))
    return web.Response(status=204)


@routes.post("/containers/{id}/wait")
async def wait_container(request: web.Request) -> web.StreamResponse:
    wait = request.app[CONTAINERS].waiter(
        request.match_info["id"], request.query.get("condition") or "not-running")
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)  # the CLI blocks until the headers arrive
    result = await wait()
    try:
        await response.write(json_bytes(result))
        await response.write_eof()
    except ConnectionError:
        pass  # `docker run -d` drops its wait request once the container started
    return response


@routes.post("/containers/prune")
async def prune_containers(request: web.Request) -> web.Response:
    filters = query_filters(request, ("label", "label!", "until"))
    until = to_nanos(next(iter(filters.get("until")))) / 1e9 if filters.contains("until") \
        else None
    containers = request.app[CONTAINERS]
    deleted = []
    reclaimed = 0
    for c in containers.list():
        if c.state.running or not filters.match_labels(c.config.get("Labels") or {}):
            continue
        if until is not None and parse_time(c.created) >= until:
            continue
        written, _ = await containers.sizes(c)  # what its writable layer holds, as dockerd
        try:
            await containers.remove(c.id)
        except DaemonError:
            continue
        deleted.append(c.id)
        reclaimed += written
    return json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


@routes.get("/containers/{id}/logs")
async def container_logs(request: web.Request) -> web.StreamResponse:
    c = request.app[CONTAINERS].get(request.match_info["id"])
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidParameter("Bad parameters: you must choose at least one stream")
    tail_text = request.query.get("tail", "all")
    tail = None if tail_text in ("all", "") else query_int(request, "tail")
    if tail is not None and tail < 0:
        tail = None
    since = request.query.get("since")
    until = request.query.get("until")
    messages = request.app[CONTAINERS].logs(
        c.id, stdout=stdout, stderr=stderr, follow=query_bool(request, "follow"),
        timestamps=query_bool(request, "timestamps"), tail=tail,
        since=to_nanos(since) if since and since != "0" else None,
        until=to_nanos(until) if until and until != "0" else None)
    multiplexed = not c.tty
    content_type = ("application/vnd.docker.multiplexed-stream" if multiplexed
                    and api_version(request) >= (1, 42) else "application/vnd.docker.raw-stream")
    response = web.StreamResponse(headers={"Content-Type": content_type})
    await response.prepare(request)
    async for stream, data, _ in messages:
        await response.write(frame(stream, data) if multiplexed else data)
    await response.write_eof()
    return response
