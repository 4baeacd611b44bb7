"""Beside Docker's dockerd: it starts first with its own networking (docker0,
172.17.0.0/16, its DOCKER chains), then a daemon of ours with no bridge configured. Ours
takes a bridge and a subnet of its own, says so, and when it stops leaves dockerd's
bridge, addresses and firewall rules as they were, with dockerd's container reachable.

Traffic goes only from the host to the two test containers' addresses. The test's dockerd
is stopped and what it leaves behind (docker0, its chains) removed after the test; the
test is skipped when another Docker daemon already has them.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI, Daemon, _ping, network_leftovers
from ..lifetime import die_with_test_run
from ..test_reference_interop import REFERENCE_DOCKERD, Reference
from .conftest import wait_http

DOCKER_CHAINS = ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1",
                 "DOCKER-ISOLATION-STAGE-2")


class NetworkedReference(Reference):
    """The reference dockerd with its normal networking: docker0 and iptables."""

    def start(self) -> str | None:
        argv = [REFERENCE_DOCKERD, "-H", f"unix://{self.sock}", "--data-root", str(self.root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.tmp / "dockerd.pid"),
                "--config-file", str(self.tmp / "daemon.json"), "--storage-driver", "overlay2",
                "--log-level", "warn"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=die_with_test_run)
        deadline = time.monotonic() + 40
        while not _ping(self.sock):
            if self.proc.poll() is not None:
                return f"reference dockerd exited with {self.proc.returncode}:\n{self.log_tail()}"
            if time.monotonic() > deadline:
                return "reference dockerd did not answer within 40s"
            time.sleep(0.1)
        return None


def _docker_rules() -> list[str]:
    """dockerd's firewall rules: its chains and the rules that name docker0 or its subnet."""
    out = []
    for table in ("filter", "nat"):
        text = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                              text=True).stdout
        for line in text.splitlines():
            if line.startswith(("-A ", ":")) and (
                    any(c in line.replace(":", " ").split() for c in DOCKER_CHAINS)
                    or "docker0" in line.split() or "172.17.0.0/16" in line.split()):
                out.append(f"{table}: {line}")
    return sorted(out)


def _firewall() -> set[str]:
    """Every rule now, as network_leftovers names them."""
    rules = "".join(subprocess.run([tool], capture_output=True, text=True).stdout
                    for tool in ("iptables-save", "ip6tables-save"))
    return {f"firewall rule: {line}" for line in rules.splitlines()}


def _remove_docker_leftovers() -> None:
    """What the test's dockerd leaves on the host when it stops: docker0 and its chains."""
    for table in ("filter", "nat"):
        text = subprocess.run(["iptables-save", "-t", table], capture_output=True,
                              text=True).stdout
        for line in text.splitlines():
            if not line.startswith("-A "):
                continue
            words = shlex.split(line)
            if words[1] in DOCKER_CHAINS:
                continue  # flushed below
            if "docker0" in words or words[-1] in DOCKER_CHAINS:
                subprocess.run(["iptables", "-w", "-t", table, "-D", *words[1:]],
                               capture_output=True)
        for chain in DOCKER_CHAINS:
            if subprocess.run(["iptables", "-w", "-t", table, "-F", chain],
                              capture_output=True).returncode == 0:
                subprocess.run(["iptables", "-w", "-t", table, "-X", chain], capture_output=True)
    subprocess.run(["ip", "link", "del", "docker0"], capture_output=True)


def _bridge_state(name: str) -> dict[str, Any]:
    link = json.loads(subprocess.run(["ip", "-j", "-d", "link", "show", "dev", name],
                                     capture_output=True, text=True, check=True).stdout)[0]
    addrs = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", name],
                                      capture_output=True, text=True, check=True).stdout)[0]
    return {"mac": link["address"], "mtu": link["mtu"], "alias": link.get("ifalias"),
            "addresses": sorted(f"{a['local']}/{a['prefixlen']}"
                                for a in addrs.get("addr_info", []))}


