"""Attaching containers to networks and detaching them: namespaces, addresses, host
ports and interfaces, and the default bridge's anchor.

Interfaces are netavark's (bridge, veth, NAT, port forwarding, aardvark-dns), except
on the anchored default bridge for a container without published ports: there
plainveth makes the veth pair in a few ms, and deletes it behind the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from typing import Any

from ...errors import Conflict, DaemonError, InternalError
from ..containers.contract import ContainerRecords
from . import grammar, ipam, netns, plainveth, ports
from .contract import Attachment, NetworkedContainer, network_mode
from .isolation import Isolation
from .linking import Linking
from .netavark import Netavark
from .ownership import BridgeOwnership, Owner
from .records import Endpoint, Network
from .store import ANCHOR_PREFIX, BindingList, NetworkStore, anchor_id

log = logging.getLogger(__name__)

NetworkEndpoints = list[tuple[str, Endpoint]]


class Attachments:
    def __init__(self, store: NetworkStore, containers: ContainerRecords, driver: Netavark,
                 port_allocator: ports.PortAllocator, isolation: Isolation,
                 netns_root: str, ownership: BridgeOwnership) -> None:
        self.store = store
        self.ownership = ownership
        self.linking = Linking(store, containers,
                               os.path.join(driver.config_dir, "aardvark-dns"))
        self.containers = containers
        self.driver = driver
        self.ports = port_allocator
        self.isolation = isolation
        self.netns_root = netns_root

    # -- attach ------------------------------------------------------------------------

    async def attach(self, c: NetworkedContainer) -> Attachment:
        """Networking for a container about to be created in the runtime."""
        mode = network_mode(c.host_config)
        kind, _, ref = mode.partition(":")
        if mode == "host":
            return Attachment("host", host_gateway=self.store.host_gateway())
        if mode == "none":
            return Attachment(None, host_gateway=self.store.host_gateway())
        if kind == "container":
            other = self.containers.get(ref)
            if other.state.status != "running" or not other.state.pid:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return Attachment(f"/proc/{other.state.pid}/ns/net",
                              tuple(e.address for e in self.store.endpoints(other.id).values()))
        names = [mode, *(n for n in endpoints_config(c.networking) if n != mode)]
        if "bridge" in names and not self.store.has("bridge"):
            # --bridge none: the default network is no network (dockerd's NetworkDisabled);
            # the container's other networks still join.
            names.remove("bridge")
            if not names:
                return Attachment(None, host_gateway=self.store.host_gateway())
        nets = [self.store.get(n) for n in names]
        link_hosts, link_env = self.linking.default_bridge(c) \
            if any(n.name == "bridge" for n in nets) else ((), ())
        await self._settled(c.id)
        path = await asyncio.to_thread(netns.create, self.netns_root, c.id)
        try:
            for i, n in enumerate(nets):
                await self.attach_one(c, n, path, f"eth{i}", publish=i == 0)
        except BaseException:
            await asyncio.shield(self.detach_all(c.id, c.name))
            raise
        eps = self.store.endpoints(c.id)
        dns = [n for n in nets if n.dns_enabled]
        servers = None
        if dns:  # aardvark answers on the gateway; --dns servers come after it
            servers = (eps[dns[0].id].gateway, *map(str, c.host_config.get("Dns") or ()))
        return Attachment(path, tuple(e.address for e in eps.values()), servers,
                          link_hosts, link_env, self.store.host_gateway())

    async def attach_one(self, c: NetworkedContainer, n: Network, path: str, iface: str,
                         publish: bool) -> Endpoint:
        """One endpoint in the namespace at path; publish: the container's host ports."""
        settings = endpoints_config(c.networking).get(n.name) or {}
        ipam_config = settings.get("IPAMConfig") or {}
        static = str(ipam_config.get("IPv4Address") or "")
        static6 = str(ipam_config.get("IPv6Address") or "")
        link_local = [str(ipaddress.ip_address(a))
                      for a in ipam_config.get("LinkLocalIPs") or () if a]
        aliases = [str(a) for a in settings.get("Aliases") or []]
        mac = str(settings.get("MacAddress") or c.config.get("MacAddress") or "")
        if mac:  # checked at create; again for a record from before that check
            mac = grammar.check_mac(mac)
        if not self.isolation.active:
            async with self.store.create_lock:
                if not self.isolation.active:
                    await self.isolation.update(self.store.bridges(), start=True)
        async with self.store.lock(n.id):
            if n.name == "bridge":
                await self._ensure_anchor(n)
            used = self._used(n)
            pools4 = ipam.pools(n.subnets, 4)
            addr, pool = ipam.pick(pools4, static, used)
            address6, prefix6, gateway6 = "", 0, ""
            pools6 = ipam.pools(n.subnets, 6) if n.enable_ipv6 else []
            chosen = [pool]
            if pools6:
                addr6, pool6 = ipam.pick(pools6, static6, used)
                address6, prefix6, gateway6 = \
                    str(addr6), pool6.subnet.prefixlen, str(pool6.gateway)
                chosen.append(pool6)
            # An address in each of the network's other subnets too (netavark wants them).
            extra = [str(ipam.allocate(p, used)) for p in pools4 + pools6 if p not in chosen]
            bindings: BindingList = []
            endpoint_id = secrets.token_hex(32)
            if publish:
                try:
                    bindings = self.ports.allocate(c.id, ports.requests(c.config,
                                                                        c.host_config))
                except InternalError as e:
                    raise InternalError(_connectivity_error(c.name, endpoint_id, e)) from None
            dns_names = [c.name, *aliases, c.id[:12]] if n.dns_enabled else []
            # The fast path makes the first interface only: it owns the default route.
            plain = not bindings and iface == "eth0" and not address6 and (anchor_id(n.id),
                                                                           n.id) in \
                self.store.endpoints_by and self.ownership.owner(n.bridge) is Owner.OURS
            ep = Endpoint(container_id=c.id, network_id=n.id, endpoint_id=endpoint_id,
                          interface=iface, address=str(addr), prefix_len=pool.subnet.prefixlen,
                          gateway=str(pool.gateway), mac=mac or ipam.mac_for(addr),
                          aliases=aliases, dns_names=dns_names, static=bool(static),
                          ports=[b.to_netavark() for b in bindings], plain=plain,
                          address6=address6, prefix_len6=prefix6, gateway6=gateway6,
                          link_local=link_local, extra_addresses=extra)
            self.store.endpoints_by[(c.id, n.id)] = ep  # the address is reserved from here on
        try:
            await self.store.save_endpoint(ep)
            if ep.plain:
                await plainveth.setup(path, c.id, n.bridge, iface, ep.address, ep.prefix_len,
                                      ep.gateway, ep.mac)
                await plainveth.add_link_local(path, iface, ep.link_local)
                return ep
            async with self._setup_lock(n):
                self.ownership.check(n.bridge)
                result = await self.driver.setup(path, n, ep, c.name)
                await self.ownership.claim(n.bridge)
                if n.dns_enabled:
                    await self.linking.add_records(c, n, settings)
            await self.isolation.after_setup()
        except BaseException as e:
            self.store.endpoints_by.pop((c.id, n.id), None)
            await asyncio.shield(self.store.delete_endpoint(c.id, n.id))
            if publish:
                self.ports.release(c.id)
            if isinstance(e, InternalError) and publish and bindings:
                raise InternalError(_connectivity_error(c.name, endpoint_id, e)) from None
            raise
        ep = dataclasses.replace(ep, mac=result.mac or ep.mac)
        await self.store.save_endpoint(ep)
        self.store.endpoints_by[(c.id, n.id)] = ep
        await plainveth.add_link_local(path, iface, ep.link_local)
        return ep

    def _used(self, n: Network) -> set[ipam.IPAddr]:
        """Every address n's endpoints hold or reserve: IPv4, IPv6, and the extra ones."""
        return {ipaddress.ip_address(a) for e in self.store.network_endpoints(n.id, reserved=True)
                for a in (e.address, e.address6, *e.extra_addresses) if a}

    def _setup_lock(self, n: Network) -> contextlib.AbstractAsyncContextManager[Any]:
        """netavark calls on a network are serialised, except on an anchored bridge: there
        no teardown deletes the bridge under a concurrent setup."""
        if (anchor_id(n.id), n.id) in self.store.endpoints_by:
            return contextlib.nullcontext()
        return self.store.lock(n.id)

    async def _ensure_anchor(self, n: Network) -> None:
        """The default bridge's anchor: an endpoint of the daemon's own (a pinned namespace,
        the subnet's last address) that keeps the bridge and its NAT chains up between
        containers, as docker0 stays. Under the network's lock. A failure only costs
        speed: logged, not raised."""
        aid = anchor_id(n.id)
        if (aid, n.id) in self.store.endpoints_by:
            owner = self.ownership.owner(n.bridge)
            if owner is Owner.OURS:
                return
            # Someone deleted the bridge under us (another daemon configured with the same
            # bridge name): the anchor is orphaned. Make a new one, and with it the bridge.
            log.warning("bridge %s disappeared; setting it up again", n.bridge)
            stale = self.store.endpoints_by.pop((aid, n.id))
            if owner is Owner.ABSENT:  # never a teardown on another's bridge of that name
                with contextlib.suppress(InternalError):  # we hold the lock detach_one takes
                    await self.driver.teardown(netns.path(self.netns_root, aid), n, stale,
                                               aid)
            await self.store.delete_endpoint(aid, n.id)
            await asyncio.to_thread(netns.remove, self.netns_root, aid)
        pool = ipam.Pool.from_api(n.subnets[0])
        used = self._used(n)
        try:
            addr = ipam.allocate_last(pool, used)
        except DaemonError:
            return
        ep = Endpoint(container_id=aid, network_id=n.id, endpoint_id=secrets.token_hex(32),
                      interface="eth0", address=str(addr), prefix_len=pool.subnet.prefixlen,
                      gateway=str(pool.gateway), mac=ipam.mac_for(addr))
        try:
            path = await asyncio.to_thread(netns.create, self.netns_root, aid)
            await self.store.save_endpoint(ep)
            self.store.endpoints_by[(aid, n.id)] = ep
            self.ownership.check(n.bridge)
            await self.driver.setup(path, n, ep, aid)
            await self.ownership.claim(n.bridge)
            await self.isolation.after_setup()
        except Exception as e:
            log.warning("default bridge anchor: %s", e)
            self.store.endpoints_by.pop((aid, n.id), None)
            await self.store.delete_endpoint(aid, n.id)
            await asyncio.to_thread(netns.remove, self.netns_root, aid)

    # -- detach ------------------------------------------------------------------------

    async def detach(self, cid: str, name: str = "") -> None:
        """Undo attach(): idempotent, and a no-op for containers that had no netns."""
        await self.detach_all(cid, name, background=True)

    async def _settled(self, cid: str) -> None:
        """Wait for a teardown still running behind an earlier detach of cid."""
        pending = self.store.teardowns.get(cid)
        if pending is not None:
            await asyncio.shield(pending)

    async def detach_all(self, cid: str, name: str, background: bool = False) -> None:
        """background: a fast-path interface is deleted behind the caller (deleting a veth
        waits on the kernel for tens of ms); the namespace pin goes at once, the address
        stays reserved until the veth is gone, and the next attach waits for it."""
        if cid in self.store.teardowns:
            if background:
                return  # already under way (an exit, then the --rm removal)
            await self._settled(cid)
        eps = sorted(self.store.endpoints(cid).items(), key=lambda kv: kv[1].interface,
                     reverse=True)
        for nid, ep in eps:
            if not ep.plain:
                await self.detach_one(cid, name, nid, ep)
        plain = [(nid, ep) for nid, ep in eps if ep.plain]
        if not plain:
            self.ports.release(cid)
        await asyncio.to_thread(netns.remove, self.netns_root, cid)
        if plain and background:
            task = asyncio.get_running_loop().create_task(self._finish(cid, name, plain))
            self.store.teardowns[cid] = task
        elif plain:
            await self._finish(cid, name, plain)

    async def _finish(self, cid: str, name: str, plain: NetworkEndpoints) -> None:
        """The fast-path veths: deleted by their host end (no namespace needed)."""
        try:
            for nid, ep in plain:
                await self.detach_one(cid, name, nid, ep)
            self.ports.release(cid)
        finally:
            if self.store.teardowns.get(cid) is asyncio.current_task():
                del self.store.teardowns[cid]

    async def detach_one(self, cid: str, name: str, nid: str, ep: Endpoint) -> None:
        n = self.store.networks.get(nid)
        if ep.plain:
            await plainveth.teardown(cid)
        elif n is not None and netns.exists(self.netns_root, cid):
            async with self._setup_lock(n) if not cid.startswith(ANCHOR_PREFIX) \
                    else self.store.lock(nid):
                try:
                    await self.driver.teardown(netns.path(self.netns_root, cid), n, ep, name)
                except InternalError as e:
                    log.warning("network teardown for %s on %s: %s", cid[:12], n.name, e)
        self.store.endpoints_by.pop((cid, nid), None)
        await self.store.delete_endpoint(cid, nid)


def endpoints_config(networking: Mapping[str, Any]) -> dict[str, Any]:
    return dict((networking or {}).get("EndpointsConfig") or {})


def _connectivity_error(name: str, endpoint_id: str, e: Exception) -> str:
    return f"driver failed programming external connectivity on endpoint {name} " \
           f"({endpoint_id}): {e}"
