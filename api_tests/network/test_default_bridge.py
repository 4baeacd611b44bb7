"""The default bridge network and published ports, through the docker CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from ..conftest import DockerRun
from .conftest import (
    free_port,
    host_address,
    http_get,
    inspect_ctr,
    masquerades,
    wait_http,
    wait_in,
)

HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]


def test_default_bridge_gives_an_address_on_its_subnet(docker: DockerRun, ctr: Callable[..., str],
                                                       default_bridge: dict[str, Any]) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    settings = inspect_ctr(docker, name)["NetworkSettings"]
    subnet = ipaddress.ip_network(default_bridge["IPAM"]["Config"][0]["Subnet"])
    gateway = default_bridge["IPAM"]["Config"][0]["Gateway"]
    bridge = settings["Networks"]["bridge"]
    assert ipaddress.ip_address(bridge["IPAddress"]) in subnet
    assert bridge["Gateway"] == gateway == settings["Gateway"]
    assert bridge["IPPrefixLen"] == subnet.prefixlen
    assert bridge["NetworkID"] == default_bridge["Id"]
    assert settings["IPAddress"] == bridge["IPAddress"]
    assert bridge["MacAddress"] and bridge["EndpointID"]
    out = docker("exec", name, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    assert f"{bridge['IPAddress']}/{subnet.prefixlen}" in out
    route = docker("exec", name, "ip", "route").stdout
    assert f"default via {gateway}" in route
    # The network lists the container while it runs; outbound NAT is in place.
    attached = _inspect_network(docker, "bridge")["Containers"]
    assert attached[inspect_ctr(docker, name)["Id"]]["IPv4Address"] == \
        f"{bridge['IPAddress']}/{subnet.prefixlen}"
    assert masquerades(str(subnet))


def _inspect_network(docker: DockerRun, name: str) -> dict[str, Any]:
    return dict(json.loads(docker("network", "inspect", name).stdout)[0])


def test_stopped_container_gives_its_address_back(docker: DockerRun,
                                                  ctr: Callable[..., str]) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    cid = inspect_ctr(docker, name)["Id"]
    docker("stop", "-t", "0", name)
    settings = inspect_ctr(docker, name)["NetworkSettings"]
    assert settings["Networks"]["bridge"]["IPAddress"] == ""
    assert settings["IPAddress"] == "" and settings["Ports"] == {}
    assert cid not in _inspect_network(docker, "bridge")["Containers"]
    docker("start", name)
    assert inspect_ctr(docker, name)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def test_default_bridge_has_no_name_resolution_but_links_work(docker: DockerRun,
                                                              ctr: Callable[..., str]) -> None:
    server, client = ctr(), ctr()
    docker("run", "-d", "--name", server, *HTTPD)
    r = docker("run", "--rm", "busybox", "nslookup", server, check=False)
    assert r.returncode != 0
    docker("run", "-d", "--name", client, "--link", f"{server}:web", "busybox", "sleep", "60")
    hosts = docker("exec", client, "cat", "/etc/hosts").stdout
    ip = inspect_ctr(docker, server)["NetworkSettings"]["IPAddress"]
    assert any(line.split()[:2] == [ip, "web"] for line in hosts.splitlines())
    assert wait_in(docker, client, "http://web/hostname").strip() == \
        inspect_ctr(docker, server)["Config"]["Hostname"]


def test_resolv_conf_and_dns_options(docker: DockerRun) -> None:
    out = docker("run", "--rm", "--dns", "10.0.0.53", "--dns-search", "example.test",
                 "--dns-option", "ndots:2", "busybox", "cat", "/etc/resolv.conf").stdout
    assert out.splitlines() == ["nameserver 10.0.0.53", "search example.test",
                                "options ndots:2"]


def test_add_host_and_hostname(docker: DockerRun, default_bridge: dict[str, Any]) -> None:
    out = docker("run", "--rm", "--hostname", "myhost", "--add-host", "db.test:10.1.2.3",
                 "--add-host", "gw.test:host-gateway", "busybox", "sh", "-c",
                 "hostname; cat /etc/hosts").stdout
    lines = out.splitlines()
    assert lines[0] == "myhost"
    assert "10.1.2.3\tdb.test" in lines
    assert f"{default_bridge['IPAM']['Config'][0]['Gateway']}\tgw.test" in lines
    assert any(ln.endswith("\tmyhost") and not ln.startswith("127.") for ln in lines)


def test_mac_address(docker: DockerRun, ctr: Callable[..., str]) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "--mac-address", "02:42:ac:11:ff:01", "busybox",
           "sleep", "60")
    out = docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip()
    assert out == "02:42:ac:11:ff:01"
    assert inspect_ctr(docker, name)["NetworkSettings"]["MacAddress"] == "02:42:ac:11:ff:01"


# -- published ports ------------------------------------------------------------------------

def test_published_port_answers_on_loopback_and_host_address(docker: DockerRun,
                                                             ctr: Callable[..., str]) -> None:
    name, port = ctr(), free_port()
    docker("run", "-d", "--name", name, "-p", f"{port}:80", *HTTPD)
    hostname = inspect_ctr(docker, name)["Config"]["Hostname"]
    assert wait_http("127.0.0.1", port).strip() == hostname
    assert http_get(host_address(), port).strip() == hostname
    # From another container, through the host's address.
    other = ctr()
    docker("run", "-d", "--name", other, "busybox", "sleep", "60")
    assert wait_in(docker, other, f"http://{host_address()}:{port}/hostname").strip() == hostname
    assert docker("port", name).stdout.splitlines() == [f"80/tcp -> 0.0.0.0:{port}"]
    assert docker("port", name, "80").stdout.strip() == f"0.0.0.0:{port}"
    ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout.strip()
    assert ps == f"0.0.0.0:{port}->80/tcp"


def test_port_is_unpublished_when_the_container_stops(docker: DockerRun,
                                                      ctr: Callable[..., str]) -> None:
    name, port = ctr(), free_port()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", *HTTPD)
    wait_http("127.0.0.1", port)
    docker("rm", "-f", name)
    with pytest.raises(OSError):
        http_get("127.0.0.1", port, timeout=2)
    # The port is free again for the next container.
    again = ctr()
    docker("run", "-d", "--name", again, "-p", f"127.0.0.1:{port}:80", *HTTPD)
    wait_http("127.0.0.1", port)


def test_publish_variants_and_docker_port(docker: DockerRun, ctr: Callable[..., str]) -> None:
    name = ctr()
    tcp, udp, low = free_port(), free_port(), free_port()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{tcp}:80", "-p", f"{udp}:53/udp",
           "-p", "81", "--expose", "90", *HTTPD)
    ports = inspect_ctr(docker, name)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(tcp)}]
    assert ports["53/udp"] == [{"HostIp": "0.0.0.0", "HostPort": str(udp)}]
    assert ports["90/tcp"] is None
    random_port = int(ports["81/tcp"][0]["HostPort"])
    assert random_port > 1024
    lines = set(docker("port", name).stdout.splitlines())
    assert lines == {f"80/tcp -> 127.0.0.1:{tcp}", f"53/udp -> 0.0.0.0:{udp}",
                     f"81/tcp -> 0.0.0.0:{random_port}"}
    assert wait_http("127.0.0.1", tcp)
    ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout.strip()
    for part in (f"127.0.0.1:{tcp}->80/tcp", f"0.0.0.0:{udp}->53/udp",
                 f"0.0.0.0:{random_port}->81/tcp", "90/tcp"):
        assert part in ps
    assert docker("ps", "-q", "--filter", f"publish={tcp}").stdout.strip() == \
        inspect_ctr(docker, name)["Id"][:12]
    assert docker("ps", "-q", "--filter", "expose=90").stdout.strip() == \
        inspect_ctr(docker, name)["Id"][:12]
    del low


_UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
data, peer = s.recvfrom(100)
s.sendto(b"echo:" + data, peer)
"""


