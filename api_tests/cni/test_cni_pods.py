"""Pods networked by the real CNI plugins: address, traffic, port mappings, teardown.

All traffic stays on this machine: from the host to a pod over the test's own bridge,
and to a published port through 127.0.0.1 or the bridge's (host) address.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

from dockerd_py.engine.cni import (
    CNI,
    CNIError,
    CNINotReady,
    PodBandwidth,
    PodNetwork,
    PortMapping,
)
from dockerd_py.engine.networks import netns

from ..lifetime import die_with_test_run
from .conftest import CNI_BIN, CNINet, iptables_save

_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""


@contextmanager
def server_in(netns_path: str, port: int, greeting: str) -> Iterator[None]:
    """A TCP server inside the namespace that sends `greeting` to each client."""
    proc = subprocess.Popen(["nsenter", f"--net={netns_path}", sys.executable, "-c", _SERVER,
                             str(port), greeting], stdout=subprocess.PIPE,
                            preexec_fn=die_with_test_run)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        yield
    finally:
        proc.kill()
        proc.wait()


def fetch(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=20) as c:
        data = b""
        while chunk := c.recv(4096):
            data += chunk
        return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_veths(bridge: str) -> list[str]:
    d = f"/sys/class/net/{bridge}/brif"
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def pod_rules(lines: set[str], net: CNINet, pod: PodNetwork,
              chains: Sequence[str] = ()) -> list[str]:
    """Firewall lines of this pod or this test's network (and of `chains`)."""
    keys = [pod.pod_id, net.bridge, net.subnet, net.name, *chains]
    keys += [net.subnet6] if net.subnet6 else []
    return sorted(line for line in lines if any(k in line for k in keys))


def chains_of(rules: list[str]) -> set[str]:
    """The per-pod chains (CNI-DN-<hash>, CNI-<hash>) the rules jump to."""
    return set(re.findall(r"CNI-(?:DN-)?[0-9a-f]{8,}", "\n".join(rules)))


async def test_setup_gives_addresses_and_traffic_reaches_the_pod(cni_net: CNINet) -> None:
    cni = cni_net.cni()
    pod = cni_net.pod()
    result = await cni.setup(pod)
    assert result.interface == "eth0"
    v4 = ipaddress.ip_address(result.ips[0])
    assert v4.version == 4 and v4 in ipaddress.ip_network(cni_net.subnet)
    assert result.gateway == str(next(ipaddress.ip_network(cni_net.subnet).hosts()))
    if cni_net.subnet6:
        assert [ipaddress.ip_address(ip) in ipaddress.ip_network(cni_net.subnet6)
                for ip in result.ips[1:]] == [True]
    assert cni_net.allocations() == sorted(result.ips)
    assert len(host_veths(cni_net.bridge)) == 1
    # Inside: eth0 holds the address, lo is up with 127.0.0.1 (the loopback network).
    addrs = json.loads(subprocess.run(["nsenter", f"--net={pod.netns_path}", "ip", "-j", "addr"],
                                      check=True, capture_output=True).stdout)
    by_name = {a["ifname"]: a for a in addrs}
    assert "UP" in by_name["lo"]["flags"]
    assert "127.0.0.1" in [i["local"] for i in by_name["lo"]["addr_info"]]
    assert result.ips[0] in [i["local"] for i in by_name["eth0"]["addr_info"]]
    with server_in(pod.netns_path, 7070, "hello from the pod"):
        assert fetch(result.ips[0], 7070) == b"hello from the pod"
    await cni.check(pod)
    await cni.teardown(pod)
    assert host_veths(cni_net.bridge) == []
    assert cni_net.allocations() == []


async def test_port_mapping_from_localhost_and_host_address(cni_net: CNINet,
                                                             firewall: set[str]) -> None:
    cni = cni_net.cni()
    host_port = free_port()
    pod = cni_net.pod((PortMapping("TCP", 8080, host_port, ""),
                       PortMapping("tcp", 9090, 0, "")))   # no host port: not published
    result = await cni.setup(pod)
    ours = pod_rules(iptables_save() - firewall, cni_net, pod)
    assert any(f"--dports {host_port}" in line for line in ours), ours
    assert not any("9090" in line for line in ours)
    chains = chains_of(ours)
    assert chains
    gateway = result.gateway
    with server_in(pod.netns_path, 8080, "mapped"):
        assert fetch("127.0.0.1", host_port) == b"mapped"
        assert fetch(gateway, host_port) == b"mapped"
    await cni.teardown(pod)
    assert pod_rules(iptables_save() - firewall, cni_net, pod, sorted(chains)) == []
    assert host_veths(cni_net.bridge) == []
    assert cni_net.allocations() == []
    assert not list((cni_net.cache_dir / "results").iterdir())


async def test_teardown_after_restart_from_the_cache_alone(cni_net: CNINet,
                                                           firewall: set[str]) -> None:
    pod = cni_net.pod((PortMapping("tcp", 80, free_port(), "127.0.0.1"),))
    result = await cni_net.cni().setup(pod)
    chains = chains_of(pod_rules(iptables_save() - firewall, cni_net, pod))
    assert chains
    # The "restart": a new CNI object, the config directory emptied, the namespace gone.
    (cni_net.conf_dir / "10-test.conflist").unlink()
    netns.remove(str(cni_net.netns_root), pod.pod_id)
    assert cni_net.allocations() == sorted(result.ips)
    restarted = cni_net.cni()
    await restarted.teardown(pod)
    assert pod_rules(iptables_save() - firewall, cni_net, pod, sorted(chains)) == []
    assert host_veths(cni_net.bridge) == []
    assert cni_net.allocations() == []
    await restarted.teardown(pod)   # idempotent, nothing left to act on


