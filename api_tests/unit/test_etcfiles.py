"""resolv.conf for containers, from the host's, as dockerd writes it."""

from __future__ import annotations

from dockerd_py.engine.containers.etcfiles import FALLBACK_NAMESERVERS, resolv_conf

HOST = ["# generated", "nameserver 127.0.0.53", "nameserver 10.0.0.2", "nameserver fd00::1",
        "search example.test", "options ndots:2"]


def test_private_network_drops_loopback_and_ipv6_resolvers() -> None:
    assert resolv_conf({}, False, host_lines=HOST) == (
        "nameserver 10.0.0.2\nsearch example.test\noptions ndots:2\n")


def test_host_network_keeps_the_hosts_resolvers() -> None:
    assert resolv_conf({}, True, host_lines=HOST).startswith(
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fd00::1\n")


def test_only_loopback_resolvers_fall_back_to_dockerds_servers() -> None:
    out = resolv_conf({}, False, host_lines=["nameserver 127.0.0.53", "nameserver ::1"])
    assert out == "".join(f"nameserver {s}\n" for s in FALLBACK_NAMESERVERS)


def test_flags_override_the_host() -> None:
    hc = {"Dns": ["192.0.2.1"], "DnsSearch": ["a.test"], "DnsOptions": ["rotate"]}
    assert resolv_conf(hc, False, host_lines=HOST) == (
        "nameserver 192.0.2.1\nsearch a.test\noptions rotate\n")


def test_a_networks_own_resolver_replaces_the_hosts() -> None:
    out = resolv_conf({}, False, nameservers=["172.18.0.1"], host_lines=HOST)
    assert out.splitlines()[0] == "nameserver 172.18.0.1"
    assert "10.0.0.2" not in out