def test_udp_port_reaches_the_container(docker: DockerRun, ctr: Callable[..., str]) -> None:
    """busybox has no UDP server: a Python one runs on the host inside the container's
    network namespace (the SandboxKey)."""
    name, port = ctr(), free_port()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9999/udp", "busybox",
           "sleep", "60")
    netns = inspect_ctr(docker, name)["NetworkSettings"]["SandboxKey"]
    server = subprocess.Popen(["nsenter", f"--net={netns}", sys.executable, "-c", _UDP_ECHO],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(10)
            s.sendto(b"ping", ("127.0.0.1", port))
            assert s.recvfrom(100)[0] == b"echo:ping"
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()


def test_publish_all_and_port_ranges(docker: DockerRun, ctr: Callable[..., str]) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "-P", "--expose", "7001-7002", *HTTPD)
    ports = inspect_ctr(docker, name)["NetworkSettings"]["Ports"]
    assert set(ports) == {"7001/tcp", "7002/tcp"}
    assert all(v and int(v[0]["HostPort"]) > 1024 for v in ports.values())
    ranged = ctr()
    first = free_port()
    r = docker("run", "-d", "--name", ranged, "-p", f"127.0.0.1:{first}-{first + 1}:80-81",
               *HTTPD, check=False)
    if r.returncode != 0 and "already" in r.stderr:
        pytest.skip(f"port {first + 1} is in use on this host")
    assert r.returncode == 0, r.stderr
    ports = inspect_ctr(docker, ranged)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(first)}]
    assert ports["81/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(first + 1)}]
    assert wait_http("127.0.0.1", first)


def test_port_already_allocated(docker: DockerRun, ctr: Callable[..., str],
                                default_bridge: dict[str, Any]) -> None:
    first, second, port = ctr(), ctr(), free_port()
    docker("run", "-d", "--name", first, "-p", f"{port}:80", *HTTPD)
    before = set(_inspect_network(docker, "bridge")["Containers"])
    r = docker("run", "-d", "--name", second, "-p", f"{port}:80", *HTTPD, check=False)
    assert r.returncode != 0
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in r.stderr
    assert "driver failed programming external connectivity on endpoint " + second in r.stderr
    # Nothing half-configured: no endpoint, address or namespace for the failed container.
    state = inspect_ctr(docker, second)
    assert state["State"]["Status"] == "created"
    assert state["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    assert set(_inspect_network(docker, "bridge")["Containers"]) == before
    # The first one still answers.
    assert wait_http("127.0.0.1", port)


def test_port_held_by_another_process(docker: DockerRun, ctr: Callable[..., str]) -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = docker("run", "--rm", "-p", f"{port}:80", "busybox", "true", check=False)
    assert r.returncode != 0
    assert f"0.0.0.0:{port}: bind: address already in use" in r.stderr


def test_namespace_and_interface_go_away_with_the_container(
        docker: DockerRun, ctr: Callable[..., str], default_bridge: dict[str, Any],
        daemon: Any) -> None:
    """The default bridge itself stays up while the daemon runs, as docker0 does; the
    session's teardown checks that it goes with the daemon."""
    name = ctr()
    docker("run", "-d", "--name", name, "busybox", "sleep", "60")
    cid = inspect_ctr(docker, name)["Id"]
    netns = daemon.exec_root / "netns" / cid
    assert netns.exists()
    assert inspect_ctr(docker, name)["NetworkSettings"]["SandboxKey"] == str(netns)
    bridge = default_bridge["Options"]["com.docker.network.bridge.name"]
    ports = set(os.listdir(f"/sys/class/net/{bridge}/brif"))
    docker("rm", "-f", name)
    # The interface is deleted just behind the removal (deleting a veth waits on the
    # kernel); it is gone within moments, the namespace with it.
    deadline = time.monotonic() + 10
    while netns.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not netns.exists()
    left = set(os.listdir(f"/sys/class/net/{bridge}/brif"))
    assert not left - ports and len(ports - left) == 1


def test_bridge_deleted_under_the_daemon_comes_back(docker: DockerRun, ctr: Callable[..., str],
                                                    default_bridge: dict[str, Any]) -> None:
    """Another daemon configured with the same bridge name may delete it: the next
    container sets it up again instead of failing on a missing bridge."""
    first = ctr()
    docker("run", "-d", "--name", first, "busybox", "sleep", "60")
    docker("rm", "-f", first)
    bridge = default_bridge["Options"]["com.docker.network.bridge.name"]
    subprocess.run(["ip", "link", "del", bridge], check=True)
    name, port = ctr(), free_port()
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", *HTTPD)
    assert os.path.exists(f"/sys/class/net/{bridge}")
    assert wait_http("127.0.0.1", port).strip() == inspect_ctr(docker, name)["Config"]["Hostname"]
    plain = ctr()
    docker("run", "-d", "--name", plain, "busybox", "sleep", "60")
    server_ip = inspect_ctr(docker, name)["NetworkSettings"]["IPAddress"]
    assert wait_in(docker, plain, f"http://{server_ip}/hostname").strip() == \
        inspect_ctr(docker, name)["Config"]["Hostname"]
