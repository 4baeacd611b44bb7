"""Reading a CNI result (spec 0.1 to 1.0) into the pod's addresses, as go-cni does."""

from __future__ import annotations

import ipaddress
from typing import Any

from .contract import PodNetworkResult


def _address(cidr: Any) -> str:
    if not isinstance(cidr, str):
        return ""
    try:
        return str(ipaddress.ip_interface(cidr).ip)
    except ValueError:
        return ""


def _ip(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return ""


def _ordered(ips: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first IPv4 address is the primary one (containerd's preference), then the rest."""
    for i, (ip, gw) in enumerate(ips):
        if ipaddress.ip_address(ip).version == 4:
            return [(ip, gw)] + ips[:i] + ips[i + 1:]
    return ips


def pod_result(result: dict[str, Any], ifname: str) -> PodNetworkResult:
    found: list[tuple[str, str]] = []
    mac = ""
    if "ips" in result or "interfaces" in result:
        interfaces = result.get("interfaces") or []
        ours = {i for i, itf in enumerate(interfaces)
                if isinstance(itf, dict) and itf.get("name") == ifname and itf.get("sandbox")}
        for i in ours:
            mac = str(interfaces[i].get("mac") or "")
        for ip in result.get("ips") or []:
            if not isinstance(ip, dict):
                continue
            index = ip.get("interface")
            # An address tied to no interface is the pod's when no sandbox interface is named.
            if (isinstance(index, int) and index in ours) or (index is None and not ours) \
                    or not interfaces:
                addr = _address(ip.get("address"))
                if addr:
                    found.append((addr, _ip(ip.get("gateway"))))
    else:  # 0.1.0 / 0.2.0
        for key in ("ip4", "ip6"):
            section = result.get(key)
            if isinstance(section, dict):
                addr = _address(section.get("ip"))
                if addr:
                    found.append((addr, _ip(section.get("gateway"))))
    ordered = _ordered(found)
    return PodNetworkResult(ips=tuple(ip for ip, _ in ordered), interface=ifname,
                            gateway=ordered[0][1] if ordered else "", raw=result, mac=mac)
