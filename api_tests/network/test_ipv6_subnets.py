"""IPv6 and several subnets per network (netavark does both), link-local addresses and
per-endpoint MACs, and user subnets that overlap only the daemon's address pools.

Traffic goes only between the test's own containers.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Iterator
from typing import Any

import docker as docker_sdk
import pytest

from ..conftest import Daemon, DockerRun, network_config
from .conftest import inspect_ctr, nat_rules_for

Make = Callable[..., dict[str, Any]]


@pytest.fixture
def v6(pre: Callable[[int], str]) -> Callable[[int], str]:
    """v6(k) -> "fd64:A:B::", a /64 prefix of the session's own, as pre(k) for IPv4."""
    def make(k: int) -> str:
        _, a, b = pre(k).split(".")
        return f"fd64:{a}:{b}::"
    return make


@pytest.fixture
def pynets(dockerpy: Any) -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for n in made:
        n.reload()
        for cid in n.attrs.get("Containers") or {}:
            dockerpy.api.remove_container(cid, force=True)
        n.remove()
    leaks = [r for n in made for c in n.attrs["IPAM"]["Config"] for r in
             nat_rules_for(c["Subnet"])]
    assert not leaks


def _ipam(*pools: dict[str, str]) -> Any:
    return docker_sdk.types.IPAMConfig(pool_configs=[docker_sdk.types.IPAMPool(**p)
                                                     for p in pools])


def test_dual_stack_network(dockerpy: Any, docker: DockerRun, pynets: list[Any],
                            pre: Callable[[int], str], v6: Callable[[int], str],
                            unique_name: Callable[..., str], ctr: Callable[..., str],
                            daemon: Daemon) -> None:
    net = dockerpy.networks.create(
        unique_name("v6"), enable_ipv6=True,
        ipam=_ipam({"subnet": f"{pre(1)}.0/24", "gateway": f"{pre(1)}.254"},
                   {"subnet": f"{v6(1)}/64", "gateway": f"{v6(1)}fe"}))
    pynets.append(net)
    assert net.attrs["EnableIPv6"] is True
    assert [c["Subnet"] for c in net.attrs["IPAM"]["Config"]] == [f"{pre(1)}.0/24",
                                                                  f"{v6(1)}/64"]
    a, b = ctr(), ctr()
    docker("run", "-d", "--name", a, "--network", net.name, "busybox", "sleep", "300")
    docker("run", "-d", "--name", b, "--network", net.name, "--ip6", f"{v6(1)}99", "--ip",
           f"{pre(1)}.77", "busybox", "sleep", "300")
    ea = inspect_ctr(docker, a)["NetworkSettings"]["Networks"][net.name]
    eb = inspect_ctr(docker, b)["NetworkSettings"]["Networks"][net.name]
    assert (ea["IPAddress"], ea["GlobalIPv6Address"], ea["GlobalIPv6PrefixLen"],
            ea["IPv6Gateway"]) == (f"{pre(1)}.1", f"{v6(1)}1", 64, f"{v6(1)}fe")
    assert (eb["IPAddress"], eb["GlobalIPv6Address"]) == (f"{pre(1)}.77", f"{v6(1)}99")
    assert eb["IPAMConfig"] == {"IPv4Address": f"{pre(1)}.77", "IPv6Address": f"{v6(1)}99"}
    net.reload()
    shown = {v["Name"]: v["IPv6Address"] for v in net.attrs["Containers"].values()}
    assert shown == {a: f"{v6(1)}1/64", b: f"{v6(1)}99/64"}
    addrs = docker("exec", a, "ip", "-6", "addr", "show", "eth0").stdout
    assert f"inet6 {v6(1)}1/64" in addrs
    assert docker("exec", a, "ping", "-6", "-c", "1", "-W", "5", f"{v6(1)}99").returncode == 0
    # By name over IPv6 too (aardvark-dns answers AAAA on the network).
    r = docker("exec", a, "nslookup", "-type=AAAA", b)
    assert f"{v6(1)}99" in r.stdout
    # Connect and disconnect a running container with --ip6.
    c = ctr()
    docker("run", "-d", "--name", c, "busybox", "sleep", "300")
    docker("network", "connect", "--ip6", f"{v6(1)}55", net.name, c)
    ec = inspect_ctr(docker, c)["NetworkSettings"]["Networks"][net.name]
    assert ec["GlobalIPv6Address"] == f"{v6(1)}55"
    assert f"inet6 {v6(1)}55/64" in docker("exec", c, "ip", "-6", "addr", "show",
                                           "eth1").stdout
    docker("network", "disconnect", net.name, c)
    assert net.name not in inspect_ctr(docker, c)["NetworkSettings"]["Networks"]
    # The daemon restarts: the containers keep their addresses, and inspect says so.
    daemon.restart()
    eb = inspect_ctr(docker, b)["NetworkSettings"]["Networks"][net.name]
    assert (eb["GlobalIPv6Address"], eb["IPv6Gateway"]) == (f"{v6(1)}99", f"{v6(1)}fe")


