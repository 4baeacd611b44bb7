"""Networking fixtures: networks removed after the test, and a check that what they set
up on the host (bridges, NAT rules) is gone with them.

Traffic goes only to 127.0.0.1, the host's own address for published ports, and the
test's own containers.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..conftest import DockerRun

READY_TIMEOUT = 20.0


def inspect_ctr(docker: DockerRun, name: str) -> dict[str, Any]:
    return dict(json.loads(docker("inspect", name).stdout)[0])


def free_port() -> int:
    """A TCP port free on all of the host's addresses right now."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def http_get(host: str, port: int, path: str = "/hostname", timeout: float = 5.0) -> str:
    """A plain HTTP/1.0 GET from the host; the body, or raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0] + b" ":
        raise OSError(f"unexpected answer: {head[:80]!r}")
    return body.decode()


def wait_http(host: str, port: int, path: str = "/hostname") -> str:
    """Poll until the server answers (httpd in a container takes a moment to listen)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            return http_get(host, port, path)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_in(docker: DockerRun, container: str, url: str) -> str:
    """wget from inside a container until it answers; its output."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        # busybox's own -T crashes the static build: timeout(1) bounds it instead
        r = docker("exec", container, "timeout", "5", "wget", "-qO-", url, check=False)
        if r.returncode == 0:
            return r.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} from {container}: {r.stderr}")
        time.sleep(0.1)


def host_address() -> str:
    """The host's own non-loopback IPv4 address (published ports answer there too)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"],
                         capture_output=True, text=True).stdout
    for line in out.split("\n"):
        fields = line.split()
        if len(fields) > 3 and not fields[1].startswith(("dpy", "br-", "docker", "veth")):
            return fields[3].split("/")[0]
    pytest.skip("the host has no global IPv4 address")


def bridge_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def nat_rules_for(subnet: str) -> list[str]:
    tool = "ip6tables-save" if ":" in subnet else "iptables-save"
    rules = subprocess.run([tool, "-t", "nat"], capture_output=True, text=True).stdout
    return [ln for ln in rules.splitlines() if f" {subnet} " in ln + " "]


def netavark_chains(network_id: str) -> list[str]:
    """netavark's chains for a network (named after a hash of its name: our network ID)."""
    tag = hashlib.sha512(network_id.encode()).hexdigest()[:13].upper()
    rules = "".join(subprocess.run([tool], capture_output=True, text=True).stdout
                    for tool in ("iptables-save", "ip6tables-save"))
    return [ln for ln in rules.splitlines()
            if f"NETAVARK-{tag} " in ln + " " or f"NETAVARK-DN-{tag} " in ln + " "]


def masquerades(subnet: str) -> bool:
    """Outbound NAT: POSTROUTING sends the subnet's traffic to a chain that masquerades."""
    rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
    chains = [ln.split(" -j ")[-1].split()[0] for ln in rules.splitlines()
              if ln.startswith("-A POSTROUTING") and f"-s {subnet} " in ln]
    return any(ln.startswith(f"-A {chain} ") and "MASQUERADE" in ln
               for chain in chains for ln in rules.splitlines())


@pytest.fixture(scope="session")
def pre(daemon: Any) -> Callable[[int], str]:
    """pre(k) -> "100.A.B": the first three octets of the session's k-th /24 (k < 16) for
    tests that choose their subnets, distinct per session so that concurrent sessions on
    this host never make two bridges with the same subnet."""
    h = int(uuid.uuid5(uuid.NAMESPACE_URL, f"{daemon.tmp}/subnets").hex[:8], 16)
    a, b = 64 + h % 64, (h >> 6) % 16 * 16

    def make(k: int) -> str:
        assert 0 <= k < 16
        return f"100.{a}.{b + k}"

    return make


@pytest.fixture
def network(docker: DockerRun, unique_name: Callable[..., str]
            ) -> Iterator[Callable[..., dict[str, Any]]]:
    """make(*create_args) -> the inspected network; removed after the test, and its bridge
    and NAT rules checked gone."""
    made: list[dict[str, Any]] = []

    def make(*args: str, name: str | None = None) -> dict[str, Any]:
        name = name or unique_name("n")
        docker("network", "create", *args, name)
        made.append(json.loads(docker("network", "inspect", name).stdout)[0])
        return made[-1]

    yield make
    for n in made:
        r = docker("network", "inspect", "-f", "{{json .Containers}}", n["Id"], check=False)
        attached = list(json.loads(r.stdout or "{}") or {}) if r.returncode == 0 else []
        if attached:  # the test's containers, torn down after this fixture otherwise
            docker("rm", "-f", *attached, check=False)
        docker("network", "rm", n["Id"], check=False)
    leaks = []
    for n in made:
        bridge = n["Options"].get("com.docker.network.bridge.name") or f"br-{n['Id'][:12]}"
        if bridge_exists(bridge):
            leaks.append(bridge)
        for cfg in n["IPAM"]["Config"]:
            leaks += nat_rules_for(cfg["Subnet"])
        leaks += netavark_chains(n["Id"])
    assert not leaks, f"left behind: {leaks}"


@pytest.fixture
def default_bridge(docker: DockerRun) -> dict[str, Any]:
    return dict(json.loads(docker("network", "inspect", "bridge").stdout)[0])
