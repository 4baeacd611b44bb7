"""The networks a container is configured for (its NetworkingConfig): checked at its
create, changed by `docker network connect` and `disconnect`."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
from typing import Any

from ...errors import Forbidden, InvalidParameter, NotFound
from ..containers.contract import ContainerRecords
from . import grammar, ipam, links, netns, ports
from .attach import Attachments, endpoints_config
from .contract import network_mode
from .records import Network
from .store import NetworkStore


class Connections:
    def __init__(self, store: NetworkStore, containers: ContainerRecords,
                 attachments: Attachments) -> None:
        self.store = store
        self.containers = containers
        self.attachments = attachments

    def validate(self, hc: dict[str, Any], networking: dict[str, Any],
                 config: dict[str, Any]) -> dict[str, Any]:
        """Check the container's networking at create; returns NetworkingConfig as stored."""
        mode = network_mode(hc)
        # The CLI names the default network "default" in EndpointsConfig too.
        endpoints = {("bridge" if k == "default" else k): dict(v or {})
                     for k, v in endpoints_config(networking).items()}
        # The container-wide MAC is the main network's (moby's handleMACAddressBC).
        if config.get("MacAddress"):
            grammar.check_mac(str(config["MacAddress"]), mode)
        for name, ep in endpoints.items():
            check_grammar(ep, name)
        ports.validate(config, hc)
        self.attachments.linking.validate(hc)
        kind, _, ref = mode.partition(":")
        if kind == "container":
            self.containers.get(ref)
            return {"EndpointsConfig": {}}
        if mode in ("host", "none"):
            if hc.get("PortBindings") and mode == "none":
                pass  # dockerd accepts and ignores them too
            return {"EndpointsConfig": {mode: {**endpoints.get(mode, {}),
                                               "NetworkID": self.store.get(mode).id}}}
        # As dockerd, a network that does not exist (yet) fails the start, not the create.
        out = {mode: endpoints.pop(mode, {})}
        out.update(endpoints)
        for name, ep in out.items():
            with contextlib.suppress(NotFound):
                net = self.store.get(name)
                check_endpoint(net, ep)
                ep["NetworkID"] = net.id
        return {"EndpointsConfig": out}

    async def connect(self, ref: str, container_ref: str, settings: dict[str, Any]) -> None:
        n = self.store.get(ref)
        c = self.containers.get(container_ref)
        mode = network_mode(c.host_config)
        if n.driver != "bridge" or mode in ("host", "none") or mode.startswith("container:"):
            if mode == "host" or n.name == "host":
                raise Forbidden("container cannot be disconnected from host network or "
                                "connected to host network")
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        check_grammar(settings)
        check_endpoint(n, settings)
        async with self.containers.lock(c.id):
            c = self.containers.get(c.id)
            configured = endpoints_config(c.networking)
            if n.name in configured:
                raise Forbidden(f"endpoint with name {c.name} already exists in network "
                                f"{n.name}")
            settings = {**settings, "NetworkID": n.id}
            updated = {**configured, n.name: settings}
            if c.state.status in ("running", "paused"):
                root = self.attachments.netns_root
                path = netns.path(root, c.id)
                if not netns.exists(root, c.id):
                    raise Forbidden(f"container {c.id} has no network namespace of its own")
                used = {e.interface for e in self.store.endpoints(c.id).values()}
                iface = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
                c2 = dataclasses.replace(c, networking={"EndpointsConfig": updated})
                await self.attachments.attach_one(c2, n, path, iface, publish=False)
            await self.containers.save(dataclasses.replace(
                self.containers.get(c.id), networking={"EndpointsConfig": updated}))
        self.store.event(n, "connect", container=c.id)

    async def disconnect(self, ref: str, container_ref: str, force: bool) -> None:
        n = self.store.get(ref)
        try:
            c = self.containers.get(container_ref)
        except NotFound:
            if not force:
                raise
            for e in list(self.store.network_endpoints(n.id)):
                if e.container_id.startswith(container_ref):
                    await self.attachments.detach_one(e.container_id, "", n.id, e)
            return
        if n.name == "host" or network_mode(c.host_config) == "host":
            raise Forbidden("container cannot be disconnected from host network or connected "
                            "to host network")
        async with self.containers.lock(c.id):
            c = self.containers.get(c.id)
            configured = dict(endpoints_config(c.networking))
            if n.name not in configured:
                raise Forbidden(f"container {c.id} is not connected to the network {n.name}")
            ep = self.store.endpoints(c.id).get(n.id)
            if ep is not None:
                await self.attachments.detach_one(c.id, c.name, n.id, ep)
                if ep.ports:
                    self.attachments.ports.release(c.id)
            del configured[n.name]
            await self.containers.save(dataclasses.replace(
                self.containers.get(c.id), networking={"EndpointsConfig": configured}))
        self.store.event(n, "disconnect", container=c.id)


def check_endpoint(n: Network, ep: dict[str, Any]) -> None:
    """An endpoint's settings against its network: --ip, --ip6, --alias, --mac-address."""
    config = ep.get("IPAMConfig") or {}
    for key, version in (("IPv4Address", 4), ("IPv6Address", 6)):
        ip = str(config.get(key) or "")
        if not ip:
            continue
        if n.name == "bridge":
            raise InvalidParameter("user specified IP address is supported on user defined "
                                   "networks only")
        pools = ipam.pools(n.subnets, version)
        # IPv6 subnets are always the client's; the IPv4 one may be the daemon's choice
        if not pools or (version == 4 and not n.user_subnets):
            raise InvalidParameter("user specified IP address is supported only when "
                                   "connecting to networks with user configured subnets")
        addr = ipam.parse_ip(ip)
        if not any(addr in p.subnet for p in pools):
            raise InvalidParameter(f"no configured subnet or ip-range contain the IP "
                                   f"address {ip}")
    if ep.get("Aliases") and n.name == "bridge":
        raise InvalidParameter("network-scoped alias is supported only for containers in "
                               "user defined networks")


def check_grammar(ep: dict[str, Any], network: str | None = None) -> None:
    """What an endpoint's settings hand to root programs, whether or not its network
    exists yet: its MAC (ip, netavark) and its aliases (aardvark-dns' config)."""
    if ep.get("MacAddress"):
        grammar.check_mac(str(ep["MacAddress"]), network)
    for alias in ep.get("Aliases") or []:
        grammar.check_alias(str(alias))
    for link in ep.get("Links") or []:
        grammar.check_alias(links.parse(str(link))[1])
    check_link_local((ep.get("IPAMConfig") or {}).get("LinkLocalIPs") or [])


def check_link_local(addresses: list[Any]) -> None:
    """IPAMConfig.LinkLocalIPs, added to the interface with ip: addresses, link-local ones
    (dockerd's words, which it says at start; here at create and connect)."""
    for text in map(str, addresses):
        if not text:
            continue
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise InvalidParameter(f"Invalid link-local IP address: "
                                   f"[{' '.join(map(str, addresses))}]") from None
        if not addr.is_link_local:
            raise InvalidParameter(f"invalid link local IP address: {text}")
