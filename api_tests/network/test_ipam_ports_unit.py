"""Pure logic of the network service: address management and port requests."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from dockerd_py.engine.networks import ipam, ports
from dockerd_py.engine.networks.ipam import mac_for
from dockerd_py.errors import Forbidden, InvalidParameter


def net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_pick_subnet_skips_what_is_in_use() -> None:
    pools = [("10.10.0.0/16", 24)]
    assert ipam.pick_subnet(pools, []) == net("10.10.0.0/24")
    assert ipam.pick_subnet(pools, [net("10.10.0.0/23")]) == net("10.10.2.0/24")
    with pytest.raises(Forbidden, match="fully subnetted"):
        ipam.pick_subnet([("10.10.0.0/23", 24)], [net("10.10.0.0/23")])
    # dockerd's defaults start at 172.17.0.0/16.
    assert ipam.pick_subnet(ipam.DEFAULT_POOLS, []) == net("172.17.0.0/16")


def test_allocate_skips_gateway_and_used_and_honours_the_range() -> None:
    pool = ipam.make_pool(net("10.0.0.0/24"), None, None)
    assert pool.gateway == ipaddress.IPv4Address("10.0.0.1")
    assert str(ipam.allocate(pool, set())) == "10.0.0.2"
    assert str(ipam.allocate(pool, {ipaddress.IPv4Address("10.0.0.2")})) == "10.0.0.3"
    ranged = ipam.make_pool(net("10.0.0.0/24"), ipaddress.IPv4Address("10.0.0.254"),
                            net("10.0.0.128/25"))
    assert str(ipam.allocate(ranged, set())) == "10.0.0.129"
    assert str(ipam.allocate_last(ranged, set())) == "10.0.0.253"
    tiny = ipam.make_pool(net("10.0.0.0/30"), None, None)
    assert str(ipam.allocate(tiny, set())) == "10.0.0.2"
    with pytest.raises(Forbidden, match="no available IPv4 addresses"):
        ipam.allocate(tiny, {ipaddress.IPv4Address("10.0.0.2")})


def test_config_validation_messages() -> None:
    with pytest.raises(InvalidParameter, match="Invalid subnet 10.0.0.0/33 : invalid CIDR"):
        ipam.pool_from_config({"Subnet": "10.0.0.0/33"})
    with pytest.raises(InvalidParameter, match=r"failed to allocate gateway \(10.9.9.9\)"):
        ipam.pool_from_config({"Subnet": "10.0.0.0/24", "Gateway": "10.9.9.9"})
    with pytest.raises(InvalidParameter, match="every ip-range or gateway must have"):
        ipam.pool_from_config({"Gateway": "10.0.0.1"})
    with pytest.raises(InvalidParameter, match="Invalid range 10.1.0.0/25"):
        ipam.pool_from_config({"Subnet": "10.0.0.0/24", "IPRange": "10.1.0.0/25"})
    with pytest.raises(Forbidden, match="Pool overlaps"):
        ipam.check_overlap(net("10.0.0.0/25"), [net("10.0.0.0/24")])
    with pytest.raises(Forbidden, match="Address already in use"):
        ipam.check_static(ipam.make_pool(net("10.0.0.0/24"), None, None),
                          ipaddress.IPv4Address("10.0.0.1"), set())


def test_port_requests_from_bindings_and_publish_all() -> None:
    config: dict[str, Any] = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                           "53/udp": [{"HostPort": "5300-5310"}]},
          "PublishAllPorts": True}
    got = {(r.container_port, r.proto): r for r in ports.requests(config, hc)}
    assert got[(80, "tcp")] == ports.Request(80, "tcp", "127.0.0.1", 8080, 8080)
    assert got[(53, "udp")] == ports.Request(53, "udp", "", 5300, 5310)
    assert got[(9000, "tcp")] == ports.Request(9000, "tcp", "", 0, 0)
    with pytest.raises(InvalidParameter, match="invalid hostPort"):
        ports.requests({}, {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}})
    with pytest.raises(InvalidParameter, match="invalid proto"):
        ports.split_port("80/foo")


def test_api_shapes_of_bindings() -> None:
    b = ports.Binding(80, "tcp", "0.0.0.0", 8080)
    assert b.to_netavark() == {"host_ip": "", "container_port": 80, "host_port": 8080,
                               "range": 1, "protocol": "tcp"}
    assert ports.Binding.from_netavark(b.to_netavark()) == b
    config: dict[str, Any] = {"ExposedPorts": {"80/tcp": {}, "90/tcp": {}}}
    assert ports.inspect_ports(config, [b]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "90/tcp": None}
    assert ports.summary_ports(config, [b]) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 90, "Type": "tcp"}]


def test_mac_follows_the_address() -> None:
    assert mac_for(ipaddress.IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"
