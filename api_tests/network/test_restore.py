"""Networks and attachments across daemon restarts (live restore)."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from ..conftest import DockerRun
from .conftest import free_port, inspect_ctr, wait_http, wait_in

Make = Callable[..., dict[str, Any]]


def test_attachments_survive_a_kill9_restart(pre: Callable[[int], str], docker: DockerRun,
                                             daemon: Any, network: Make,
                                             ctr: Callable[..., str]) -> None:
    n = network("--subnet", f"{pre(7)}.0/24", "--label", "kept=yes")
    server, client, port = ctr(), ctr(), free_port()
    docker("run", "-d", "--name", server, "--network", n["Name"], "--network-alias", "api",
           "-p", f"127.0.0.1:{port}:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
    docker("run", "-d", "--name", client, "--network", n["Name"], "busybox", "sleep", "300")
    before = inspect_ctr(docker, server)["NetworkSettings"]
    hostname = inspect_ctr(docker, server)["Config"]["Hostname"]
    wait_http("127.0.0.1", port)
    daemon.kill9_and_restart()
    after = inspect_ctr(docker, server)["NetworkSettings"]
    assert after["Networks"] == before["Networks"]
    assert after["Ports"] == before["Ports"]
    assert wait_http("127.0.0.1", port).strip() == hostname
    assert wait_in(docker, client, "http://api/hostname").strip() == hostname
    restored = json.loads(docker("network", "inspect", n["Name"]).stdout)[0]
    assert restored["Id"] == n["Id"] and restored["Labels"] == {"kept": "yes"}
    assert {v["Name"] for v in restored["Containers"].values()} == {server, client}
    # The port stays allocated to the restored container.
    r = docker("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true", check=False)
    assert "port is already allocated" in r.stderr
    # A new container gets a fresh address, not one the restored ones hold.
    third = ctr()
    docker("run", "-d", "--name", third, "--network", n["Name"], "busybox", "sleep", "60")
    taken = {before["Networks"][n["Name"]]["IPAddress"],
             inspect_ctr(docker, client)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"]}
    assert inspect_ctr(docker, third)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"] \
        not in taken


def test_exit_while_the_daemon_is_down_tears_down(docker: DockerRun, daemon: Any,
                                                  network: Make,
                                                  ctr: Callable[..., str]) -> None:
    n = network()
    name = ctr()
    docker("run", "-d", "--name", name, "--network", n["Name"], "busybox", "sleep", "300")
    info = inspect_ctr(docker, name)
    daemon.stop()
    import os
    os.kill(info["State"]["Pid"], signal.SIGKILL)
    daemon.start()
    docker("wait", name)
    assert not (daemon.exec_root / "netns" / info["Id"]).exists()
    assert json.loads(docker("network", "inspect", n["Name"]).stdout)[0]["Containers"] == {}
    docker("start", name)
    assert inspect_ctr(docker, name)["NetworkSettings"]["Networks"][n["Name"]]["IPAddress"]
