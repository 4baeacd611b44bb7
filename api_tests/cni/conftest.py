"""Real CNI plugins (Debian's containernetworking-plugins) on a network of the test's own.

Fixtures:
  cni_net     a CNINet: a conf dir holding a bridge + portmap conflist with a bridge name,
              subnet (and IPv6 ULA when the host has IPv6), network name and host-local
              data dir nobody else uses; make_netns() / pod() make namespaces and pods
              that are torn down after the test, as are the bridge and the portmap chains
              the test run created, even when the test failed.
  firewall    iptables-save of the test's start (nat and filter), to compare with later.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dockerd_py.engine.cni import CNI, PodNetwork, PortMapping
from dockerd_py.engine.networks import netns

CNI_BIN = Path("/usr/lib/cni")
# The chains portmap shares between all pods of the host and never deletes.
SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")

if os.geteuid() != 0:
    pytest.skip("CNI plugins need root", allow_module_level=True)


def iptables_save() -> set[str]:
    """Rules and chains of nat and filter, IPv4 ("4 nat -A ...") and IPv6, no counters."""
    lines: set[str] = set()
    for family, tool in (("4", "iptables-save"), ("6", "ip6tables-save")):
        for table in ("nat", "filter"):
            out = subprocess.run([tool, "-t", table], check=True, capture_output=True,
                                 text=True).stdout
            for line in out.splitlines():
                if line.startswith(":"):
                    lines.add(f"{family} {table} {line.split(' [')[0]}")
                elif line.startswith("-A"):
                    lines.add(f"{family} {table} {line}")
    return lines


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _routed(prefix: str) -> bool:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    return any(line.startswith(prefix) for line in out.splitlines())


@dataclass
class CNINet:
    root: Path
    name: str
    bridge: str
    subnet: str
    subnet6: str
    conf_dir: Path
    cache_dir: Path
    data_dir: Path
    netns_root: Path
    pods: list[PodNetwork] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def cni(self) -> CNI:
        """A new CNI object: a daemon restart as far as the CNI layer is concerned."""
        return CNI(self.conf_dir, [CNI_BIN], self.cache_dir)

    def make_netns(self) -> tuple[str, str]:
        pod_id = secrets.token_hex(32)
        self.namespaces.append(pod_id)
        return pod_id, netns.create(str(self.netns_root), pod_id)

    def pod(self, ports: tuple[PortMapping, ...] = ()) -> PodNetwork:
        pod_id, path = self.make_netns()
        net = PodNetwork(pod_id=pod_id, name=f"PodSandbox-{pod_id[:8]}", namespace="cni-test",
                         uid=f"uid-{pod_id[:12]}", netns_path=path, port_mappings=ports)
        self.pods.append(net)
        return net

    def allocations(self) -> list[str]:
        d = self.data_dir / self.name
        return sorted(n for n in os.listdir(d) if _is_ip(n)) if d.exists() else []

    def conflist(self) -> dict[str, Any]:
        ranges: list[list[dict[str, str]]] = [[{"subnet": self.subnet}]]
        if self.subnet6:
            ranges.append([{"subnet": self.subnet6}])
        return {"cniVersion": "1.0.0", "name": self.name, "plugins": [
            {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": ranges, "dataDir": str(self.data_dir),
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]}


@pytest.fixture
def firewall() -> set[str]:
    return iptables_save()


@pytest.fixture
def cni_net(firewall: set[str]) -> Iterator[CNINet]:
    root = Path(tempfile.mkdtemp(prefix="dpy-cni-"))
    tag = secrets.token_hex(3)
    for _ in range(64):
        a, b = 18 + secrets.randbelow(2), secrets.randbelow(256)
        if not _routed(f"198.{a}.{b}."):
            break
    ipv6 = Path("/proc/sys/net/ipv6/conf/all/disable_ipv6").read_text().strip() == "0"
    net = CNINet(root=root, name=f"dpytest-{tag}", bridge=f"cnit{tag}",
                 subnet=f"198.{a}.{b}.0/24",
                 subnet6=f"fd{secrets.token_hex(1)}:{secrets.token_hex(2)}:{tag[:4]}::/64"
                 if ipv6 else "",
                 conf_dir=root / "net.d", cache_dir=root / "cache", data_dir=root / "ipam",
                 netns_root=root / "netns")
    net.conf_dir.mkdir()
    (net.conf_dir / "10-test.conflist").write_text(json.dumps(net.conflist()))
    try:
        yield net
    finally:
        _clean(net, firewall)


def _clean(net: CNINet, before: set[str]) -> None:
    cni = net.cni()
    for pod in net.pods:
        with contextlib.suppress(Exception):
            asyncio.run(cni.teardown(pod))
    for pod_id in net.namespaces:
        netns.remove(str(net.netns_root), pod_id)
    if Path(f"/sys/class/net/{net.bridge}").exists():
        subprocess.run(["ip", "link", "del", net.bridge], check=False)
    _drop_unused_shared_chains(before)
    shutil.rmtree(net.root, ignore_errors=True)
    assert not Path(f"/sys/class/net/{net.bridge}").exists(), f"bridge {net.bridge} left"
    assert not net.root.exists(), f"{net.root} left (a namespace still mounted?)"


def _drop_unused_shared_chains(before: set[str]) -> None:
    """portmap's host-wide chains, when this test made them and no pod uses them now
    (portmap makes them again on its next ADD)."""
    now = iptables_save()
    for family, tool in (("4", "iptables"), ("6", "ip6tables")):
        if any(line.startswith(f"{family} nat -A CNI-HOSTPORT-DNAT")
               or line.startswith(f"{family} nat :CNI-DN-") for line in now):
            continue
        made = sorted(line.split(" ", 2)[1:] for line in now - before
                      if line.startswith(f"{family} "))
        for table, rule in made:
            if rule.startswith("-A ") and any(rule.endswith(f"-j {c}") for c in SHARED_CHAINS):
                subprocess.run([tool, "-t", table, "-D", *shlex.split(rule)[1:]], check=False)
        for chain in SHARED_CHAINS:
            if ["nat", f":{chain} -"] in made:
                subprocess.run([tool, "-t", "nat", "-F", chain], check=False)
                subprocess.run([tool, "-t", "nat", "-X", chain], check=False)
