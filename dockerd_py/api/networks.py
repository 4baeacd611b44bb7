"""Network routes: list, inspect, create, connect, disconnect, remove, prune; and the
NetworkSettings a container shows (inspect, ps)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..engine.containers.records import Container
from ..engine.networks import ports
from ..engine.networks.contract import Endpoint, Network, network_mode
from ..engine.timestamps import parse_time, to_nanos
from ..errors import InvalidParameter
from .httputil import json_response, query_filters, read_body
from .keys import CONTAINERS, NETWORKS

routes = web.RouteTableDef()

LIST_FILTERS = ("dangling", "driver", "id", "label", "name", "scope", "type")
PRUNE_FILTERS = ("label", "label!", "until")


def network_json(n: Network, containers: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's Network object, keys in dockerd's order."""
    return {
        "Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local",
        "Driver": n.driver, "EnableIPv4": True, "EnableIPv6": n.enable_ipv6,
        "IPAM": {"Driver": n.ipam_driver,
                 "Options": n.ipam_options if n.driver == "bridge" and n.name != "bridge"
                 else None,
                 "Config": list(n.subnets)},
        "Internal": n.internal, "Attachable": n.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers if containers is not None else {},
        "Options": n.options, "Labels": n.labels,
    }


def _attached(request: web.Request, n: Network) -> dict[str, Any]:
    out = {}
    for e in request.app[NETWORKS].network_endpoints(n.id):
        try:
            name = request.app[CONTAINERS].get(e.container_id).name
        except Exception:
            continue
        out[e.container_id] = {"Name": name, "EndpointID": e.endpoint_id, "MacAddress": e.mac,
                               "IPv4Address": f"{e.address}/{e.prefix_len}",
                               "IPv6Address": f"{e.address6}/{e.prefix_len6}" if e.address6
                               else ""}
    return out


def _matches(request: web.Request, n: Network, filters: Any) -> bool:
    if filters.contains("driver") and not filters.match("driver", n.driver):
        return False
    if filters.contains("name") and not filters.match("name", n.name):
        return False
    if filters.contains("id") and not any(n.id.startswith(v) for v in filters.get("id")):
        return False
    if not filters.match_labels(n.labels):
        return False
    if filters.contains("scope") and "local" not in filters.get("scope"):
        return False
    if filters.contains("type"):
        kinds = filters.get("type")
        bad = kinds - {"custom", "builtin"}
        if bad:
            raise InvalidParameter(f"invalid filter: 'type'='{sorted(bad)[0]}'")
        if ("builtin" if n.predefined else "custom") not in kinds:
            return False
    dangling = filters.bool_value("dangling")
    if dangling is not None:
        unused = not n.predefined and not request.app[NETWORKS].containers_on(n)
        if unused != dangling:
            return False
    return True


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.Response:
    filters = query_filters(request, LIST_FILTERS)
    return json_response([network_json(n, {}) for n in request.app[NETWORKS].list()
                          if _matches(request, n, filters)])


@routes.get("/networks/{id:.+}")
async def inspect_network(request: web.Request) -> web.Response:
    n = request.app[NETWORKS].get(request.match_info["id"])
    return json_response(network_json(n, _attached(request, n)))


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.Response:
    body = await read_body(request, "NetworkCreate", required=True)
    n = await request.app[NETWORKS].create(body)
    return json_response({"Id": n.id, "Warning": ""}, status=201)


@routes.post("/networks/{id:.+}/connect")
async def connect_network(request: web.Request) -> web.Response:
    body = await read_body(request, "NetworkConnect", required=True)
    container = body.get("Container") or ""
    if not container:
        raise InvalidParameter("container ID or name is required")  # as dockerd, 400
    await request.app[NETWORKS].connect(request.match_info["id"], container,
                                  dict(body.get("EndpointConfig") or {}))
    return web.Response(status=200)


@routes.post("/networks/{id:.+}/disconnect")
async def disconnect_network(request: web.Request) -> web.Response:
    body = await read_body(request, "NetworkDisconnect", required=True)
    container = body.get("Container") or ""
    if not container:
        raise InvalidParameter("container ID or name is required")
    await request.app[NETWORKS].disconnect(request.match_info["id"], container,
                                     bool(body.get("Force")))
    return web.Response(status=200)


