"""Two of our daemons side by side: each its own bridge, subnets and firewall chains; the
one that stops takes only its own away."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI, Daemon, DockerRun, network_leftovers
from .conftest import bridge_exists, wait_http


@pytest.fixture
def second_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    d = Daemon(Path(tempfile.mkdtemp(prefix="dpy2-", dir="/tmp")))
    d.start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(d.tmp, ignore_errors=True)


def _cli(d: Daemon) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: object) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([DOCKER_CLI, *map(str, args)], env=d.cli_env(), capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"{args}: {r.stderr}\n{d.log_tail()}"
        return r
    return run


def test_two_daemons_coexist(docker: DockerRun, ctr: Callable[..., str],
                             second_daemon: Daemon, busybox_tar: Path,
                             default_bridge: dict[str, Any]) -> None:
    other = _cli(second_daemon)
    other("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
    theirs = json.loads(other("network", "inspect", "bridge").stdout)[0]
    ours_bridge = default_bridge["Options"]["com.docker.network.bridge.name"]
    their_bridge = theirs["Options"]["com.docker.network.bridge.name"]
    assert ours_bridge != their_bridge
    assert theirs["IPAM"]["Config"] != default_bridge["IPAM"]["Config"]
    mine = ctr()
    docker("run", "-d", "--name", mine, "-p", "127.0.0.1::80", "busybox", "httpd", "-f", "-p",
           "80", "-h", "/etc")
    other("run", "-d", "--name", "theirs", "-p", "127.0.0.1::80", "busybox", "httpd", "-f",
          "-p", "80", "-h", "/etc")
    port_a = json.loads(docker("inspect", mine).stdout)[0]["NetworkSettings"]["Ports"][
        "80/tcp"][0]["HostPort"]
    port_b = json.loads(other("inspect", "theirs").stdout)[0]["NetworkSettings"]["Ports"][
        "80/tcp"][0]["HostPort"]
    assert port_a != port_b
    assert wait_http("127.0.0.1", int(port_a)).strip() == \
        json.loads(docker("inspect", mine).stdout)[0]["Config"]["Hostname"]
    assert wait_http("127.0.0.1", int(port_b)).strip() == \
        json.loads(other("inspect", "theirs").stdout)[0]["Config"]["Hostname"]
    # The second daemon goes: its bridge, rules and namespaces with it; ours stay.
    networks = [json.loads(other("network", "inspect", "bridge").stdout)[0]]
    other("rm", "-f", "theirs")
    assert second_daemon.stop()
    assert not network_leftovers(second_daemon, networks)
    assert not bridge_exists(their_bridge)
    assert bridge_exists(ours_bridge)
    assert wait_http("127.0.0.1", int(port_a))
