"""Address management, pure: subnets, gateways, ranges, and picking free addresses.

Errors carry dockerd's wording; the service decides what is already in use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import Forbidden, InvalidParameter

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address

# dockerd's default local address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{i}.0.0/16", 16) for i in range(17, 32)), ("192.168.0.0/16", 20))


@dataclass(frozen=True)
class Pool:
    """One IPAM.Config entry: the subnet, its gateway and where container addresses come from."""
    subnet: IPv4Net
    gateway: IPv4Addr
    ip_range: IPv4Net | None = None

    def to_api(self) -> dict[str, str]:
        out = {"Subnet": str(self.subnet)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        out["Gateway"] = str(self.gateway)
        return out

    @classmethod
    def from_api(cls, entry: dict[str, str]) -> Pool:
        """The pool of a network's IPAM.Config entry (as to_api wrote it)."""
        return cls(ipaddress.IPv4Network(entry["Subnet"]), ipaddress.IPv4Address(entry["Gateway"]),
                   ipaddress.IPv4Network(entry["IPRange"]) if entry.get("IPRange") else None)


def parse_cidr(text: str) -> IPv4Net:
    """A CIDR as Go's net.ParseCIDR takes it (host bits allowed, then masked)."""
    try:
        return ipaddress.ip_network(text, strict=False)  # type: ignore[return-value]
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {text}") from None


def _v4(net: ipaddress.IPv4Network | ipaddress.IPv6Network, text: str) -> IPv4Net:
    if net.version != 4:
        raise InvalidParameter(f"IPv6 is not supported yet: {text}")
    return net


def parse_ip(text: str) -> IPv4Addr:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {text}") from None
    if addr.version != 4:
        raise InvalidParameter(f"IPv6 is not supported yet: {text}")
    return addr


def _cidr(kind: str, text: str) -> IPv4Net:
    try:
        return _v4(parse_cidr(text), text)
    except InvalidParameter as e:
        raise InvalidParameter(f"Invalid {kind} {text} : {e}") from None


def pool_from_config(entry: dict[str, str]) -> tuple[IPv4Net, IPv4Addr | None, IPv4Net | None]:
    """Subnet, gateway and ip range of one IPAM.Config entry as the client sent it."""
    subnet_text = entry.get("Subnet") or ""
    if not subnet_text:
        raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
    subnet = _cidr("subnet", subnet_text)
    gateway = None
    if entry.get("Gateway"):
        gateway = parse_ip(entry["Gateway"])
        if gateway not in subnet:
            raise InvalidParameter(f"failed to allocate gateway ({gateway}): Requested "
                                   "address is out of range")
    ip_range = None
    if entry.get("IPRange"):
        ip_range = _cidr("ip-range", entry["IPRange"])
        if not ip_range.subnet_of(subnet):
            raise InvalidParameter(f"Invalid range {entry['IPRange']} for subnet "
                                   f"{subnet_text}")
    return subnet, gateway, ip_range


def make_pool(subnet: IPv4Net, gateway: IPv4Addr | None, ip_range: IPv4Net | None) -> Pool:
    if subnet.num_addresses < 4:
        raise InvalidParameter(f"subnet {subnet} is too small: it leaves no address for containers")
    return Pool(subnet, gateway or subnet.network_address + 1, ip_range)


def check_overlap(subnet: IPv4Net, used: Iterable[IPv4Net]) -> None:
    for other in used:
        if subnet.overlaps(other):
            raise Forbidden("Pool overlaps with other one on this address space")


def pick_subnet(pools: Sequence[tuple[str, int]], used: Iterable[IPv4Net]) -> IPv4Net:
    """The first subnet of the configured pools that overlaps nothing in use."""
    taken = list(used)
    for base, size in pools:
        try:
            candidates = list(ipaddress.IPv4Network(base, strict=False).subnets(new_prefix=size))
        except ValueError as e:
            raise InvalidParameter(f"invalid default address pool {base}/{size}: {e}") from None
        for candidate in candidates:
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    raise Forbidden("all predefined address pools have been fully subnetted")


def allocate(pool: Pool, used: set[IPv4Addr]) -> IPv4Addr:
    """The lowest free container address: never the network, broadcast or gateway address."""
    space = pool.ip_range or pool.subnet
    for addr in space.hosts() if space.num_addresses > 2 else space:
        if addr in pool.subnet and addr != pool.gateway and addr not in used \
                and addr not in (pool.subnet.network_address, pool.subnet.broadcast_address):
            return addr
    raise Forbidden(f"no available IPv4 addresses on this network's address pools: "
                    f"{pool.subnet}")


def check_static(pool: Pool, addr: IPv4Addr, used: set[IPv4Addr]) -> None:
    """A user-chosen --ip: inside the subnet, not taken."""
    if addr not in pool.subnet:
        raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {addr}")
    if addr in used or addr == pool.gateway:
        raise Forbidden("Address already in use")


def allocate_last(pool: Pool, used: set[IPv4Addr]) -> IPv4Addr:
    """The highest free address (for the daemon's own anchor, out of the containers' way)."""
    space = pool.ip_range or pool.subnet
    addr = space.broadcast_address - 1
    while addr > space.network_address:
        if addr in pool.subnet and addr != pool.gateway and addr not in used \
                and addr != pool.subnet.broadcast_address:
            return addr
        addr -= 1
    raise Forbidden(f"no available IPv4 addresses on this network's address pools: "
                    f"{pool.subnet}")


def mac_for(addr: IPv4Addr) -> str:
    """dockerd's MAC for an address: 02:42 and the address. A new container that gets an
    address back gets its MAC too, so the host's neighbour cache, still holding the old
    entry, delivers to it instead of to a veth that no longer exists."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)
