"""System routes: ping, version, info, disk usage, events."""

from __future__ import annotations

import asyncio
import datetime
import platform
import threading
import time
from typing import Any

from aiohttp import web

from ..engine import events as engine_events
from ..engine.host import backing_fs, binary_version, host, ip_forward, open_fds
from ..engine.images.platform import ARCH
from ..engine.timestamps import to_nanos
from ..errors import InvalidParameter
from ..version import API_VERSION, GIT_COMMIT, MIN_API_VERSION, VERSION
from . import build as build_api
from .containers import summary as container_summary
from .httputil import JSON, json_bytes, json_response, query_filters
from .images import shared_layer_counts, shared_size, summary
from .keys import CONFIG, CONTAINERS, DAEMON_ID, EVENTS, IMAGES, RUNTIMES, SNAPSHOTS, VOLUMES
from .server import api_version
from .volumes import volume_json

routes = web.RouteTableDef()

_PING_HEADERS = {
    "Builder-Version": "2",   # BuildKit (POST /grpc, /session); POST /build still works
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


@routes.get("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK", content_type="text/plain", headers=_PING_HEADERS)


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.Response:
    return web.Response(headers={**_PING_HEADERS, "Content-Type": "text/plain; charset=utf-8",
                                 "Content-Length": "0"})


def _build_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00")


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    h = host()
    runtimes = request.app[RUNTIMES]
    runtime = runtimes.default
    components = [{
        "Name": "Engine", "Version": VERSION,
        "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION,
                    "GitCommit": GIT_COMMIT, "GoVersion": f"python{platform.python_version()}",
                    "Os": "linux", "Arch": _go_arch(), "KernelVersion": h.kernel,
                    "Experimental": "false", "BuildTime": _STARTED}}]
    # Runs `<runtime> --version` once (cached): not on the event loop.
    runtime_path = (runtimes.all().get(runtime) or {}).get("path") or runtime
    path, text = await asyncio.to_thread(binary_version, runtime_path)
    if path:
        components.append({"Name": runtime, "Version": _version_word(text),
                           "Details": {"GitCommit": ""}})
    return json_response({
        "Platform": {"Name": "dockerd-py"},
        "Components": components,
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": GIT_COMMIT,
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _go_arch(),
        "KernelVersion": h.kernel,
        "BuildTime": _STARTED,
    })


_STARTED = _build_time()


def _go_arch() -> str:
    return ARCH


def _version_word(text: str) -> str:
    words = [w for w in text.split() if any(c.isdigit() for c in w)]
    return words[0] if words else text


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]()
    h, backing, forwarding, nfd = await asyncio.to_thread(
        lambda: (host(), backing_fs(cfg.data_root), ip_forward(), open_fds()))
    images = await request.app[IMAGES].list()
    containers = request.app[CONTAINERS].list()
    # The paths the containers really run (daemon.json's, or the binary found), as dockerd.
    runtimes = {name: {"path": entry["path"]}
                for name, entry in request.app[RUNTIMES].all().items()}
    snapshots = await request.app[SNAPSHOTS].list()
    warnings: list[str] = []
    return json_response({
        "ID": request.app[DAEMON_ID],
        "Containers": len(containers),
        "ContainersRunning": sum(c.state.status == "running" for c in containers),
        "ContainersPaused": sum(c.state.status == "paused" for c in containers),
        "ContainersStopped": sum(not c.state.running for c in containers),
        "Images": len(images),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", backing],
                         ["Supports d_type", "true"], ["Using metacopy", "false"],
                         ["Native Overlay Diff", "true"], ["userxattr", "false"],
                         ["Snapshots", str(len(snapshots))]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["journald", "json-file", "local"]},
        "MemoryLimit": True, "SwapLimit": True, "KernelMemoryTCP": False,
        "CpuCfsPeriod": True, "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True,
        "PidsLimit": True, "IPv4Forwarding": forwarding, "Debug": cfg.debug,
        "NFd": nfd, "OomKillDisable": h.cgroup_version == "1",
        "NGoroutines": threading.active_count() + len(asyncio.all_tasks()),
        "SystemTime": datetime.datetime.now().astimezone().isoformat(),
        "LoggingDriver": cfg.log_driver, "CgroupDriver": "cgroupfs",
        "CgroupVersion": h.cgroup_version, "NEventsListener": request.app[EVENTS].listeners(),
        "KernelVersion": h.kernel, "OperatingSystem": h.operating_system,
        "OSVersion": h.os_version, "OSType": "linux", "Architecture": h.architecture,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
                           "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": list(
                               cfg.registry_mirrors), "Secure": True, "Official": True}},
                           "Mirrors": list(cfg.registry_mirrors)},
        "NCPU": h.ncpu, "MemTotal": h.mem_total, "GenericResources": None,
        "DockerRootDir": cfg.data_root, "HttpProxy": h.http_proxy, "HttpsProxy": h.https_proxy,
        "NoProxy": h.no_proxy, "Name": h.name, "Labels": list(cfg.labels),
        "ExperimentalBuild": False, "ServerVersion": VERSION,
        "Runtimes": runtimes, "DefaultRuntime": cfg.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": cfg.live_restore, "Isolation": "",
        "InitBinary": "docker-init",
        "ContainerdCommit": {"ID": ""}, "RuncCommit": {"ID": ""}, "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Warnings": warnings or None,
    })


