"""The netavark driver: one container's interface on one network, set up and torn down.

netavark (Podman's network stack) makes the bridge, the veth pair, the
addresses, the NAT and port-forwarding rules (chains of its own per network),
and feeds aardvark-dns for name resolution. It is told everything on stdin;
this module only builds that document and runs the binary. Networks are
named to netavark by their ID, so two daemons on one host never share a
chain or a DNS zone even when their networks have the same names.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from ...errors import InternalError
from . import grammar
from .records import Endpoint, Network

_SEARCH = ("/usr/lib/podman", "/usr/libexec/podman", "/usr/local/lib/podman")


def _binary(name: str) -> str:
    for d in _SEARCH:
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return shutil.which(name) or name


@dataclass(frozen=True)
class SetupResult:
    mac: str
    address: str
    prefix_len: int
    gateway: str


class Netavark:
    def __init__(self, config_dir: str) -> None:
        self.config_dir = config_dir
        self.binary = _binary("netavark")
        self.aardvark = _binary("aardvark-dns")
        os.makedirs(os.path.join(config_dir, "aardvark-dns"), mode=0o700, exist_ok=True)

    def available(self) -> bool:
        return os.access(self.binary, os.X_OK)

    @staticmethod
    def options(network: Network, ep: Endpoint, container_name: str) -> dict[str, Any]:
        """The document on netavark's stdin. Its strings end up in firewall rules netavark
        splits on whitespace and quotes, and in aardvark-dns' line-based config: each is
        checked against its grammar here, whatever the records say."""
        if not grammar.bridge_name_ok(network.bridge):
            raise InternalError(f"network {network.name} has an invalid bridge name "
                                f"{network.bridge!r}: remove it and create it again")
        # netavark pairs static_ips with subnets by position, and wants one per subnet:
        # the endpoint's own subnets first (IPv4, then IPv6, which the default routes
        # go through), then the others, where it has an address of less importance.
        subnets = _subnets_for(network, ep)
        per_network: dict[str, Any] = {"static_ips": _static_ips(network, ep),
                                       "interface_name": ep.interface}
        if network.dns_enabled:
            per_network["aliases"] = [n for n in ep.dns_names if grammar.alias_ok(n)]
        if ep.mac:
            per_network["static_mac"] = grammar.check_mac(ep.mac)
        doc: dict[str, Any] = {
            "container_id": ep.container_id,
            "container_name": container_name if grammar.alias_ok(container_name)
            else ep.container_id,
            "networks": {network.id: per_network},
            "network_info": {network.id: {
                "name": network.id, "id": network.id, "driver": "bridge",
                "network_interface": network.bridge,
                "subnets": [{"subnet": s["Subnet"], "gateway": s["Gateway"]} for s in subnets],
                "ipv6_enabled": any(":" in s["Subnet"] for s in subnets),
                "internal": network.internal,
                "dns_enabled": network.dns_enabled,
                "ipam_options": {"driver": "host-local"},
            }},
        }
        if ep.ports:
            doc["port_mappings"] = list(ep.ports)
        return doc

    async def _run(self, verb: str, netns: str, doc: dict[str, Any]) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.binary, "--config", self.config_dir, "--aardvark-binary", self.aardvark,
            verb, netns, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate(json.dumps(doc).encode())
        if proc.returncode != 0:
            raise InternalError(_error_text(out, err) or f"netavark {verb} failed")
        return out.decode()

    async def setup(self, netns: str, network: Network, ep: Endpoint,
                    container_name: str) -> SetupResult:
        """All or nothing: a failed setup is torn down before the error is raised."""
        doc = self.options(network, ep, container_name)
        try:
            out = await self._run("setup", netns, doc)
        except BaseException:
            await asyncio.shield(self._quiet_teardown(netns, doc))
            raise
        try:
            iface = json.loads(out)[network.id]["interfaces"][ep.interface]
            subnet = iface["subnets"][0]
            address, _, prefix = subnet["ipnet"].partition("/")
            return SetupResult(iface.get("mac_address", ""), address, int(prefix),
                               subnet.get("gateway", ""))
        except (ValueError, KeyError, IndexError, TypeError):
            await asyncio.shield(self._quiet_teardown(netns, doc))
            raise InternalError(f"netavark setup: unexpected answer {out[:200]!r}") from None

    async def teardown(self, netns: str, network: Network, ep: Endpoint,
                       container_name: str) -> None:
        await self._run("teardown", netns, self.options(network, ep, container_name))
        if not os.path.exists(f"/sys/class/net/{network.bridge}"):
            await self._drop_port_chain(network)

    @staticmethod
    async def _drop_port_chain(network: Network) -> None:
        """netavark's last teardown on a network leaves the network's port-forwarding
        chain behind (empty) unless that teardown itself had ports. The chain is named
        after the network (here its ID, hence ours alone); -X refuses a chain still in
        use or not empty, so this never takes anything another daemon relies on."""
        tag = hashlib.sha512(network.id.encode()).hexdigest()[:13].upper()
        tools = ["iptables", "ip6tables"] if network.enable_ipv6 else ["iptables"]
        for tool in tools:
            proc = await asyncio.create_subprocess_exec(
                tool, "-w", "-t", "nat", "-X", f"NETAVARK-DN-{tag}",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await proc.wait()

    async def _quiet_teardown(self, netns: str, doc: dict[str, Any]) -> None:
        try:
            await self._run("teardown", netns, doc)
        except InternalError:
            pass  # a partial setup may lack pieces teardown expects; what exists is gone


def _subnets_for(network: Network, ep: Endpoint) -> list[dict[str, str]]:
    """The network's IPAM.Config entries in the order netavark needs for this endpoint:
    the one holding its IPv4 address, the one holding its IPv6 address, then the rest.
    IPv6 ones only where IPv6 is enabled (as dockerd, which ignores them otherwise)."""
    entries = [s for s in network.subnets if network.enable_ipv6 or ":" not in s["Subnet"]]

    def holds(entry: dict[str, str], address: str) -> bool:
        net = ipaddress.ip_network(entry["Subnet"])
        return bool(address) and ipaddress.ip_address(address) in net

    first = [e for e in entries if holds(e, ep.address)][:1]
    first += [e for e in entries if holds(e, ep.address6)][:1]
    return first + [e for e in entries if e not in first]


def _static_ips(network: Network, ep: Endpoint) -> list[str]:
    """One address per subnet, in _subnets_for's order (netavark 1.4 wants as many)."""
    out = []
    for entry in _subnets_for(network, ep):
        net = ipaddress.ip_network(entry["Subnet"])
        out += [a for a in (ep.address, ep.address6, *ep.extra_addresses)
                if a and ipaddress.ip_address(a) in net][:1]
    return out


def _error_text(out: bytes, err: bytes) -> str:
    for blob in (out, err):
        for line in blob.decode(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    return str(json.loads(line).get("error") or "")
                except ValueError:
                    continue
    return (err or out).decode(errors="replace").strip()[-500:]
