"""The predefined networks: host and none always, and the default bridge as the daemon's
flags say (-b/--bridge, --bip, --fixed-cidr, default address pools).

The default bridge is made again when its flags changed since the last start, unless
containers still have endpoints on it: then it is kept until they stop. Its anchor
(attach.py) goes with it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import secrets

from ..images.mediatypes import now_rfc3339
from . import ipam
from .attach import Attachments
from .records import BRIDGE_NAME_OPTION, Network
from .settings import NetworkSettings, free_subnet
from .store import NetworkStore, anchor_id

log = logging.getLogger(__name__)


async def ensure_predefined(store: NetworkStore, settings: NetworkSettings,
                            attachments: Attachments) -> None:
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
    if current is not None and current.bridge == bridge and (
            pool is None or current.subnets == [pool.to_api()]):
        return
    if pool is None:
        subnet = free_subnet(settings, [])
        pool = ipam.Pool(subnet, subnet.network_address + 1)
    if current is not None and store.network_endpoints(current.id):
        log.warning("default bridge settings changed; keeping %s until its containers stop",
                    current.bridge)
        return
    if current is not None:
        await attachments.detach_all(anchor_id(current.id), "")
        await store.delete(current)
    await store.save(Network(
        id=secrets.token_hex(32), name="bridge", driver="bridge", created=now_rfc3339(),
        bridge=bridge, subnets=[pool.to_api()],
        options={"com.docker.network.bridge.default_bridge": "true",
                 "com.docker.network.bridge.enable_icc": "true",
                 "com.docker.network.bridge.enable_ip_masquerade": "true",
                 "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                 BRIDGE_NAME_OPTION: bridge,
                 "com.docker.network.driver.mtu": "1500"}))


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
    pool = ipam.Pool(subnet, iface.ip)  # type: ignore[arg-type]
    if settings.fixed_cidr:
        pool = dataclasses.replace(pool, ip_range=ipam.parse_cidr(settings.fixed_cidr))
    return bridge, pool
