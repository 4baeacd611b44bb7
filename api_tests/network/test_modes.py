"""Network modes other than bridges (none, host, container:), and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

from ..conftest import DockerRun
from .conftest import inspect_ctr, wait_http

Make = Callable[..., dict[str, Any]]


def _interfaces(text: str) -> list[str]:
    """Interface names from `ip -o link` output."""
    return sorted(line.split(":")[1].strip().split("@")[0] for line in text.splitlines()
                  if line.strip())


def test_none_has_only_loopback(docker: DockerRun, ctr: Callable[..., str]) -> None:
    out = docker("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert _interfaces(out) == ["lo"]
    name = ctr()
    docker("run", "-d", "--name", name, "--network", "none", "busybox", "sleep", "60")
    nets = inspect_ctr(docker, name)["NetworkSettings"]["Networks"]
    assert list(nets) == ["none"] and nets["none"]["IPAddress"] == ""
    assert nets["none"]["NetworkID"] == json.loads(
        docker("network", "inspect", "none").stdout)[0]["Id"]


def test_host_sees_the_hosts_interfaces(docker: DockerRun, ctr: Callable[..., str]) -> None:
    def host() -> set[str]:
        out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        return set(_interfaces(out))

    before = host()
    out = docker("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link").stdout
    # Interfaces of other programs come and go: those there before and after must be seen.
    stable = {i for i in before & host() if not i.startswith(("veth", "br-", "dpy"))}
    assert stable <= set(_interfaces(out))
    assert docker("run", "--rm", "--network", "host", "busybox",
                  "hostname").stdout.strip() == os.uname().nodename
    name = ctr()
    docker("run", "-d", "--name", name, "--network", "host", "busybox", "sleep", "60")
    assert list(inspect_ctr(docker, name)["NetworkSettings"]["Networks"]) == ["host"]


def test_container_mode_shares_the_namespace(docker: DockerRun, ctr: Callable[..., str]) -> None:
    first = ctr()
    docker("run", "-d", "--name", first, "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc")
    ip = inspect_ctr(docker, first)["NetworkSettings"]["IPAddress"]
    out = docker("run", "--rm", "--network", f"container:{first}", "busybox", "ip", "-o",
                 "-4", "addr").stdout
    assert f"{ip}/" in out
    # Same namespace: the first container's server answers on the joiner's loopback.
    body = docker("run", "--rm", "--network", f"container:{first}", "busybox", "sh", "-c",
                  "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/hostname && exit; "
                  "sleep 0.1; done; exit 1").stdout
    assert body.strip() == inspect_ctr(docker, first)["Config"]["Hostname"]
    joiner = ctr()
    docker("create", "--name", joiner, "--network", f"container:{first}", "busybox", "true")
    assert inspect_ctr(docker, joiner)["HostConfig"]["NetworkMode"] == f"container:{first}"
    docker("stop", "-t", "0", first)
    r = docker("start", joiner, check=False)
    assert r.returncode != 0 and "cannot join network of a non running container" in r.stderr


def test_unknown_network_fails_the_start(docker: DockerRun, ctr: Callable[..., str]) -> None:
    name = ctr()
    r = docker("run", "--name", name, "--network", "no-such-network-here", "busybox", "true",
               check=False)
    assert r.returncode != 0 and "network no-such-network-here not found" in r.stderr
    assert "Unable to find image" not in r.stderr


def test_bad_network_input(pre: Callable[[int], str], docker: DockerRun, network: Make,
                           unique_name: Callable[..., str]) -> None:
    n = network("--subnet", f"{pre(3)}.0/24")
    before = docker("network", "ls", "-q").stdout.split()

    def fails(*args: str) -> str:
        r = docker("network", "create", *args, unique_name("bad"), check=False)
        assert r.returncode != 0, args
        return r.stderr

    assert "Pool overlaps with other one on this address space" in fails(
        "--subnet", f"{pre(3)}.128/25")
    assert "invalid CIDR address: 10.250.300.0/24" in fails("--subnet", "10.250.300.0/24")
    assert f"invalid CIDR address: {pre(4)}.0/33" in fails("--subnet", f"{pre(4)}.0/33")
    assert "no matching subnet for gateway 10.250.99.1" in fails(  # the CLI's own check
        "--subnet", f"{pre(5)}.0/24", "--gateway", "10.250.99.1")
    assert 'plugin "nosuchdriver" not found' in fails("-d", "nosuchdriver")
    r = docker("network", "create", n["Name"], check=False)
    assert f"network with name {n['Name']} already exists" in r.stderr
    r = docker("network", "create", "bridge", check=False)  # dockerd 20.10's words
    assert "operation is not permitted on predefined bridge network" in r.stderr
    assert docker("network", "ls", "-q").stdout.split() == before  # nothing half-made


def test_bad_container_network_input(docker: DockerRun, network: Make,
                                     ctr: Callable[..., str]) -> None:
    n = network()  # no --subnet: addresses are the daemon's to choose
    cases = [
        (["--ip", "10.1.2.3"], "user specified IP address is supported on user defined "
                               "networks only"),
        (["--network", n["Name"], "--ip", "10.1.2.3"],
         "user specified IP address is supported only when connecting to networks with user "
         "configured subnets"),
    ]
    for args, message in cases:
        r = docker("run", "--rm", "--name", ctr(), *args, "busybox", "true", check=False)
        assert r.returncode != 0 and message in r.stderr, (args, r.stderr)
    assert json.loads(docker("network", "inspect", n["Name"]).stdout)[0]["Containers"] == {}


def test_failed_start_leaves_no_endpoint(pre: Callable[[int], str], docker: DockerRun,
                                         network: Make, ctr: Callable[..., str],
                                         daemon: Any) -> None:
    n = network("--subnet", f"{pre(6)}.0/24")
    first, second = ctr(), ctr()
    docker("run", "-d", "--name", first, "--network", n["Name"], "--ip", f"{pre(6)}.9",
           "busybox", "sleep", "60")
    r = docker("run", "-d", "--name", second, "--network", n["Name"], "--ip", f"{pre(6)}.9",
               "busybox", "sleep", "60", check=False)
    assert r.returncode != 0
    cid = inspect_ctr(docker, second)["Id"]
    assert not (daemon.exec_root / "netns" / cid).exists()
    attached = json.loads(docker("network", "inspect", n["Name"]).stdout)[0]["Containers"]
    assert [v["Name"] for v in attached.values()] == [first]
    # Once the address is free the same container starts.
    docker("rm", "-f", first)
    docker("start", second)
    assert inspect_ctr(docker, second)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"] == \
        f"{pre(6)}.9"


def test_dockerpy_networks(dockerpy: Any, network: Make, ctr: Callable[..., str],
                           busybox_image: str) -> None:
    n = network()
    net = dockerpy.networks.get(n["Id"])
    assert net.name == n["Name"]
    c = dockerpy.containers.run(busybox_image, ["httpd", "-f", "-p", "80", "-h", "/etc"],
                                name=ctr(), detach=True, ports={"80/tcp": ("127.0.0.1", None)})
    c.reload()
    port = int(c.ports["80/tcp"][0]["HostPort"])
    assert wait_http("127.0.0.1", port).strip() == c.attrs["Config"]["Hostname"]
    net.connect(c, aliases=["py"])
    net.reload()
    assert [x.id for x in net.containers] == [c.id]
    net.disconnect(c)
    net.reload()
    assert net.containers == []
    assert n["Name"] in [x.name for x in dockerpy.networks.list(names=[n["Name"]])]