@pytest.fixture
def dockerd(busybox_tar: Path) -> Iterator[Reference]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    assert os.path.exists(REFERENCE_DOCKERD), "make test installs docker.io: Docker's dockerd"
    chains = subprocess.run(["iptables", "-w", "-S", "DOCKER"], capture_output=True)
    if os.path.exists("/sys/class/net/docker0") or chains.returncode == 0:
        pytest.skip("another Docker daemon has docker0 or its chains on this host")
    ref = NetworkedReference(Path(tempfile.mkdtemp(prefix="dpyco-ref-", dir="/tmp")))
    try:
        problem = ref.start()
        if problem:
            pytest.fail(problem)
        ref.run("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        yield ref
    finally:
        if ref.proc is not None and ref.proc.poll() is None:
            ids = ref.run("ps", "-aq", check=False).stdout.split()
            if ids:
                ref.run("rm", "-f", *ids, check=False)
        ref.stop()
        _remove_docker_leftovers()


@pytest.fixture
def ours(busybox_tar: Path) -> Iterator[Daemon]:
    """A daemon of ours with nothing configured about networking (docker0 by default)."""
    tmp = Path(tempfile.mkdtemp(prefix="dpyco-", dir="/tmp"))
    (tmp / "daemon.json").write_text("{}\n")
    d = Daemon(tmp)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None and d.proc.poll() is None:
            _cli(d, "rm", "-f", *_cli(d, "ps", "-aq").stdout.split(), check=False)
        d.stop(signal.SIGTERM)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def _cli(d: Daemon, *args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([DOCKER_CLI, *map(str, args)], env=d.cli_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 or not check, f"{args}: {r.stderr}\n{d.log_tail()}"
    return r


HTTPD = ("busybox", "httpd", "-f", "-p", "80", "-h", "/etc")


def test_beside_dockerd_our_own_bridge_and_theirs_untouched(dockerd: Reference,
                                                              ours: Daemon,
                                                              busybox_tar: Path) -> None:
    theirs_net = json.loads(dockerd.run("network", "inspect", "bridge").stdout)[0]
    their_subnet = theirs_net["IPAM"]["Config"][0]["Subnet"]
    dockerd.run("run", "-d", "--name", "theirs", *HTTPD)
    their_ip = json.loads(dockerd.run("inspect", "theirs").stdout)[0][
        "NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    their_hostname = wait_http(their_ip, 80)
    before = (_bridge_state("docker0"), _docker_rules())

    # Ours: a bridge and a subnet of its own, and it says so.
    _cli(ours, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    net = json.loads(_cli(ours, "network", "inspect", "bridge").stdout)[0]
    our_bridge = net["Options"]["com.docker.network.bridge.name"]
    assert our_bridge != "docker0"
    assert "docker0" in net["Labels"]["com.dockerd-py.bridge.note"]
    our_subnet = ipaddress.ip_network(net["IPAM"]["Config"][0]["Subnet"])
    assert not our_subnet.overlaps(ipaddress.ip_network(their_subnet))
    assert "docker0 exists and is not this daemon's" in ours.log_path.read_text()
    # Nothing set up yet: what matches later and is there now is someone else's (stale
    # rules of the same subnet).
    others = _firewall()
    _cli(ours, "run", "-d", "--name", "mine", *HTTPD)
    mine = json.loads(_cli(ours, "inspect", "mine").stdout)[0]
    my_ip = mine["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert ipaddress.ip_address(my_ip) in our_subnet
    assert wait_http(my_ip, 80).strip() == mine["Config"]["Hostname"]
    assert (_bridge_state("docker0"), _docker_rules()) == before

    # Ours stops: everything of its own goes, dockerd's stays as it was and still serves.
    _cli(ours, "rm", "-f", "mine")
    assert ours.stop()
    assert not set(network_leftovers(ours, [net])) - others
    assert not os.path.exists(f"/sys/class/net/{our_bridge}")
    assert (_bridge_state("docker0"), _docker_rules()) == before
    assert wait_http(their_ip, 80) == their_hostname


def test_dockerd_started_after_ours_before_its_first_container(ours: Daemon, dockerd: Reference,
                                                               busybox_tar: Path) -> None:
    """Ours chose docker0 while it was free; dockerd took the name before our first
    container: ours moves to a bridge and subnet of its own then, and takes nothing of
    dockerd's."""
    before = (_bridge_state("docker0"), _docker_rules())
    _cli(ours, "import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    others = _firewall()
    _cli(ours, "run", "-d", "--name", "mine", *HTTPD)
    net = json.loads(_cli(ours, "network", "inspect", "bridge").stdout)[0]
    assert net["Options"]["com.docker.network.bridge.name"] != "docker0"
    my_ip = json.loads(_cli(ours, "inspect", "mine").stdout)[0][
        "NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    their_subnet = json.loads(dockerd.run("network", "inspect", "bridge").stdout)[0][
        "IPAM"]["Config"][0]["Subnet"]
    assert ipaddress.ip_address(my_ip) not in ipaddress.ip_network(their_subnet)
    assert (_bridge_state("docker0"), _docker_rules()) == before
    _cli(ours, "rm", "-f", "mine")
    assert ours.stop()
    assert not set(network_leftovers(ours, [net])) - others
    assert (_bridge_state("docker0"), _docker_rules()) == before