def test_ipv6_refusals(dockerpy: Any, docker: DockerRun, pynets: list[Any],
                       pre: Callable[[int], str], v6: Callable[[int], str],
                       unique_name: Callable[..., str], ctr: Callable[..., str]) -> None:
    with pytest.raises(docker_sdk.errors.NotFound) as e:
        dockerpy.networks.create(unique_name("v6"), enable_ipv6=True)
    assert "could not find an available, non-overlapping IPv6 address pool" in \
        e.value.explanation
    # IPv6 subnets without EnableIPv6: kept, unused (as dockerd); --ip6 there is refused.
    net = dockerpy.networks.create(unique_name("v6"),
                                   ipam=_ipam({"subnet": f"{v6(2)}/64"}))
    pynets.append(net)
    assert net.attrs["EnableIPv6"] is False
    config = net.attrs["IPAM"]["Config"]
    assert len(config) == 2 and config[1]["Subnet"] == f"{v6(2)}/64"
    a = ctr()
    docker("run", "-d", "--name", a, "--network", net.name, "busybox", "sleep", "300")
    assert inspect_ctr(docker, a)["NetworkSettings"]["Networks"][net.name][
        "GlobalIPv6Address"] == ""
    r = docker("run", "--rm", "--network", net.name, "--ip", f"{pre(2)}.5", "busybox", "true",
               check=False)
    assert "user specified IP address is supported only when connecting to networks with " \
           "user configured subnets" in r.stderr


def test_several_subnets_of_one_family(dockerpy: Any, docker: DockerRun, pynets: list[Any],
                                       pre: Callable[[int], str],
                                       unique_name: Callable[..., str],
                                       ctr: Callable[..., str]) -> None:
    net = dockerpy.networks.create(unique_name("two"), ipam=_ipam(
        {"subnet": f"{pre(3)}.0/24"}, {"subnet": f"{pre(4)}.0/24"}))
    pynets.append(net)
    assert [c["Subnet"] for c in net.attrs["IPAM"]["Config"]] == [f"{pre(3)}.0/24",
                                                                  f"{pre(4)}.0/24"]
    a, b = ctr(), ctr()
    docker("run", "-d", "--name", a, "--network", net.name, "busybox", "sleep", "300")
    docker("run", "-d", "--name", b, "--network", net.name, "--ip", f"{pre(4)}.9",
           "busybox", "sleep", "300")
    ea = inspect_ctr(docker, a)["NetworkSettings"]["Networks"][net.name]
    eb = inspect_ctr(docker, b)["NetworkSettings"]["Networks"][net.name]
    assert (ea["IPAddress"], ea["Gateway"]) == (f"{pre(3)}.2", f"{pre(3)}.1")
    assert (eb["IPAddress"], eb["Gateway"]) == (f"{pre(4)}.9", f"{pre(4)}.1")
    route = docker("exec", b, "ip", "route").stdout
    assert f"default via {pre(4)}.1" in route
    assert docker("exec", a, "ping", "-c", "1", "-W", "5", f"{pre(4)}.9").returncode == 0


def test_mac_and_link_local_addresses(dockerpy: Any, docker: DockerRun, pynets: list[Any],
                                      pre: Callable[[int], str],
                                      unique_name: Callable[..., str],
                                      ctr: Callable[..., str]) -> None:
    net = dockerpy.networks.create(unique_name("ll"),
                                   ipam=_ipam({"subnet": f"{pre(5)}.0/24"}))
    pynets.append(net)
    running, stopped = ctr(), ctr()
    docker("run", "-d", "--name", running, "busybox", "sleep", "300")
    dockerpy.api.connect_container_to_network(running, net.id, mac_address="02:11:22:33:44:55",
                                              link_local_ips=["169.254.7.7", "fe80::77"])
    ep = inspect_ctr(docker, running)["NetworkSettings"]["Networks"][net.name]
    assert ep["MacAddress"] == "02:11:22:33:44:55"
    assert ep["IPAMConfig"]["LinkLocalIPs"] == ["169.254.7.7", "fe80::77"]
    addrs = docker("exec", running, "ip", "addr", "show", "eth1").stdout
    assert "link/ether 02:11:22:33:44:55" in addrs
    assert "inet 169.254.7.7/16" in addrs and "inet6 fe80::77/64" in addrs
    docker("create", "--name", stopped, "busybox", "sleep", "300")
    dockerpy.api.connect_container_to_network(stopped, net.id, mac_address="02:11:22:33:44:66")
    docker("start", stopped)
    assert inspect_ctr(docker, stopped)["NetworkSettings"]["Networks"][net.name][
        "MacAddress"] == "02:11:22:33:44:66"
    for bad, words in ((["10.1.1.1"], "invalid link local IP address: 10.1.1.1"),
                       (["bogus"], "Invalid link-local IP address: [bogus]")):
        with pytest.raises(docker_sdk.errors.APIError) as e:
            dockerpy.api.connect_container_to_network(stopped, "bridge", link_local_ips=bad)
        assert e.value.status_code == 400 and e.value.explanation == words


def test_subnet_overlapping_only_the_default_pools(docker: DockerRun, daemon: Daemon,
                                                   unique_name: Callable[..., str]) -> None:
    base = network_config(daemon.tmp)["default-address-pools"][0]["base"]
    pool = ipaddress.ip_network(base)
    in_use = [ipaddress.ip_network(c["Subnet"]) for n in json.loads(docker(
        "network", "inspect", *docker("network", "ls", "-q").stdout.split()).stdout)
        for c in n["IPAM"]["Config"]]
    assert not any(pool.overlaps(u) for u in in_use if u.version == 4)
    name = unique_name("pool")
    docker("network", "create", "--subnet", base, name)
    docker("network", "rm", name)
