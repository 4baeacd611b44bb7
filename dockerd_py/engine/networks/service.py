"""The network service (contract.py): bridge networks through netavark, and the
endpoints of the containers on them. A container's life on networks (validate at
create, attach at start, detach at exit, connect and disconnect) is told in contract.py.

Its parts, one job each:
  store.py          the networks and endpoints in memory and in their rows, locks, events
  attach.py         a container's start and exit: namespace, addresses, host ports and
                    interfaces; the default bridge's anchor
  connect.py        create-time checks, and connect/disconnect of existing containers
  defaultbridge.py  the predefined networks, the default bridge from the daemon's flags
  isolation.py      the rules that keep bridges apart
  grammar.py        what a MAC, a bridge name or an alias may be: they reach ip,
                    iptables-restore, netavark and aardvark-dns' config
and this module: networks (create, remove, prune) and the daemon's start and stop.

Daemon lifecycle: ``load()`` reads networks and endpoints back and makes the
predefined networks; ``reconcile(running)``, once the containers are restored, tears
down what the containers that exited while the daemon was down left behind;
``close()`` takes everything of ours off the host (anchor, bridges, NAT chains,
isolation rules) unless containers are still attached (live restore: the next
daemon takes them over).

The default bridge keeps an anchor while the daemon runs: an endpoint of the
daemon's own (a pinned namespace, the subnet's last address) so the bridge and its
NAT chains stay up between containers, as docker0 does. Without it every
`docker run` on an idle bridge pays for building and tearing down the bridge
(~170 ms). It goes at shutdown when no container is left on the bridge.

Each network has a lock around IPAM changes, and around netavark calls where a
teardown may delete the bridge under a concurrent setup (not on the anchored bridge).
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import Conflict, DaemonError, Forbidden, InvalidParameter, NotFound
from ..containers.contract import ContainerRecords
from ..events import EventBus
from ..images.mediatypes import now_rfc3339
from ..metadata.db import Database
from . import grammar, ipam, netns, ports
from .attach import Attachments
from .connect import Connections
from .contract import Attachment, NetworkedContainer
from .defaultbridge import ensure_predefined
from .isolation import Isolation
from .netavark import Netavark
from .ownership import BridgeOwnership, Owner
from .records import BRIDGE_NAME_OPTION, Endpoint, Network
from .settings import NetworkSettings, free_subnet
from .store import ANCHOR_PREFIX, BindingList, EndpointList, NetworkList, NetworkStore, StrList

# Go's unicode.IsSpace: dockerd refuses a name that is empty once these are trimmed.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006" \
            "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
# Names dockerd keeps for its predefined networks ("default" is the bridge's other name).
_RESERVED = ("bridge", "host", "none", "default")


def check_name(name: str) -> None:
    """dockerd's rule: any name with a character that is not white space, except the
    predefined networks' names. A name never reaches a program run as root: netavark and
    aardvark-dns know networks by their IDs."""
    if not name.strip(_GO_SPACE):
        raise InvalidParameter(f"invalid name: {name}")
    if name in _RESERVED:
        raise Forbidden(f"operation is not permitted on predefined {name} network ")


class NetworkService:
    def __init__(self, settings: NetworkSettings, db: Database, events: EventBus,
                 containers: ContainerRecords) -> None:
        self.settings = settings
        self.containers = containers
        self.netns_root = os.path.join(settings.exec_root, "netns")
        self.ports = ports.PortAllocator()
        self.isolation = Isolation(settings.exec_root, enabled=settings.iptables)
        self.store = NetworkStore(db, events)
        self.ownership = BridgeOwnership(settings.exec_root)
        self.attachments = Attachments(
            self.store, containers, Netavark(os.path.join(settings.exec_root, "netavark")),
            self.ports, self.isolation, self.netns_root, self.ownership)
        self.connections = Connections(self.store, containers, self.attachments)

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Network:
        return self.store.get(ref)

    def list(self) -> NetworkList:
        return self.store.list()

    def endpoints(self, cid: str) -> dict[str, Endpoint]:
        return self.store.endpoints(cid)

    def network_endpoints(self, nid: str, *, reserved: bool = False) -> EndpointList:
        return self.store.network_endpoints(nid, reserved=reserved)

    def containers_on(self, n: Network) -> StrList:
        return self.store.containers_on(n)

    def bindings(self, cid: str) -> BindingList:
        return self.store.bindings(cid)

    def host_gateway(self) -> str:
        return self.store.host_gateway()

    # -- containers --------------------------------------------------------------

    def validate(self, hc: dict[str, Any], networking: dict[str, Any],
                 config: dict[str, Any]) -> dict[str, Any]:
        return self.connections.validate(hc, networking, config)

    async def attach(self, c: NetworkedContainer) -> Attachment:
        await self._default_bridge_still_ours()
        return await self.attachments.attach(c)

    async def _default_bridge_still_ours(self) -> None:
        """Another program (Docker's dockerd starting after us) may have made an interface
        of the default bridge's name before our first container: while nothing of ours is
        on the bridge, it is chosen again (a name and subnet of our own)."""
        for n in list(self.store.networks.values()):
            if n.name == "bridge" and not self.store.network_endpoints(n.id, reserved=True) \
                    and self.ownership.owner(n.bridge) is Owner.FOREIGN:
                async with self.store.create_lock:
                    await ensure_predefined(self.store, self.settings, self.attachments,
                                            self.ownership)
                    await self.isolation.update(self.store.bridges())

    async def detach(self, cid: str, name: str = "") -> None:
        await self.attachments.detach(cid, name)

    async def connect(self, ref: str, container_ref: str, settings: dict[str, Any]) -> None:
        await self.connections.connect(ref, container_ref, settings)

    async def disconnect(self, ref: str, container_ref: str, force: bool) -> None:
        await self.connections.disconnect(ref, container_ref, force)

    async def remove_link(self, name: str) -> None:
        await self.attachments.linking.remove_link(name)

    def links_shown(self, name: str, host_config: Mapping[str, Any]) -> StrList | None:
        return self.attachments.linking.shown(name, host_config)

    # -- daemon start and stop ---------------------------------------------------

    async def load(self) -> None:
        """Networks and endpoints from the database; the predefined networks made."""
        os.makedirs(self.netns_root, mode=0o700, exist_ok=True)
        await self.store.load()
        for e in self.store.endpoints_by.values():
            self.ports.hold(e.container_id, (ports.Binding.from_netavark(m) for m in e.ports))
        await self._mark_legacy_bridges()
        await ensure_predefined(self.store, self.settings, self.attachments, self.ownership)
        if self.store.endpoints_by:
            await self.isolation.update(self.store.bridges(), start=True)

    async def _mark_legacy_bridges(self) -> None:
        """Bridges with containers recorded on them by a daemon from before the marks
        (live restore): ours."""
        for n in self.store.networks.values():
            if n.driver == "bridge" and self.store.network_endpoints(n.id):
                await self.ownership.claim(n.bridge)

    async def reconcile(self, running: set[str]) -> None:
        """After the containers are restored: tear down what containers that exited
        while the daemon was down left behind."""
        endpoints = self.store.endpoints_by
        for cid in {c for (c, _) in endpoints} - running:
            if not cid.startswith(ANCHOR_PREFIX):
                await self.attachments.detach_all(cid, "")
        with contextlib.suppress(OSError):
            for name in os.listdir(self.netns_root):
                if name not in running and not any(c == name for (c, _) in endpoints):
                    await asyncio.to_thread(netns.remove, self.netns_root, name)

    async def close(self) -> None:
        """Daemon shutdown: with no container left on a bridge, nothing of ours stays on
        the host (anchor, bridge, NAT chains, isolation rules)."""
        await asyncio.gather(*self.store.teardowns.values(), return_exceptions=True)
        if any(not c.startswith(ANCHOR_PREFIX) for (c, _) in self.store.endpoints_by):
            return  # live restore: the next daemon takes them over
        for cid in {c for (c, _) in self.store.endpoints_by}:
            await self.attachments.detach_all(cid, "")
        if self.isolation.active:
            await self.isolation.remove()

    # -- networks ------------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> Network:
        name = str(body.get("Name") or "")
        check_name(name)
        driver = str(body.get("Driver") or "bridge")
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f"plugin \"{driver}\" not found")
        enable_ipv6 = bool(body.get("EnableIPv6"))
        ipam_body = body.get("IPAM") or {}
        ipam_driver = str(ipam_body.get("Driver") or "default")
        if ipam_driver != "default":
            raise NotFound(f"plugin \"{ipam_driver}\" not found")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        parsed = [ipam.pool_from_config(c) for c in list(ipam_body.get("Config") or [])]
        if enable_ipv6 and not any(subnet.version == 6 for subnet, _, _ in parsed):
            # dockerd 20.10 has no default IPv6 pools
            raise NotFound("could not find an available, non-overlapping IPv6 address pool "
                           "among the defaults to assign to the network")
        nid = secrets.token_hex(32)
        bridge = options.get(BRIDGE_NAME_OPTION) or f"br-{nid[:12]}"
        grammar.check_bridge_name(bridge)
        networks = self.store.networks
        async with self.store.create_lock:
            if any(n.name == name for n in networks.values()):
                raise Conflict(f"network with name {name} already exists")
            taken = BRIDGE_NAME_OPTION in options and os.path.exists(f"/sys/class/net/{bridge}")
            if taken or any(n.bridge == bridge for n in networks.values()):
                raise Forbidden(f"bridge name {bridge} is already in use")
            used: list[ipam.IPNet] = [ipaddress.ip_network(s["Subnet"])
                                      for n in networks.values() for s in n.subnets]
            pools: list[ipam.Pool] = []
            for subnet, gateway, ip_range in parsed:  # several, of one family or both
                ipam.check_overlap(subnet, [*used, *(p.subnet for p in pools)])
                pools.append(ipam.make_pool(subnet, gateway, ip_range))
            user_v4 = any(p.version == 4 for p in pools)
            if not user_v4:  # an IPv4 subnet always, from the pools unless given
                v4_used = [u for u in used if isinstance(u, ipaddress.IPv4Network)]
                pools.insert(0, ipam.make_pool(free_subnet(self.settings, v4_used), None, None))
            pools.sort(key=lambda p: p.version)
            n = Network(id=nid, name=name, driver="bridge", created=now_rfc3339(),
                        bridge=bridge, subnets=[p.to_api() for p in pools],
                        user_subnets=user_v4, enable_ipv6=enable_ipv6,
                        internal=bool(body.get("Internal")),
                        attachable=bool(body.get("Attachable")), labels=labels,
                        options=options,
                        ipam_options={str(k): str(v) for k, v in
                                      (ipam_body.get("Options") or {}).items()})
            await self.store.save(n)
            await self.isolation.update(self.store.bridges())
        self.store.event(n, "create")
        return n

    async def remove(self, ref: str) -> None:
        n = self.get(ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        async with self.store.lock(n.id):
            users = self.containers_on(n)
            if users:
                # a build step's endpoint has no container record; dockerd names the
                # build container there, so its id stands for both
                try:
                    name = self.containers.get(users[0]).name
                except NotFound:
                    name = users[0][:12]
                raise Conflict(f"error while removing network: network {n.name} has active "
                               f"endpoints (name:\"{name}\" id:\"{users[0][:12]}\")")
            await self.store.delete(n)
            await self.isolation.update(self.store.bridges())
        self.store.forget_lock(n.id)
        self.store.event(n, "destroy")

    async def prune(self, keep: Callable[[Network], bool]) -> StrList:
        removed: StrList = []
        for n in self.list():
            if n.predefined or not keep(n) or self.containers_on(n):
                continue
            with contextlib.suppress(DaemonError):
                await self.remove(n.id)
                removed.append(n.name)
        return removed
