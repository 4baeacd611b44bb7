"""The network service: networks (create, list, remove, prune, connect,
disconnect) and the attachment of containers to them across their lifecycle.

Lifecycle of a container on bridge networks:
  create   validate(): addresses, aliases and MACs asked for networks that exist; a
           network that does not exist fails the start, as with dockerd
  start    attach(): pin a netns, allocate addresses and host ports, set up one
           interface per network; endpoints are written before the setup so a crash
           leaves rows a restarted daemon tears down
  exit     detach(): the reverse; addresses and ports are freed once it is done
Modes that need no driver: host (the host's namespace), none (a fresh
namespace with loopback only, made by the runtime) and container:<id> (the
other container's namespace).

Interfaces are netavark's (bridge, veth, NAT, port forwarding, aardvark-dns), except
on the default bridge for a container without published ports: there the
anchor (below) already made the bridge and its rules, and plainveth makes the veth
pair in a few ms. Those are deleted behind the caller (detach returns at once).

The default bridge keeps an anchor while the daemon runs: an endpoint of the
daemon's own (a pinned namespace, the subnet's last address) so the bridge and
its NAT chains stay up between containers, as docker0 does. Without it every
`docker run` on an idle bridge pays for building and tearing down the bridge
(~170 ms). It goes at shutdown when no container is left on the bridge.

Each network has a lock around IPAM changes, and around netavark calls where a
teardown may delete the bridge under a concurrent setup (not on the anchored bridge).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import Conflict, DaemonError, Forbidden, InternalError, InvalidParameter, NotFound
from ..containers.contract import ContainerRecords
from ..events import EventBus
from ..images.mediatypes import now_rfc3339
from ..metadata.db import Database
from . import ipam, netns, plainveth, ports, records
from .isolation import Isolation
from .netavark import Netavark
from .records import Endpoint, Network

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_HEX = re.compile(r"^[0-9a-f]+$")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"


@dataclass(frozen=True)
class NetworkSettings:
    """The daemon's networking flags (dockerd's -b, --bip, --fixed-cidr, ...)."""
    exec_root: str                    # netns pins, netavark's config and state live below
    bridge: str = ""                  # default bridge interface ("none": no default bridge)
    bip: str = ""                     # its gateway address and subnet, e.g. 172.17.0.1/16
    fixed_cidr: str = ""              # where its container addresses come from
    default_address_pools: tuple[dict[str, Any], ...] = ()  # {"base": CIDR, "size": N}
    iptables: bool = True


@dataclass(frozen=True)
class Attachment:
    """What the runtime and /etc files need from a started container's networking."""
    netns_path: str | None                  # None: a new namespace; "host"
    addresses: tuple[str, ...] = ()        # for /etc/hosts
    nameservers: tuple[str, ...] | None = None  # aardvark on user networks
    link_hosts: tuple[str, ...] = ()       # "ip\tname alias" lines for --link
    host_gateway: str = ""                 # what --add-host name:host-gateway means


ANCHOR_PREFIX = "anchor-"
# The service has a list() method: these keep annotations inside it unambiguous.
NetworkList = list[Network]
EndpointList = list[Endpoint]
StrList = list[str]
BindingList = list[ports.Binding]
PoolList = list[tuple[str, int]]
NetworkEndpoints = list[tuple[str, Endpoint]]


def _anchor_id(nid: str) -> str:
    return ANCHOR_PREFIX + nid[:12]


def network_mode(hc: dict[str, Any]) -> str:
    mode = str(hc.get("NetworkMode") or "default")
    return "bridge" if mode == "default" else mode


