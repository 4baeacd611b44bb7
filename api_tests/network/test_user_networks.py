"""User-defined networks: `docker network` commands, name resolution, connect/disconnect."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from ..conftest import DockerRun
from .conftest import bridge_exists, inspect_ctr, masquerades, wait_in

HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]
Make = Callable[..., dict[str, Any]]


def _net(docker: DockerRun, name: str) -> dict[str, Any]:
    return dict(json.loads(docker("network", "inspect", name).stdout)[0])


def test_create_inspect_ls(pre: Callable[[int], str], docker: DockerRun, network: Make) -> None:
    n = network("--subnet", f"{pre(0)}.0/24", "--gateway", f"{pre(0)}.254",
                "--ip-range", f"{pre(0)}.128/25", "--label", "tier=db",
                "-o", "com.docker.network.bridge.name=dpyt7")
    assert n["Driver"] == "bridge" and n["Scope"] == "local"
    assert n["IPAM"] == {"Driver": "default", "Options": {}, "Config": [
        {"Subnet": f"{pre(0)}.0/24", "IPRange": f"{pre(0)}.128/25",
         "Gateway": f"{pre(0)}.254"}]}
    assert n["Labels"] == {"tier": "db"}
    assert n["Options"] == {"com.docker.network.bridge.name": "dpyt7"}
    assert n["Internal"] is False and n["Containers"] == {}
    assert len(n["Id"]) == 64
    ls = docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout
    assert f"{n['Name']} bridge local" in ls.splitlines()
    for line in ("bridge bridge local", "host host local", "none null local"):
        assert line in ls.splitlines()
    # Filters.
    only = docker("network", "ls", "-q", "--no-trunc", "--filter", "label=tier=db").stdout
    assert n["Id"] in only.split()
    custom = docker("network", "ls", "--format", "{{.Name}}", "--filter", "type=custom").stdout
    assert n["Name"] in custom.split() and "bridge" not in custom.split()
    builtin = docker("network", "ls", "--format", "{{.Name}}", "--filter",
                     "type=builtin").stdout.split()
    assert sorted(builtin) == ["bridge", "host", "none"]
    assert docker("network", "ls", "-q", "--filter", f"name={n['Name']}").stdout.strip() == \
        n["Id"][:12]
    assert docker("network", "ls", "-q", "--filter", "driver=null").stdout.strip() == \
        _net(docker, "none")["Id"][:12]
    # By ID prefix too.
    assert _net(docker, n["Id"][:10])["Name"] == n["Name"]


def test_subnet_chosen_from_the_pools_and_addresses_in_order(
        docker: DockerRun, network: Make, ctr: Callable[..., str]) -> None:
    n = network()
    subnet = ipaddress.ip_network(n["IPAM"]["Config"][0]["Subnet"])
    assert ipaddress.ip_address(n["IPAM"]["Config"][0]["Gateway"]) == subnet.network_address + 1
    a, b = ctr(), ctr()
    docker("run", "-d", "--name", a, "--network", n["Name"], "busybox", "sleep", "60")
    docker("run", "-d", "--name", b, "--network", n["Name"], "busybox", "sleep", "60")
    ips = [inspect_ctr(docker, x)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"]
           for x in (a, b)]
    assert ips == [str(subnet.network_address + 2), str(subnet.network_address + 3)]
    # The default-bridge-only top-level fields stay empty on a user network.
    assert inspect_ctr(docker, a)["NetworkSettings"]["IPAddress"] == ""
    containers = _net(docker, n["Name"])["Containers"]
    assert {v["Name"] for v in containers.values()} == {a, b}
    assert masquerades(str(subnet))


def test_containers_resolve_each_other_by_name_and_alias(docker: DockerRun, network: Make,
                                                         ctr: Callable[..., str]) -> None:
    n = network()
    server, client = ctr(), ctr()
    docker("run", "-d", "--name", server, "--network", n["Name"], "--network-alias", "web",
           "--network-alias", "service.local", *HTTPD)
    docker("run", "-d", "--name", client, "--network", n["Name"], "busybox", "sleep", "60")
    hostname = inspect_ctr(docker, server)["Config"]["Hostname"]
    for target in (server, "web", "service.local", inspect_ctr(docker, server)["Id"][:12]):
        assert wait_in(docker, client, f"http://{target}/hostname").strip() == hostname
    settings = inspect_ctr(docker, server)["NetworkSettings"]["Networks"][n["Name"]]
    assert settings["Aliases"] == ["web", "service.local"]
    assert settings["DNSNames"] == [server, "web", "service.local",
                                    inspect_ctr(docker, server)["Id"][:12]]
    resolv = docker("exec", client, "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {n['IPAM']['Config'][0]['Gateway']}" in resolv.splitlines()
    # An unknown name does not resolve.
    r = docker("exec", client, "nslookup", "no-such-container-here", check=False)
    assert "10." not in r.stdout.split("Name:")[-1] if "Name:" in r.stdout else True


def test_static_ip(pre: Callable[[int], str], docker: DockerRun, network: Make,
                   ctr: Callable[..., str]) -> None:
    n = network("--subnet", f"{pre(1)}.0/24")
    name = ctr()
    docker("run", "-d", "--name", name, "--network", n["Name"], "--ip", f"{pre(1)}.77",
           "busybox", "sleep", "60")
    assert inspect_ctr(docker, name)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"] == \
        f"{pre(1)}.77"
    assert f"{pre(1)}.77/24" in docker("exec", name, "ip", "-o", "-4", "addr").stdout
    other = ctr()
    r = docker("run", "-d", "--name", other, "--network", n["Name"], "--ip", f"{pre(1)}.77",
               "busybox", "sleep", "60", check=False)
    assert r.returncode != 0 and "Address already in use" in r.stderr


def test_internal_network(docker: DockerRun, network: Make, ctr: Callable[..., str]) -> None:
    n = network("--internal")
    assert n["Internal"] is True
    name = ctr()
    docker("run", "-d", "--name", name, "--network", n["Name"], "busybox", "sleep", "60")
    assert "default" not in docker("exec", name, "ip", "route").stdout
    assert not masquerades(n["IPAM"]["Config"][0]["Subnet"])


def test_rm_in_use_then_free(docker: DockerRun, network: Make, ctr: Callable[..., str]) -> None:
    n = network()
    name = ctr()
    docker("run", "-d", "--name", name, "--network", n["Name"], "busybox", "sleep", "60")
    r = docker("network", "rm", n["Name"], check=False)
    assert r.returncode != 0
    cid = inspect_ctr(docker, name)["Id"]
    assert (f'error while removing network: network {n["Name"]} has active endpoints '
            f'(name:"{name}" id:"{cid[:12]}")') in r.stderr
    assert _net(docker, n["Name"])["Id"] == n["Id"]
    docker("rm", "-f", name)
    assert docker("network", "rm", n["Name"]).stdout.strip() == n["Name"]
    assert not bridge_exists(f"br-{n['Id'][:12]}")
    r = docker("network", "inspect", n["Name"], check=False)
    assert r.returncode != 0 and f"network {n['Name']} not found" in r.stderr


def test_predefined_networks_cannot_be_removed(docker: DockerRun) -> None:
    for name in ("bridge", "host", "none"):
        r = docker("network", "rm", name, check=False)
        assert f"{name} is a pre-defined network and cannot be removed" in r.stderr


def test_prune(docker: DockerRun, network: Make, ctr: Callable[..., str]) -> None:
    used, unused, kept = network(), network("--label", "keep=1"), network()
    name = ctr()
    docker("run", "-d", "--name", name, "--network", used["Name"], "busybox", "sleep", "60")
    out = docker("network", "prune", "-f", "--filter", "label!=keep").stdout
    assert unused["Name"] not in out and kept["Name"] in out and used["Name"] not in out
    names = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert used["Name"] in names and unused["Name"] in names and kept["Name"] not in names
    dangling = docker("network", "ls", "--format", "{{.Name}}", "--filter",
                      "dangling=true").stdout.split()
    assert unused["Name"] in dangling and used["Name"] not in dangling


def test_connect_and_disconnect(pre: Callable[[int], str], docker: DockerRun, network: Make,
                                ctr: Callable[..., str]) -> None:
    n = network("--subnet", f"{pre(2)}.0/24")
    server, client = ctr(), ctr()
    docker("run", "-d", "--name", server, "--network", n["Name"], *HTTPD)
    docker("run", "-d", "--name", client, "busybox", "sleep", "120")
    server_ip = inspect_ctr(docker, server)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"]
    # The default bridge does not reach the user network.
    r = docker("exec", client, "timeout", "3", "wget", "-qO-", f"http://{server_ip}/hostname",
               check=False)
    assert r.returncode != 0
    docker("network", "connect", "--alias", "cli", "--ip", f"{pre(2)}.50", n["Name"], client)
    settings = inspect_ctr(docker, client)["NetworkSettings"]["Networks"]
    assert set(settings) == {"bridge", n["Name"]}
    assert settings[n["Name"]]["IPAddress"] == f"{pre(2)}.50"
    assert settings[n["Name"]]["Aliases"] == ["cli"]
    assert f"{pre(2)}.50/24" in docker("exec", client, "ip", "-o", "-4", "addr").stdout
    hostname = inspect_ctr(docker, server)["Config"]["Hostname"]
    assert wait_in(docker, client, f"http://{server_ip}/hostname").strip() == hostname
    # The server finds the client by its alias on that network.
    out = docker("exec", server, "nslookup", "cli").stdout
    assert f"{pre(2)}.50" in out
    r = docker("network", "connect", n["Name"], client, check=False)
    assert f"endpoint with name {client} already exists in network {n['Name']}" in r.stderr
    docker("network", "disconnect", n["Name"], client)
    assert set(inspect_ctr(docker, client)["NetworkSettings"]["Networks"]) == {"bridge"}
    assert f"{pre(2)}.50" not in docker("exec", client, "ip", "-o", "-4", "addr").stdout
    r = docker("exec", client, "timeout", "3", "wget", "-qO-", f"http://{server_ip}/hostname",
               check=False)
    assert r.returncode != 0  # disconnect really cuts traffic
    r = docker("network", "disconnect", n["Name"], client, check=False)
    assert f"is not connected to the network {n['Name']}" in r.stderr


def test_connect_a_stopped_container_applies_at_start(docker: DockerRun, network: Make,
                                                      ctr: Callable[..., str]) -> None:
    n = network()
    name = ctr()
    docker("create", "--name", name, "busybox", "sleep", "60")
    docker("network", "connect", n["Name"], name)
    assert _net(docker, n["Name"])["Containers"] == {}  # no endpoint until it runs
    docker("start", name)
    nets = inspect_ctr(docker, name)["NetworkSettings"]["Networks"]
    assert nets["bridge"]["IPAddress"] and nets[n["Name"]]["IPAddress"]
    out = docker("exec", name, "ip", "-o", "-4", "addr").stdout
    assert "eth0" in out and "eth1" in out


def test_network_events(docker: DockerRun, network: Make, ctr: Callable[..., str],
                        unique_name: Callable[..., str]) -> None:
    since = docker("version", "-f", "{{.Server.Version}}") and \
        json.loads(docker("system", "info", "--format", "{{json .SystemTime}}").stdout)
    n = network()
    name = ctr()
    docker("create", "--name", name, "busybox", "true")
    docker("network", "connect", n["Name"], name)
    docker("network", "disconnect", n["Name"], name)
    docker("network", "rm", n["Name"])
    until = json.loads(docker("system", "info", "--format", "{{json .SystemTime}}").stdout)
    out = docker("events", "--since", since, "--until", until, "--filter", "type=network",
                 "--format", "{{.Action}} {{.Actor.Attributes.name}}").stdout.splitlines()
    assert [ln for ln in out if ln.endswith(n["Name"])] == [
        f"create {n['Name']}", f"connect {n['Name']}", f"disconnect {n['Name']}",
        f"destroy {n['Name']}"]
