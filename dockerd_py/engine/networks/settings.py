"""The daemon's networking flags, and the subnets they let new networks take."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameter
from . import grammar, ipam


@dataclass(frozen=True)
class NetworkSettings:
    """The daemon's networking flags (dockerd's -b, --bip, --fixed-cidr, ...)."""
    exec_root: str                    # netns pins, netavark's config and state live below
    bridge: str = ""                  # default bridge interface ("none": no default bridge)
    bip: str = ""                     # its gateway address and subnet, e.g. 172.17.0.1/16
    fixed_cidr: str = ""              # where its container addresses come from
    default_address_pools: tuple[dict[str, Any], ...] = ()  # {"base": CIDR, "size": N}
    iptables: bool = True

    def __post_init__(self) -> None:
        """-b/--bridge becomes an interface, firewall rules and ip scripts: the same
        grammar as a network's bridge name, checked before the daemon starts."""
        if self.bridge not in ("", "none") and not grammar.bridge_name_ok(self.bridge):
            raise InvalidParameter(
                f"invalid bridge name {self.bridge!r} (-b/--bridge): at most 15 printable "
                "ASCII characters, without / : \" ' \\, not . or .., no leading ! or "
                "trailing +")


def address_pools(settings: NetworkSettings) -> list[tuple[str, int]]:
    configured = [(str(p["base"]), int(p["size"])) for p in settings.default_address_pools]
    return configured or [*ipam.DEFAULT_POOLS]


def free_subnet(settings: NetworkSettings, used: Iterable[ipaddress.IPv4Network],
                exclude: str = "") -> ipaddress.IPv4Network:
    """The first subnet of the pools that overlaps neither `used` nor a host route (but
    those through the interface `exclude`)."""
    return ipam.pick_subnet(address_pools(settings), [*used, *host_routes(exclude)])


def host_routes(exclude: str = "") -> list[ipaddress.IPv4Network]:
    """IPv4 networks the host already routes (not the default route), except through the
    interface `exclude`: never picked."""
    out: list[ipaddress.IPv4Network] = []
    with contextlib.suppress(OSError):
        with open("/proc/net/route") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                dest, mask = int(fields[1], 16), int(fields[7], 16)
                if mask == 0 or (exclude and fields[0] == exclude):
                    continue
                net = ipaddress.IPv4Network(
                    (ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                     bin(mask).count("1")), strict=False)
                out.append(net)
    return out