async def test_teardown_is_idempotent_and_needs_no_setup(cni_net: CNINet) -> None:
    cni = cni_net.cni()
    pod = cni_net.pod()
    await cni.teardown(pod)         # never set up: DEL on the current config succeeds
    await cni.setup(pod)
    await cni.teardown(pod)
    await cni.teardown(pod)
    assert cni_net.allocations() == []


async def test_two_pods_get_distinct_addresses(cni_net: CNINet) -> None:
    cni = cni_net.cni()
    a, b = cni_net.pod(), cni_net.pod()
    ra, rb = await cni.setup(a), await cni.setup(b)
    assert ra.ips[0] != rb.ips[0]
    with server_in(b.netns_path, 7171, "b"):
        # Pod to pod across the bridge.
        out = subprocess.run(["nsenter", f"--net={a.netns_path}", sys.executable, "-c",
                              "import socket,sys; c=socket.create_connection((sys.argv[1],"
                              " 7171), timeout=20); print(c.recv(10).decode())", rb.ips[0]],
                             check=True, capture_output=True, text=True)
        assert out.stdout.strip() == "b"
    await cni.teardown(a)
    await cni.teardown(b)
    assert cni_net.allocations() == []


async def test_plugin_failure_is_reported_and_undone(cni_net: CNINet) -> None:
    conf = cni_net.conflist()
    conf["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "not-a-subnet"}]]
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(conf))
    pod = cni_net.pod()
    with pytest.raises(CNIError) as e:
        await cni_net.cni().setup(pod)
    assert 'plugin type="bridge" name="' + cni_net.name + '" failed (add)' in str(e.value)
    assert "not-a-subnet" in str(e.value)
    assert not list((cni_net.cache_dir / "results").iterdir())


async def test_missing_plugin_is_named(cni_net: CNINet) -> None:
    conf = cni_net.conflist()
    conf["plugins"].append({"type": "no-such-plugin"})
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(conf))
    cni = cni_net.cni()
    with pytest.raises(CNINotReady, match="no-such-plugin"):
        await cni.status()
    pod = cni_net.pod()
    with pytest.raises(CNIError, match="failed to find plugin 'no-such-plugin'"):
        await cni.setup(pod)
    assert cni_net.allocations() == []
    assert host_veths(cni_net.bridge) == []


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0"])
async def test_older_spec_versions(cni_net: CNINet, version: str) -> None:
    conf = cni_net.conflist()
    conf["cniVersion"] = version
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(conf))
    cni = cni_net.cni()
    # No port mapping: Debian's portmap 1.1.1 fails its own CHECK once it has rules
    # (containernetworking/plugins#819).
    pod = cni_net.pod()
    result = await cni.setup(pod)
    assert ipaddress.ip_address(result.ips[0]) in ipaddress.ip_network(cni_net.subnet)
    await cni.check(pod)        # CHECK exists from 0.4.0 on; before, nothing to run
    netns.remove(str(cni_net.netns_root), pod.pod_id)
    await cni_net.cni().teardown(pod)
    assert cni_net.allocations() == []


async def test_concurrent_pods(cni_net: CNINet) -> None:
    cni = cni_net.cni()
    pods = [cni_net.pod() for _ in range(4)]
    results = await asyncio.gather(*(cni.setup(p) for p in pods))
    assert len({r.ips[0] for r in results}) == 4
    assert len(host_veths(cni_net.bridge)) == 4
    await asyncio.gather(*(cni.teardown(p) for p in pods))
    assert cni_net.allocations() == []
    assert host_veths(cni_net.bridge) == []


async def test_a_hung_plugin_is_killed(cni_net: CNINet) -> None:
    bin_dir = cni_net.root / "bin"
    bin_dir.mkdir()
    hung = bin_dir / "hangs"
    hung.write_text("#!/bin/sh\nexec sleep 1000\n")
    hung.chmod(0o755)
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": cni_net.name, "plugins": [{"type": "hangs"}]}))
    cni = CNI(cni_net.conf_dir, [bin_dir, CNI_BIN], cni_net.cache_dir, plugin_timeout=1)
    with pytest.raises(CNIError, match='plugin type="hangs" .* no answer within 1s'):
        await cni.setup(cni_net.pod())
    out = subprocess.run(["pgrep", "-f", str(hung)], capture_output=True, text=True)
    assert out.stdout == ""


async def test_bandwidth_reaches_the_plugin_that_declares_it(cni_net: CNINet) -> None:
    """runtimeConfig carries a capability only to the plugins that declare it."""
    conf = cni_net.conflist()
    conf["plugins"].append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(conf))
    cni = cni_net.cni()
    shaped = dataclasses.replace(cni_net.pod(), bandwidth=PodBandwidth(
        ingress_rate=8_000_000, ingress_burst=80_000_000))
    cni_net.pods.append(shaped)
    await cni.setup(shaped)
    [veth] = host_veths(cni_net.bridge)
    qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", veth], check=True,
                            capture_output=True, text=True).stdout
    assert "tbf" in qdiscs and "rate 8Mbit" in qdiscs, qdiscs
    await cni.teardown(shaped)

    # The same plugin without the capability declared gets no runtimeConfig: no shaping.
    conf["plugins"][-1] = {"type": "bandwidth"}
    (cni_net.conf_dir / "10-test.conflist").write_text(json.dumps(conf))
    plain = dataclasses.replace(cni_net.pod(), bandwidth=PodBandwidth(8_000_000, 80_000_000))
    cni_net.pods.append(plain)
    await cni.setup(plain)
    [veth] = host_veths(cni_net.bridge)
    qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", veth], check=True,
                            capture_output=True, text=True).stdout
    assert "tbf" not in qdiscs, qdiscs
    await cni.teardown(plain)
    assert cni_net.allocations() == []