@routes.get("/system/df")
async def disk_usage(request: web.Request) -> web.Response:
    types = set(request.query.getall("type", [])) or {"image", "container", "volume", "build-cache"}
    valid = {"image", "container", "volume", "build-cache"}
    if types - valid:
        raise InvalidParameter(f"unknown object type: {sorted(types - valid)[0]}")
    version = api_version(request)
    out: dict[str, Any] = {}
    if "image" in types:
        images = await request.app[IMAGES].list()
        counts = shared_layer_counts(images)
        snapshots = await request.app[SNAPSHOTS].list()
        out["LayersSize"] = sum(s.size for s in snapshots if s.kind == "committed")
        users = request.app[IMAGES].containers_using
        out["Images"] = [summary(i, version, shared_size=shared_size(i, counts),
                                 containers=sum(map(len, users(i.id)))) for i in images]
    if "container" in types:
        containers = request.app[CONTAINERS]
        out["Containers"] = [container_summary(c, await containers.sizes(c), request=request)
                             for c in containers.list()]
    if "volume" in types:
        out["Volumes"] = [volume_json(v, (size, refs))
                          for v, size, refs in await request.app[VOLUMES].disk_usage()]
    if "build-cache" in types:
        out["BuildCache"], out["BuilderSize"] = await build_api.cache_usage(request)
    return json_response(out)


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    filters = query_filters(request, engine_events.EVENT_FILTERS)
    since = request.query.get("since")
    until = request.query.get("until")
    since_ns = to_nanos(since) if since else None
    until_ns = to_nanos(until) if until else None
    version = api_version(request)
    queue = request.app[EVENTS].subscribe()
    try:
        response = web.StreamResponse(headers={"Content-Type": JSON})
        await response.prepare(request)  # clients block until the headers arrive

        async def send(ev: engine_events.Event) -> None:
            if engine_events.matches(filters, ev):
                await response.write(json_bytes(ev.to_json(version)))

        replayed: set[int] = set()
        if since_ns is not None:
            for ev in request.app[EVENTS].since(since_ns, until_ns):
                replayed.add(id(ev))
                await send(ev)
        while True:
            timeout = None
            if until_ns is not None:
                timeout = (until_ns - time.time_ns()) / 1e9
                if timeout <= 0:
                    break
            try:
                live = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if live is None:
                break
            if id(live) not in replayed:
                await send(live)
        await response.write_eof()
        return response
    except ConnectionError:  # the client went away: that is how event streams end
        return response
    finally:
        request.app[EVENTS].unsubscribe(queue)
