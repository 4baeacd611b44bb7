"""The predefined networks: host and none always, and the default bridge as the daemon's
flags say (-b/--bridge, --bip, --fixed-cidr, default address pools).

The default bridge is made again when its flags changed since the last start, unless
containers still have endpoints on it: then it is kept until they stop. Its anchor
(attach.py) goes with it.

Its interface is docker0 (or -b's) only while no other program has an interface of that
name (ownership.py): beside Docker's dockerd it is a name of this daemon's own, with a
subnet the host does not route yet, as Podman's podman0; the log and a label of the
network say so.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import secrets

from ..images.mediatypes import now_rfc3339
from . import ipam
from .attach import Attachments
from .ownership import BridgeOwnership, Owner
from .records import BRIDGE_NAME_OPTION, Network
from .settings import NetworkSettings, free_subnet, host_routes
from .store import NetworkStore, anchor_id

log = logging.getLogger(__name__)

# On the default bridge, when docker0 was someone else's: why its name is another.
NOTE_LABEL = "com.dockerd-py.bridge.note"


async def ensure_predefined(store: NetworkStore, settings: NetworkSettings,
                            attachments: Attachments, ownership: BridgeOwnership) -> None:
    names = {n.name: n for n in store.networks.values()}
    for name, driver in (("host", "host"), ("none", "null")):
        if name not in names:
            await store.save(Network(id=secrets.token_hex(32), name=name, driver=driver,
                                     created=now_rfc3339()))
    wanted = _default_bridge(settings)
    current = names.get("bridge")
    if wanted is None:
        if current is not None and not store.network_endpoints(current.id):
            await attachments.detach_all(anchor_id(current.id), "")
            await store.delete(current)
        return
    bridge, pool = wanted
    busy = current is not None and bool(store.network_endpoints(current.id))
    labels: dict[str, str] = {}
    if ownership.owner(bridge) is Owner.FOREIGN and not (
            busy and current is not None and current.bridge == bridge):
        # docker0 is Docker's dockerd's (or the name is someone else's): a bridge of our own.
        labels[NOTE_LABEL] = (f"{bridge} belongs to another program; this daemon's default "
                              f"bridge is {ownership.fallback_name()}")
        log.warning("bridge %s exists and is not this daemon's (Docker's dockerd?): the "
                    "default bridge is %s", bridge, ownership.fallback_name())
        bridge = ownership.fallback_name()
    if current is not None and current.bridge == bridge and (
            current.subnets == [pool.to_api()] if pool is not None
            else not _overlaps_routes(current, bridge)):
        return
    if pool is None:
        subnet = free_subnet(settings, [], exclude=bridge)  # ours, or not there
        pool = ipam.Pool(subnet, subnet.network_address + 1)
    if current is not None and busy:
        log.warning("default bridge settings changed; keeping %s until its containers stop",
                    current.bridge)
        return
    if current is not None:
        await attachments.detach_all(anchor_id(current.id), "")
        await store.delete(current)
    await store.save(Network(
        id=secrets.token_hex(32), name="bridge", driver="bridge", created=now_rfc3339(),
        bridge=bridge, subnets=[pool.to_api()], labels=labels,
        options={"com.docker.network.bridge.default_bridge": "true",
                 "com.docker.network.bridge.enable_icc": "true",
                 "com.docker.network.bridge.enable_ip_masquerade": "true",
                 "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                 BRIDGE_NAME_OPTION: bridge,
                 "com.docker.network.driver.mtu": "1500"}))
    if labels:
        log.info("default bridge: %s, %s", bridge, pool.subnet)


def _overlaps_routes(n: Network, bridge: str) -> bool:
    """A subnet chosen at an earlier start that the host now routes elsewhere (another
    daemon's bridge came up meanwhile): chosen again."""
    subnet = ipaddress.ip_network(n.subnets[0]["Subnet"])
    return any(subnet.overlaps(r) for r in host_routes(exclude=bridge))


def _default_bridge(settings: NetworkSettings) -> tuple[str, ipam.Pool | None] | None:
    """The default bridge's interface and pool; pool None: the first free one of
    the default pools (kept once chosen)."""
    bridge = settings.bridge or "docker0"
    if bridge == "none":
        return None
    if not settings.bip:
        return bridge, None
    iface = ipaddress.ip_interface(settings.bip)
    subnet = ipaddress.ip_network(str(iface.network))
    pool = ipam.Pool(subnet, iface.ip)
    if settings.fixed_cidr:
        pool = dataclasses.replace(pool, ip_range=ipam.parse_cidr(settings.fixed_cidr))
    return bridge, pool
