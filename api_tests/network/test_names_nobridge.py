"""Network names as dockerd takes them, and a daemon started with `--bridge none`."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker as docker_sdk
import pytest

from ..conftest import DOCKER_CLI, Daemon, DockerRun, network_config
from .conftest import inspect_ctr

Make = Callable[..., dict[str, Any]]


def test_any_name_with_a_visible_character(dockerpy: Any, docker: DockerRun, network: Make,
                                           ctr: Callable[..., str],
                                           unique_name: Callable[..., str]) -> None:
    name = unique_name("my net") + " x:y/z"
    n = network(name=name)
    assert n["Name"] == name
    c = ctr()
    docker("run", "-d", "--name", c, "--network", name, "busybox", "sleep", "60")
    assert list(inspect_ctr(docker, c)["NetworkSettings"]["Networks"]) == [name]
    assert dockerpy.networks.get(name).attrs["Containers"][
        inspect_ctr(docker, c)["Id"]]["Name"] == c
    # Only white space (Go's idea of it), or a predefined network's name, is refused.
    for bad in ("", " ", "\t\n", "\u00a0"):
        with pytest.raises(docker_sdk.errors.APIError) as e:
            dockerpy.networks.create(bad)
        assert e.value.explanation == f"invalid name: {bad}"
        assert e.value.status_code == 400
    for predefined in ("bridge", "host", "none", "default"):
        with pytest.raises(docker_sdk.errors.APIError) as e:
            dockerpy.networks.create(predefined)
        assert e.value.status_code == 403
        assert e.value.explanation == \
            f"operation is not permitted on predefined {predefined} network "


@pytest.fixture(scope="module")
def nobridge(busybox_tar: Path) -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="dpynb-", dir="/tmp"))
    (tmp / "daemon.json").write_text(json.dumps({**network_config(tmp), "bridge": "none"}))
    d = Daemon(tmp)
    d.start()
    try:
        yield d
    finally:
        client = docker_sdk.DockerClient(base_url=d.host)
        for c in client.containers.list(all=True):
            c.remove(force=True)
        client.close()
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def test_bridge_none_runs_default_network_containers_without_network(
        nobridge: Daemon, busybox_tar: Path) -> None:

    env = nobridge.cli_env()
    subprocess.run([DOCKER_CLI, "import", "-c", 'CMD ["sh"]', str(busybox_tar),
                    "busybox:latest"], env=env, check=True, capture_output=True)
    client = docker_sdk.DockerClient(base_url=nobridge.host)
    try:
        assert "bridge" not in [n.name for n in client.networks.list()]
        out = client.containers.run("busybox", ["ip", "-o", "link"], remove=True)
        links = [line.split(":")[1].strip() for line in out.decode().splitlines()]
        assert links == ["lo"]
        c = client.containers.run("busybox", ["sleep", "60"], detach=True, name="nb")
        c.reload()
        assert c.attrs["Config"]["NetworkDisabled"] is True
        assert c.attrs["HostConfig"]["NetworkMode"] == "default"
        settings = c.attrs["NetworkSettings"]
        assert settings["IPAddress"] == ""
        assert list(settings["Networks"]) == ["bridge"]
        assert settings["Networks"]["bridge"]["NetworkID"] == ""
        assert settings["Networks"]["bridge"]["IPAddress"] == ""
        # By its name too, and with ports asked for (ignored, as dockerd).
        r = subprocess.run([DOCKER_CLI, "run", "--rm", "--network", "bridge", "-p", "80",
                            "busybox", "true"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        # A container created but never started is not marked yet, as with dockerd.
        created = client.containers.create("busybox", ["true"])
        assert not created.attrs["Config"].get("NetworkDisabled")
        created.remove()
    finally:
        client.close()