class NetworkService:
    def __init__(self, settings: NetworkSettings, db: Database, events: EventBus,
                 containers: ContainerRecords) -> None:
        self.settings = settings
        self.db = db
        self.events = events
        self.containers = containers
        self.netns_root = os.path.join(settings.exec_root, "netns")
        self.driver = Netavark(os.path.join(settings.exec_root, "netavark"))
        self.ports = ports.PortAllocator()
        self.isolation = Isolation(settings.exec_root, enabled=settings.iptables)
        self._networks: dict[str, Network] = {}
        self._endpoints: dict[tuple[str, str], Endpoint] = {}  # (container, network)
        self._locks: dict[str, asyncio.Lock] = {}
        self._teardowns: dict[str, asyncio.Task[None]] = {}  # see _detach_all
        self._isolating = False
        self._isolation_checked = False  # our FORWARD jump seen above netavark's
        self._create_lock = asyncio.Lock()

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By full ID, name, or unique ID prefix (dockerd's order)."""
        if ref in self._networks:
            return self._networks[ref]
        for n in self._networks.values():
            if n.name == ref:
                return n
        if ref and _HEX.match(ref):
            found = [n for n in self._networks.values() if n.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found "
                                       "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def list(self) -> NetworkList:
        return sorted(self._networks.values(), key=lambda n: n.created)

    def endpoints(self, cid: str) -> dict[str, Endpoint]:
        """network id → endpoint, for a running container (or one being torn down)."""
        return {nid: e for (c, nid), e in self._endpoints.items() if c == cid}

    def network_endpoints(self, nid: str, *, reserved: bool = False) -> EndpointList:
        """Containers' endpoints on the network; reserved: also the anchor and those whose
        teardown is still under way (all that hold an address)."""
        return [e for (c, n), e in self._endpoints.items() if n == nid and (
            reserved or not (c.startswith(ANCHOR_PREFIX) or c in self._teardowns))]

    def bindings(self, cid: str) -> BindingList:
        return [ports.Binding.from_netavark(m) for e in self.endpoints(cid).values()
                for m in e.ports]

    def _lock(self, nid: str) -> asyncio.Lock:
        return self._locks.setdefault(nid, asyncio.Lock())

    def _event(self, n: Network, action: str, **extra: str) -> None:
        self.events.publish("network", action, n.id, {"name": n.name, "type": n.driver, **extra})

    # -- daemon start ----------------------------------------------------------

    async def load(self) -> None:
        """Networks and endpoints from the database; the predefined networks made."""
        os.makedirs(self.netns_root, mode=0o700, exist_ok=True)
        for n in await self.db.run(records.load_networks):
            self._networks[n.id] = n
        for e in await self.db.run(records.load_endpoints):
            self._endpoints[(e.container_id, e.network_id)] = e
            self.ports.hold(e.container_id, (ports.Binding.from_netavark(m) for m in e.ports))
        await self._ensure_predefined()
        if self._endpoints:
            await self._isolate(start=True)

    async def _isolate(self, start: bool = False) -> None:
        """Rewrite the isolation rules; they exist from the first container on a bridge
        on (start), so a daemon that never runs one leaves nothing in the firewall."""
        if start:
            self._isolating = True
        if self._isolating:
            await self.isolation.sync(n.bridge for n in self._networks.values()
                                      if n.driver == "bridge")

    async def _isolation_ahead_of_netavark(self) -> None:
        """After a netavark setup: its first one on this host puts its FORWARD jump above
        ours. Checked until ours is seen first once; netavark never moves its jump after."""
        if self._isolating and not self._isolation_checked:
            await self.isolation.ensure_first()
            self._isolation_checked = True

    async def close(self) -> None:
        """Daemon shutdown: with no container left on a bridge, nothing of ours stays on
        the host (anchor, bridge, NAT chains, isolation rules)."""
        await asyncio.gather(*self._teardowns.values(), return_exceptions=True)
        if any(not c.startswith(ANCHOR_PREFIX) for (c, _) in self._endpoints):
            return  # live restore: the next daemon takes them over
        for cid in {c for (c, _) in self._endpoints}:
            await self._detach_all(cid, "")
        if self._isolating:
            await self.isolation.remove()

    async def _ensure_predefined(self) -> None:
        names = {n.name: n for n in self._networks.values()}
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in names:
                await self._store(Network(id=secrets.token_hex(32), name=name, driver=driver,
                                          created=now_rfc3339()))
        wanted = self._default_bridge_settings()
        current = names.get("bridge")
        if wanted is None:
            if current is not None and not self.network_endpoints(current.id):
                await self._detach_all(_anchor_id(current.id), "")
                await self._forget(current)
            return
        bridge, pool = wanted
        if current is not None and current.bridge == bridge and (
                pool is None or current.subnets == [pool.to_api()]):
            return
        if pool is None:
            subnet = ipam.pick_subnet(self._pools(), _host_routes())
            pool = ipam.Pool(subnet, subnet.network_address + 1)
        if current is not None and self.network_endpoints(current.id):
            log.warning("default bridge settings changed; keeping %s until its containers stop",
                        current.bridge)
            return
        if current is not None:
            await self._detach_all(_anchor_id(current.id), "")
            await self._forget(current)
        await self._store(Network(
            id=secrets.token_hex(32), name="bridge", driver="bridge", created=now_rfc3339(),
            bridge=bridge, subnets=[pool.to_api()],
            options={"com.docker.network.bridge.default_bridge": "true",
                     "com.docker.network.bridge.enable_icc": "true",
                     "com.docker.network.bridge.enable_ip_masquerade": "true",
                     "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                     BRIDGE_NAME_OPTION: bridge,
                     "com.docker.network.driver.mtu": "1500"}))

    def _default_bridge_settings(self) -> tuple[str, ipam.Pool | None] | None:
        """The default bridge's interface and pool; pool None: the first free one of
        the default pools (kept once chosen)."""
        bridge = self.settings.bridge or "docker0"
        if bridge == "none":
            return None
        if not self.settings.bip:
            return bridge, None
        iface = ipaddress.ip_interface(self.settings.bip)
        subnet = ipaddress.ip_network(str(iface.network))
        pool = ipam.Pool(subnet, iface.ip)  # type: ignore[arg-type]
        if self.settings.fixed_cidr:
            pool = dataclasses.replace(pool, ip_range=ipam.parse_cidr(self.settings.fixed_cidr))
        return bridge, pool

    def _pools(self) -> PoolList:
        configured = [(str(p["base"]), int(p["size"])) for p in self.settings.default_address_pools]
        return configured or [*ipam.DEFAULT_POOLS]

    async def _store(self, n: Network) -> None:
        await self.db.run(lambda conn: records.save_network(conn, n))
        self._networks[n.id] = n

    async def _forget(self, n: Network) -> None:
        await self.db.run(lambda conn: records.delete_network(conn, n.id))
        self._networks.pop(n.id, None)

    # -- networks ------------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> Network:
        name = str(body.get("Name") or "")
        if not name:
            raise InvalidParameter("network name must not be empty")  # CLI checks too
        if not _NAME.match(name):
            raise InvalidParameter(f'invalid name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are '
                                   "allowed")
        driver = str(body.get("Driver") or "bridge")
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f"plugin \"{driver}\" not found")
        if body.get("EnableIPv6"):
            raise InvalidParameter("IPv6 networks are not supported yet")
        ipam_body = body.get("IPAM") or {}
        ipam_driver = str(ipam_body.get("Driver") or "default")
        if ipam_driver != "default":
            raise NotFound(f"plugin \"{ipam_driver}\" not found")
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        configs = list(ipam_body.get("Config") or [])
        if len(configs) > 1:
            raise InvalidParameter("only one IPv4 subnet per network is supported yet")
        parsed = [ipam.pool_from_config(c) for c in configs]
        nid = secrets.token_hex(32)
        bridge = options.get(BRIDGE_NAME_OPTION) or f"br-{nid[:12]}"
        if len(bridge) > 15 or "/" in bridge or " " in bridge:
            raise InvalidParameter(f"invalid bridge name: {bridge}")
        async with self._create_lock:
            if any(n.name == name for n in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            taken = BRIDGE_NAME_OPTION in options and os.path.exists(f"/sys/class/net/{bridge}")
            if taken or any(n.bridge == bridge for n in self._networks.values()):
                raise Forbidden(f"bridge name {bridge} is already in use")
            used = [ipaddress.IPv4Network(s["Subnet"]) for n in self._networks.values()
                    for s in n.subnets]
            if parsed:
                subnet, gateway, ip_range = parsed[0]
                ipam.check_overlap(subnet, used)
                pool = ipam.make_pool(subnet, gateway, ip_range)
            else:
                subnet = ipam.pick_subnet(self._pools(), used + _host_routes())
                pool = ipam.make_pool(subnet, None, None)
            n = Network(id=nid, name=name, driver="bridge", created=now_rfc3339(),
                        bridge=bridge, subnets=[pool.to_api()], user_subnets=bool(parsed),
                        internal=bool(body.get("Internal")),
                        attachable=bool(body.get("Attachable")), labels=labels,
                        options=options,
                        ipam_options={str(k): str(v) for k, v in
                                      (ipam_body.get("Options") or {}).items()})
            await self._store(n)
            await self._isolate()
        self._event(n, "create")
        return n

    def containers_on(self, n: Network) -> StrList:
        """Containers with an active endpoint on the network (running ones, as dockerd:
        a created or stopped container does not keep a network from being removed)."""
        return sorted({e.container_id for e in self.network_endpoints(n.id)})

    async def remove(self, ref: str) -> None:
        n = self.get(ref)
        if n.predefined:
            raise Forbidden(f"{n.name} is a pre-defined network and cannot be removed")
        async with self._lock(n.id):
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
            await self._forget(n)
            await self._isolate()
        self._locks.pop(n.id, None)
        self._event(n, "destroy")

    async def prune(self, keep: Callable[[Network], bool]) -> StrList:
        removed: StrList = []
        for n in self.list():
            if n.predefined or not keep(n) or self.containers_on(n):
                continue
            with contextlib.suppress(DaemonError):
                await self.remove(n.id)
                removed.append(n.name)
        return removed

    # -- containers: create-time checks ------------------------------------------------

    def validate(self, hc: dict[str, Any], networking: dict[str, Any],
                 config: dict[str, Any]) -> dict[str, Any]:
        """Check the container's networking at create; returns NetworkingConfig as stored."""
        mode = network_mode(hc)
        # The CLI names the default network "default" in EndpointsConfig too.
        endpoints = {("bridge" if k == "default" else k): dict(v or {})
                     for k, v in _endpoints_config(networking).items()}
        ports.validate(config, hc)
        kind, _, ref = mode.partition(":")
        if kind == "container":
            self.containers.get(ref)
            return {"EndpointsConfig": {}}
        if mode in ("host", "none"):
            if hc.get("PortBindings") and mode == "none":
                pass  # dockerd accepts and ignores them too
            return {"EndpointsConfig": {mode: {**endpoints.get(mode, {}),
                                               "NetworkID": self.get(mode).id}}}
        # As dockerd, a network that does not exist (yet) fails the start, not the create.
        out = {mode: endpoints.pop(mode, {})}
        out.update(endpoints)
        for name, ep in out.items():
            with contextlib.suppress(NotFound):
                net = self.get(name)
                self._check_endpoint(net, ep)
                ep["NetworkID"] = net.id
        return {"EndpointsConfig": out}

    @staticmethod
    def _check_endpoint(n: Network, ep: dict[str, Any]) -> None:
        ip = ((ep.get("IPAMConfig") or {}).get("IPv4Address") or "")
        if ip:
            if n.name == "bridge":
                raise InvalidParameter("user specified IP address is supported on user defined "
                                       "networks only")
            if not n.user_subnets:
                raise InvalidParameter("user specified IP address is supported only when "
                                       "connecting to networks with user configured subnets")
            addr = ipam.parse_ip(ip)
            if addr not in ipaddress.ip_network(n.subnets[0]["Subnet"]):
                raise InvalidParameter(f"no configured subnet or ip-range contain the IP "
                                       f"address {ip}")
        if ep.get("Aliases") and n.name == "bridge":
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        mac = ep.get("MacAddress") or ""
        if mac and not re.match(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$", mac):
            raise InvalidParameter(f"invalid MAC address: {mac}")

    # -- containers: start and exit --------------------------------------------------

    async def attach(self, c: Any) -> Attachment:
        """Networking for a container about to be created in the runtime."""
        mode = network_mode(c.host_config)
        kind, _, ref = mode.partition(":")
        if mode == "host":
            return Attachment("host", host_gateway=self.host_gateway())
        if mode == "none":
            return Attachment(None, host_gateway=self.host_gateway())
        if kind == "container":
            other = self.containers.get(ref)
            if other.state.status != "running" or not other.state.pid:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return Attachment(f"/proc/{other.state.pid}/ns/net",
                              tuple(e.address for e in self.endpoints(other.id).values()))
        names = [mode, *(n for n in _endpoints_config(c.networking) if n != mode)]
        nets = [self.get(n) for n in names]
        await self._settled(c.id)
        path = await asyncio.to_thread(netns.create, self.netns_root, c.id)
        try:
            for i, n in enumerate(nets):
                await self._attach_one(c, n, path, f"eth{i}", publish=i == 0)
        except BaseException:
            await asyncio.shield(self._detach_all(c.id, c.name))
            raise
        eps = self.endpoints(c.id)
        dns = [n for n in nets if n.dns_enabled]
        servers = None
        if dns:  # aardvark answers on the gateway; --dns servers come after it
            servers = (eps[dns[0].id].gateway, *map(str, c.host_config.get("Dns") or ()))
        return Attachment(path, tuple(e.address for e in eps.values()), servers,
                          self._link_hosts(c, nets), self.host_gateway())

    def host_gateway(self) -> str:
        """dockerd's host-gateway: the default bridge's address on the host."""
        for n in self._networks.values():
            if n.name == "bridge" and n.subnets:
                return n.subnets[0]["Gateway"]
        return ""

    async def _attach_one(self, c: Any, n: Network, path: str, iface: str,
                          publish: bool) -> Endpoint:
        settings = _endpoints_config(c.networking).get(n.name) or {}
        static = ((settings.get("IPAMConfig") or {}).get("IPv4Address") or "")
        aliases = [str(a) for a in settings.get("Aliases") or []]
        if not self._isolating:
            async with self._create_lock:
                if not self._isolating:
                    await self._isolate(start=True)
        async with self._lock(n.id):
            if n.name == "bridge":
                await self._ensure_anchor(n)
            pool = _pool(n)
            used = {ipaddress.ip_address(e.address)
                    for e in self.network_endpoints(n.id, reserved=True)}
            if static:
                addr = ipam.parse_ip(static)
                ipam.check_static(pool, addr, used)  # type: ignore[arg-type]
            else:
                addr = ipam.allocate(pool, used)  # type: ignore[arg-type]
            bindings: BindingList = []
            endpoint_id = secrets.token_hex(32)
            if publish:
                try:
                    bindings = self.ports.allocate(c.id, ports.requests(c.config,
                                                                        c.host_config))
                except InternalError as e:
                    raise InternalError(_connectivity_error(c.name, endpoint_id, e)) from None
            dns_names = [c.name, *aliases, c.id[:12]] if n.dns_enabled else []
            mac = str(settings.get("MacAddress") or c.config.get("MacAddress") or "")
            # The fast path makes the first interface only: it owns the default route.
            plain = not bindings and iface == "eth0" and (_anchor_id(n.id), n.id) in \
                self._endpoints and _bridge_up(n)
            ep = Endpoint(container_id=c.id, network_id=n.id, endpoint_id=endpoint_id,
                          interface=iface, address=str(addr), prefix_len=pool.subnet.prefixlen,
                          gateway=str(pool.gateway), mac=mac or mac_for(addr),
                          aliases=aliases, dns_names=dns_names, static=bool(static),
                          ports=[b.to_netavark() for b in bindings], plain=plain)
            self._endpoints[(c.id, n.id)] = ep  # the address is reserved from here on
        try:
            await self.db.run(lambda conn: records.save_endpoint(conn, ep))
            if ep.plain:
                await plainveth.setup(path, c.id, n.bridge, iface, ep.address, ep.prefix_len,
                                      ep.gateway, ep.mac)
                return ep
            async with self._setup_lock(n):
                result = await self.driver.setup(path, n, ep, c.name)
            await self._isolation_ahead_of_netavark()
        except BaseException as e:
            self._endpoints.pop((c.id, n.id), None)
            await asyncio.shield(self.db.run(
                lambda conn: records.delete_endpoint(conn, c.id, n.id)))
            if publish:
                self.ports.release(c.id)
            if isinstance(e, InternalError) and publish and bindings:
                raise InternalError(_connectivity_error(c.name, endpoint_id, e)) from None
            raise
        ep = dataclasses.replace(ep, mac=result.mac or ep.mac)
        await self.db.run(lambda conn: records.save_endpoint(conn, ep))
        self._endpoints[(c.id, n.id)] = ep
        return ep

    def _setup_lock(self, n: Network) -> contextlib.AbstractAsyncContextManager[Any]:
        """netavark calls on a network are serialised, except on an anchored bridge: there
        no teardown deletes the bridge under a concurrent setup."""
        if (_anchor_id(n.id), n.id) in self._endpoints:
            return contextlib.nullcontext()
        return self._lock(n.id)

    async def _ensure_anchor(self, n: Network) -> None:
        """Under the network's lock. A failure only costs speed: logged, not raised."""
        aid = _anchor_id(n.id)
        if (aid, n.id) in self._endpoints:
            if _bridge_up(n):
                return
            # Someone deleted the bridge under us (another daemon configured with the same
            # bridge name): the anchor is orphaned. Make a new one, and with it the bridge.
            log.warning("bridge %s disappeared; setting it up again", n.bridge)
            stale = self._endpoints.pop((aid, n.id))
            with contextlib.suppress(InternalError):  # we hold the lock _detach_one takes
                await self.driver.teardown(netns.path(self.netns_root, aid), n, stale, aid)
            await self.db.run(lambda conn: records.delete_endpoint(conn, aid, n.id))
            await asyncio.to_thread(netns.remove, self.netns_root, aid)
        pool = _pool(n)
        used = {ipaddress.ip_address(e.address)
                for e in self.network_endpoints(n.id, reserved=True)}
        try:
            addr = ipam.allocate_last(pool, used)  # type: ignore[arg-type]
        except DaemonError:
            return
        ep = Endpoint(container_id=aid, network_id=n.id, endpoint_id=secrets.token_hex(32),
                      interface="eth0", address=str(addr), prefix_len=pool.subnet.prefixlen,
                      gateway=str(pool.gateway), mac=mac_for(addr))
        try:
            path = await asyncio.to_thread(netns.create, self.netns_root, aid)
            await self.db.run(lambda conn: records.save_endpoint(conn, ep))
            self._endpoints[(aid, n.id)] = ep
            await self.driver.setup(path, n, ep, aid)
            await self._isolation_ahead_of_netavark()
        except Exception as e:
            log.warning("default bridge anchor: %s", e)
            self._endpoints.pop((aid, n.id), None)
            await self.db.run(lambda conn: records.delete_endpoint(conn, aid, n.id))
            await asyncio.to_thread(netns.remove, self.netns_root, aid)

    def _link_hosts(self, c: Any, nets: NetworkList) -> tuple[str, ...]:
        """--link on the default bridge: the linked container's address under its alias."""
        if not any(n.name == "bridge" for n in nets):
            return ()
        out = []
        for link in c.host_config.get("Links") or []:
            target, _, alias = str(link).partition(":")
            try:
                other = self.containers.get(target.lstrip("/"))
            except DaemonError:
                continue
            alias_name = alias.rsplit("/", 1)[-1] if alias else other.name
            for e in self.endpoints(other.id).values():
                names = " ".join(dict.fromkeys([alias_name, other.id[:12], other.name]))
                out.append(f"{e.address}\t{names}")
                break
        return tuple(out)

    async def detach(self, cid: str, name: str = "") -> None:
        """Undo attach(): idempotent, and a no-op for containers that had no netns."""
        await self._detach_all(cid, name, background=True)

    async def _settled(self, cid: str) -> None:
        """Wait for a teardown still running behind an earlier detach of cid."""
        pending = self._teardowns.get(cid)
        if pending is not None:
            await asyncio.shield(pending)

    async def _detach_all(self, cid: str, name: str, background: bool = False) -> None:
        """background: a fast-path interface is deleted behind the caller (deleting a veth
        waits on the kernel for tens of ms); the namespace pin goes at once, the address
        stays reserved until the veth is gone, and the next attach waits for it."""
        if cid in self._teardowns:
            if background:
                return  # already under way (an exit, then the --rm removal)
            await self._settled(cid)
        eps = sorted(self.endpoints(cid).items(), key=lambda kv: kv[1].interface, reverse=True)
        for nid, ep in eps:
            if not ep.plain:
                await self._detach_one(cid, name, nid, ep)
        plain = [(nid, ep) for nid, ep in eps if ep.plain]
        if not plain:
            self.ports.release(cid)
        await asyncio.to_thread(netns.remove, self.netns_root, cid)
        if plain and background:
            task = asyncio.get_running_loop().create_task(self._finish(cid, name, plain))
            self._teardowns[cid] = task
        elif plain:
            await self._finish(cid, name, plain)

    async def _finish(self, cid: str, name: str, plain: NetworkEndpoints) -> None:
        """The fast-path veths: deleted by their host end (no namespace needed)."""
        try:
            for nid, ep in plain:
                await self._detach_one(cid, name, nid, ep)
            self.ports.release(cid)
        finally:
            if self._teardowns.get(cid) is asyncio.current_task():
                del self._teardowns[cid]

    async def _detach_one(self, cid: str, name: str, nid: str, ep: Endpoint) -> None:
        n = self._networks.get(nid)
        if ep.plain:
            await plainveth.teardown(cid)
        elif n is not None and netns.exists(self.netns_root, cid):
            async with self._setup_lock(n) if not cid.startswith(ANCHOR_PREFIX) \
                    else self._lock(nid):
                try:
                    await self.driver.teardown(netns.path(self.netns_root, cid), n, ep, name)
                except InternalError as e:
                    log.warning("network teardown for %s on %s: %s", cid[:12], n.name, e)
        self._endpoints.pop((cid, nid), None)
        await self.db.run(lambda conn: records.delete_endpoint(conn, cid, nid))

    # -- connect / disconnect ---------------------------------------------------------

    async def connect(self, ref: str, container_ref: str, settings: dict[str, Any]) -> None:
        n = self.get(ref)
        c = self.containers.get(container_ref)
        mode = network_mode(c.host_config)
        if n.driver != "bridge" or mode in ("host", "none") or mode.startswith("container:"):
            if mode == "host" or n.name == "host":
                raise Forbidden("container cannot be disconnected from host network or "
                                "connected to host network")
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        self._check_endpoint(n, settings)
        async with self.containers.lock(c.id):
            c = self.containers.get(c.id)
            configured = _endpoints_config(c.networking)
            if n.name in configured:
                raise Forbidden(f"endpoint with name {c.name} already exists in network "
                                f"{n.name}")
            settings = {**settings, "NetworkID": n.id}
            updated = {**configured, n.name: settings}
            if c.state.status in ("running", "paused"):
                path = netns.path(self.netns_root, c.id)
                if not netns.exists(self.netns_root, c.id):
                    raise Forbidden(f"container {c.id} has no network namespace of its own")
                used = {e.interface for e in self.endpoints(c.id).values()}
                iface = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
                c2 = dataclasses.replace(c, networking={"EndpointsConfig": updated})
                await self._attach_one(c2, n, path, iface, publish=False)
            await self.containers.save(dataclasses.replace(
                self.containers.get(c.id), networking={"EndpointsConfig": updated}))
        self._event(n, "connect", container=c.id)

    async def disconnect(self, ref: str, container_ref: str, force: bool) -> None:
        n = self.get(ref)
        try:
            c = self.containers.get(container_ref)
        except NotFound:
            if not force:
                raise
            for e in list(self.network_endpoints(n.id)):
                if e.container_id.startswith(container_ref):
                    await self._detach_one(e.container_id, "", n.id, e)
            return
        if n.name == "host" or network_mode(c.host_config) == "host":
            raise Forbidden("container cannot be disconnected from host network or connected "
                            "to host network")
        async with self.containers.lock(c.id):
            c = self.containers.get(c.id)
            configured = dict(_endpoints_config(c.networking))
            if n.name not in configured:
                raise Forbidden(f"container {c.id} is not connected to the network {n.name}")
            ep = self.endpoints(c.id).get(n.id)
            if ep is not None:
                await self._detach_one(c.id, c.name, n.id, ep)
                if ep.ports:
                    self.ports.release(c.id)
            del configured[n.name]
            await self.containers.save(dataclasses.replace(
                self.containers.get(c.id), networking={"EndpointsConfig": configured}))
        self._event(n, "disconnect", container=c.id)

    # -- restore ---------------------------------------------------------------------

    async def reconcile(self, running: set[str]) -> None:
        """After the containers are restored: tear down what containers that exited
        while the daemon was down left behind."""
        for cid in {c for (c, _) in self._endpoints} - running:
            if not cid.startswith(ANCHOR_PREFIX):
                await self._detach_all(cid, "")
        with contextlib.suppress(OSError):
            for name in os.listdir(self.netns_root):
                if name not in running and not any(c == name for (c, _) in self._endpoints):
                    await asyncio.to_thread(netns.remove, self.netns_root, name)


def _bridge_up(n: Network) -> bool:
    return os.path.exists(f"/sys/class/net/{n.bridge}")


def mac_for(addr: ipaddress.IPv4Address) -> str:
    """dockerd's MAC for an address: 02:42 and the address. A new container that gets an
    address back gets its MAC too, so the host's neighbour cache, still holding the old
    entry, delivers to it instead of to a veth that no longer exists."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)


def _connectivity_error(name: str, endpoint_id: str, e: Exception) -> str:
    return f"driver failed programming external connectivity on endpoint {name} " \
           f"({endpoint_id}): {e}"


def _endpoints_config(networking: dict[str, Any]) -> dict[str, Any]:
    return dict((networking or {}).get("EndpointsConfig") or {})


def _pool(n: Network) -> ipam.Pool:
    s = n.subnets[0]
    return ipam.Pool(ipaddress.IPv4Network(s["Subnet"]), ipaddress.IPv4Address(s["Gateway"]),
                     ipaddress.IPv4Network(s["IPRange"]) if s.get("IPRange") else None)


def _host_routes() -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host already routes (not the default route): never picked."""
    out: list[ipaddress.IPv4Network] = []
    with contextlib.suppress(OSError):
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0:
                    continue
                net = ipaddress.IPv4Network(
                    (ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                     bin(mask).count("1")), strict=False)
                out.append(net)
    return out
