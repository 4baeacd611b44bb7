"""Address management, pure: subnets, gateways, ranges, and picking free addresses, for
IPv4 and IPv6 alike (the daemon's pools, from which subnets are chosen, are IPv4 only, as
dockerd 20.10's defaults).

Errors carry dockerd's wording; the service decides what is already in use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ...errors import Forbidden, InvalidParameter

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address

# dockerd's default local address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (
    *((f"172.{i}.0.0/16", 16) for i in range(17, 32)), ("192.168.0.0/16", 20))


@dataclass(frozen=True)
class Pool:
    """One IPAM.Config entry: the subnet, its gateway and where container addresses come from."""
    subnet: IPNet
    gateway: IPAddr
    ip_range: IPNet | None = None

    @property
    def version(self) -> int:
        return self.subnet.version

    def to_api(self) -> dict[str, str]:
        out = {"Subnet": str(self.subnet)}
        if self.ip_range is not None:
            out["IPRange"] = str(self.ip_range)
        out["Gateway"] = str(self.gateway)
        return out

    @classmethod
    def from_api(cls, entry: dict[str, str]) -> Pool:
        """The pool of a network's IPAM.Config entry (as to_api wrote it)."""
        return cls(ipaddress.ip_network(entry["Subnet"]), ipaddress.ip_address(entry["Gateway"]),
                   ipaddress.ip_network(entry["IPRange"]) if entry.get("IPRange") else None)


def pools(entries: Iterable[dict[str, str]], version: int) -> list[Pool]:
    """A network's pools of one family, in its IPAM.Config order."""
    out = [Pool.from_api(e) for e in entries]
    return [p for p in out if p.version == version]


def parse_cidr(text: str) -> IPNet:
    """A CIDR as Go's net.ParseCIDR takes it (host bits allowed, then masked)."""
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidParameter(f"invalid CIDR address: {text}") from None


def parse_ip(text: str) -> IPAddr:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidParameter(f"invalid IP address: {text}") from None


def _cidr(kind: str, text: str) -> IPNet:
    try:
        return parse_cidr(text)
    except InvalidParameter as e:
        raise InvalidParameter(f"Invalid {kind} {text} : {e}") from None


def pool_from_config(entry: dict[str, str]) -> tuple[IPNet, IPAddr | None, IPNet | None]:
    """Subnet, gateway and ip range of one IPAM.Config entry as the client sent it."""
    subnet_text = entry.get("Subnet") or ""
    if not subnet_text:
        raise InvalidParameter("every ip-range or gateway must have a corresponding subnet")
    subnet = _cidr("subnet", subnet_text)
    gateway = None
    if entry.get("Gateway"):
        gateway = parse_ip(entry["Gateway"])
        if gateway.version != subnet.version or gateway not in subnet:
            raise InvalidParameter(f"failed to allocate gateway ({gateway}): Requested "
                                   "address is out of range")
    ip_range = None
    if entry.get("IPRange"):
        ip_range = _cidr("ip-range", entry["IPRange"])
        if ip_range.version != subnet.version or \
                not ip_range.subnet_of(subnet):  # type: ignore[arg-type]
            raise InvalidParameter(f"Invalid range {entry['IPRange']} for subnet "
                                   f"{subnet_text}")
    return subnet, gateway, ip_range


def make_pool(subnet: IPNet, gateway: IPAddr | None, ip_range: IPNet | None) -> Pool:
    if subnet.num_addresses < 4:
        raise InvalidParameter(f"subnet {subnet} is too small: it leaves no address for containers")
    return Pool(subnet, gateway or subnet.network_address + 1, ip_range)


def check_overlap(subnet: IPNet, used: Iterable[IPNet]) -> None:
    for other in used:
        if other.version == subnet.version and subnet.overlaps(other):
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


def allocate(pool: Pool, used: set[IPAddr]) -> IPAddr:
    """The lowest free container address: never the network, broadcast or gateway address.
    (Lazily: an IPv6 range is huge, the first free address is among the first few.)"""
    space = pool.ip_range or pool.subnet
    for addr in space.hosts() if space.num_addresses > 2 else space:
        if addr in pool.subnet and addr != pool.gateway and addr not in used \
                and addr not in (pool.subnet.network_address, pool.subnet.broadcast_address):
            return addr
    raise Forbidden(f"no available IPv{pool.version} addresses on this network's address "
                    f"pools: {pool.subnet}")


def pick(pools_: list[Pool], static: str, used: set[IPAddr]) -> tuple[IPAddr, Pool]:
    """A container's address on one family of a network, and its pool: the one asked for
    (--ip, --ip6), or the first free one of the first pool that has one."""
    if static:
        addr = parse_ip(static)
        for pool in pools_:
            if addr in pool.subnet:
                check_static(pool, addr, used)
                return addr, pool
        raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {addr}")
    error: Forbidden | None = None
    for pool in pools_:
        try:
            return allocate(pool, used), pool
        except Forbidden as e:
            error = e
    raise error or Forbidden("no address pool on this network")


def check_static(pool: Pool, addr: IPAddr, used: set[IPAddr]) -> None:
    """A user-chosen --ip: inside the subnet, not taken."""
    if addr not in pool.subnet:
        raise InvalidParameter(f"no configured subnet or ip-range contain the IP address {addr}")
    if addr in used or addr == pool.gateway:
        raise Forbidden("Address already in use")


def allocate_last(pool: Pool, used: set[IPAddr]) -> IPAddr:
    """The highest free address (for the daemon's own anchor, out of the containers' way)."""
    space = pool.ip_range or pool.subnet
    addr = space.broadcast_address - 1
    while int(addr) > int(space.network_address):
        if addr in pool.subnet and addr != pool.gateway and addr not in used \
                and addr != pool.subnet.broadcast_address:
            return addr
        addr -= 1
    raise Forbidden(f"no available IPv4 addresses on this network's address pools: "
                    f"{pool.subnet}")


def mac_for(addr: IPAddr) -> str:
    """dockerd's MAC for an address: 02:42 and the address. A new container that gets an
    address back gets its MAC too, so the host's neighbour cache, still holding the old
    entry, delivers to it instead of to a veth that no longer exists."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)
