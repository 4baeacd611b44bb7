"""The network store: the networks and endpoints this daemon knows, their locks, and
the events about networks.

Records live in memory (authoritative while the daemon runs) and in the metadata
database (records.py), so a restarted daemon knows what it set up. An endpoint is
reserved in memory before its row is written and its interface set up; the parts of
the service that make and take apart endpoints (attach.py, anchor.py, connect.py)
keep that order themselves.
"""

from __future__ import annotations

import asyncio
import re

from ...errors import InvalidParameter, NotFound
from ..events import EventBus
from ..metadata.db import Database
from . import ports, records
from .records import Endpoint, Network

_HEX = re.compile(r"[0-9a-f]+")  # fullmatch

# The default bridge's anchor: an endpoint of the daemon's own (anchor.py).
ANCHOR_PREFIX = "anchor-"
# The store has a list() method: these keep annotations inside it unambiguous.
NetworkList = list[Network]
EndpointList = list[Endpoint]
StrList = list[str]
BindingList = list[ports.Binding]


def anchor_id(nid: str) -> str:
    return ANCHOR_PREFIX + nid[:12]


class NetworkStore:
    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db
        self._events = events
        self.networks: dict[str, Network] = {}
        self.endpoints_by: dict[tuple[str, str], Endpoint] = {}  # (container, network)
        self.teardowns: dict[str, asyncio.Task[None]] = {}  # see Attachments.detach_all
        # Network creation, and the start of the isolation rules.
        self.create_lock = asyncio.Lock()
        self._locks: dict[str, asyncio.Lock] = {}

    # -- lookup ------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By full ID, name, or unique ID prefix (dockerd's order)."""
        if ref in self.networks:
            return self.networks[ref]
        for n in self.networks.values():
            if n.name == ref:
                return n
        if ref and _HEX.fullmatch(ref):
            found = [n for n in self.networks.values() if n.id.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches found "
                                       "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def has(self, name: str) -> bool:
        return any(n.name == name for n in self.networks.values())

    def list(self) -> NetworkList:
        return sorted(self.networks.values(), key=lambda n: n.created)

    def endpoints(self, cid: str) -> dict[str, Endpoint]:
        """network id → endpoint, for a running container (or one being torn down)."""
        return {nid: e for (c, nid), e in self.endpoints_by.items() if c == cid}

    def network_endpoints(self, nid: str, *, reserved: bool = False) -> EndpointList:
        """Containers' endpoints on the network; reserved: also the anchor and those whose
        teardown is still under way (all that hold an address)."""
        return [e for (c, n), e in self.endpoints_by.items() if n == nid and (
            reserved or not (c.startswith(ANCHOR_PREFIX) or c in self.teardowns))]

    def containers_on(self, n: Network) -> StrList:
        """Containers with an active endpoint on the network (running ones, as dockerd:
        a created or stopped container does not keep a network from being removed)."""
        return sorted({e.container_id for e in self.network_endpoints(n.id)})

    def bindings(self, cid: str) -> BindingList:
        return [ports.Binding.from_netavark(m) for e in self.endpoints(cid).values()
                for m in e.ports]

    def host_gateway(self) -> str:
        """dockerd's host-gateway: the default bridge's address on the host."""
        for n in self.networks.values():
            if n.name == "bridge" and n.subnets:
                return n.subnets[0]["Gateway"]
        return ""

    def bridges(self) -> StrList:
        """The host interfaces of the bridge networks."""
        return [n.bridge for n in self.networks.values() if n.driver == "bridge"]

    # -- locks and events ------------------------------------------------------

    def lock(self, nid: str) -> asyncio.Lock:
        """Around IPAM changes on one network, and netavark calls where a teardown may
        delete the bridge under a concurrent setup."""
        return self._locks.setdefault(nid, asyncio.Lock())

    def forget_lock(self, nid: str) -> None:
        self._locks.pop(nid, None)

    def event(self, n: Network, action: str, **extra: str) -> None:
        self._events.publish("network", action, n.id,
                             {"name": n.name, "type": n.driver, **extra})

    # -- rows ------------------------------------------------------------------

    async def load(self) -> None:
        """Every network and endpoint, at daemon start."""
        for n in await self.db.run(records.load_networks):
            self.networks[n.id] = n
        for e in await self.db.run(records.load_endpoints):
            self.endpoints_by[(e.container_id, e.network_id)] = e

    async def save(self, n: Network) -> None:
        await self.db.run(lambda conn: records.save_network(conn, n))
        self.networks[n.id] = n

    async def delete(self, n: Network) -> None:
        await self.db.run(lambda conn: records.delete_network(conn, n.id))
        self.networks.pop(n.id, None)

    async def save_endpoint(self, ep: Endpoint) -> None:
        """Write an endpoint's row (the caller keeps it in endpoints_by)."""
        await self.db.run(lambda conn: records.save_endpoint(conn, ep))

    async def delete_endpoint(self, cid: str, nid: str) -> None:
        """Delete an endpoint's row (the caller drops it from endpoints_by)."""
        await self.db.run(lambda conn: records.delete_endpoint(conn, cid, nid))