@routes.delete("/networks/{id:.+}")
async def remove_network(request: web.Request) -> web.Response:
    await request.app[NETWORKS].remove(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/networks/prune")
async def prune_networks(request: web.Request) -> web.Response:
    filters = query_filters(request, PRUNE_FILTERS)
    until = None
    if filters.contains("until"):
        (value,) = tuple(filters.get("until"))[:1] or ("",)
        until = _until(value)

    def keep(n: Network) -> bool:
        if until is not None and to_nanos(n.created) >= until:
            return False
        if filters.contains("label") and not filters.match_labels(n.labels):
            return False
        if filters.contains("label!"):
            for item in filters.get("label!"):
                key, _, value = item.partition("=")
                if key in n.labels and (not value or n.labels[key] == value):
                    return False
        return True

    removed = await request.app[NETWORKS].prune(keep)
    return json_response({"NetworksDeleted": removed or None})


def _until(value: str) -> int:
    text = value.strip()
    try:
        if text and text[-1] in "smh" and text[:-1].replace(".", "", 1).isdigit():
            seconds = float(text[:-1]) * {"s": 1, "m": 60, "h": 3600}[text[-1]]
            return int((time.time() - seconds) * 1e9)
        if text.replace(".", "", 1).isdigit():
            return int(float(text) * 1e9)
        return int(parse_time(text) * 1e9)
    except (ValueError, KeyError):
        raise InvalidParameter(f"failed to parse value {value!r} of filter 'until'") from None


# -- a container's NetworkSettings --------------------------------------------------------

def _endpoint_json(n: Network | None, settings: dict[str, Any],
                   e: Endpoint | None) -> dict[str, Any]:
    aliases = settings.get("Aliases")
    return {
        "IPAMConfig": settings.get("IPAMConfig"), "Links": settings.get("Links"),
        "Aliases": aliases or None, "MacAddress": e.mac if e else "",
        "DriverOpts": settings.get("DriverOpts"), "GwPriority": settings.get("GwPriority", 0),
        "NetworkID": n.id if n else settings.get("NetworkID", ""),
        "EndpointID": e.endpoint_id if e else "", "Gateway": e.gateway if e else "",
        "IPAddress": e.address if e else "", "IPPrefixLen": e.prefix_len if e else 0,
        "IPv6Gateway": e.gateway6 if e else "",
        "GlobalIPv6Address": e.address6 if e else "",
        "GlobalIPv6PrefixLen": e.prefix_len6 if e else 0,
        "DNSNames": (e.dns_names or None) if e else None,
    }


def _live_endpoints(request: web.Request, c: Container) -> dict[str, Endpoint]:
    """A stopped container shows no address, even while its teardown finishes."""
    if c.state.status not in ("running", "paused"):
        return {}
    return dict(request.app[NETWORKS].endpoints(c.id))


def container_networks(request: web.Request, c: Container) -> dict[str, Any]:
    eps = _live_endpoints(request, c)
    out = {}
    configured = (c.networking or {}).get("EndpointsConfig") or {}
    if network_mode(c.host_config).startswith("container:"):
        return {}
    if not configured:  # created before networking existed
        configured = {network_mode(c.host_config): {}}
    for name, settings in configured.items():
        try:
            n = request.app[NETWORKS].get(name)
        except Exception:
            n = None
        out[name] = _endpoint_json(n, dict(settings or {}), eps.get(n.id) if n else None)
    return out


def container_host_config(request: web.Request, c: Container, hc: dict[str, Any]
                          ) -> dict[str, Any]:
    """inspect's HostConfig: links as dockerd shows them ("/child:/parent/alias"), and
    none for a container on a user-defined network (its links are its endpoint's)."""
    if not hc.get("Links"):
        return hc
    shown = request.app[NETWORKS].links_shown(c.name, hc) \
        if network_mode(c.host_config) == "bridge" else None
    return {**hc, "Links": shown}


def container_config(request: web.Request, c: Container, config: dict[str, Any]
                     ) -> dict[str, Any]:
    """inspect's Config: a container on the default network of a daemon without one
    (--bridge none) has run with networking disabled, as dockerd records at its start."""
    started = not c.state.started_at.startswith("0001-")
    if started and network_mode(c.host_config) == "bridge" and \
            not any(n.name == "bridge" for n in request.app[NETWORKS].list()):
        return {**config, "NetworkDisabled": True}
    return config


def network_settings(request: web.Request, c: Container) -> dict[str, Any]:
    """inspect's NetworkSettings: the deprecated top-level fields mirror the default bridge."""
    networks = container_networks(request, c)
    eps = _live_endpoints(request, c)
    running = c.state.status in ("running", "paused")
    bridge = networks.get("bridge") or {}
    sandbox = request.app[NETWORKS].netns_root + "/" + c.id if eps else ""
    bindings = request.app[NETWORKS].bindings(c.id)
    return {
        "Bridge": "", "SandboxID": c.id if eps else "", "SandboxKey": sandbox,
        "Ports": ports.inspect_ports(c.config, bindings) if running else {},
        "HairpinMode": False, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": bridge.get("EndpointID", ""), "Gateway": bridge.get("Gateway", ""),
        "GlobalIPv6Address": bridge.get("GlobalIPv6Address", ""),
        "GlobalIPv6PrefixLen": bridge.get("GlobalIPv6PrefixLen", 0),
        "IPAddress": bridge.get("IPAddress", ""), "IPPrefixLen": bridge.get("IPPrefixLen", 0),
        "IPv6Gateway": bridge.get("IPv6Gateway", ""), "MacAddress": bridge.get("MacAddress", ""),
        "Networks": networks,
    }


def summary_ports(request: web.Request, c: Container) -> list[dict[str, Any]]:
    if c.state.status not in ("running", "paused"):
        return []
    return ports.summary_ports(c.config, request.app[NETWORKS].bindings(c.id))


def port_filter_matches(request: web.Request, c: Container, key: str, values: frozenset[str]
                        ) -> bool:
    """ps --filter publish=/expose=: "80", "80/tcp", "8000-8080/udp"."""
    if key == "publish":
        have = {(b.host_port, b.proto) for b in request.app[NETWORKS].bindings(c.id)}
    else:
        have = {ports.split_port(k if "/" in k else f"{k}/tcp")
                for k in c.config.get("ExposedPorts") or {}}
    for v in values:
        spec, _, proto = v.partition("/")
        low, _, high = spec.partition("-")
        try:
            lo, hi = int(low), int(high or low)
        except ValueError:
            raise InvalidParameter(f"invalid filter '{key}={v}'") from None
        if any(lo <= p <= hi and (not proto or proto == pr) for p, pr in have):
            return True
    return False
