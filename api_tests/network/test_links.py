"""Legacy links: the environment and hosts entries on the default bridge (values as
dockerd 20.10 sets them), `docker rm --link`, and link aliases by DNS on a user network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker as docker_sdk
import pytest

from ..conftest import DockerRun
from .conftest import inspect_ctr, wait_in

Make = Callable[..., dict[str, Any]]


def _ip(docker: DockerRun, name: str, network: str = "bridge") -> str:
    return str(inspect_ctr(docker, name)["NetworkSettings"]["Networks"][network]["IPAddress"])


def test_link_environment_on_the_default_bridge(docker: DockerRun,
                                                ctr: Callable[..., str]) -> None:
    db, web = ctr("db-x"), ctr("web")
    docker("run", "-d", "--name", db, "-e", "FOO=bar", "-e", "SP=a b", "--expose", "80",
           "--expose", "81/udp", "--expose", "5000-5002", "busybox", "sleep", "120")
    ip = _ip(docker, db)
    out = docker("run", "--name", web, "--link", f"{db}:my-db", "busybox", "env").stdout
    got = sorted(line for line in out.splitlines() if line.startswith("MY_DB_"))
    # dockerd 20.10's output for the same containers, with this address.
    want = ["MY_DB_ENV_FOO=bar", "MY_DB_ENV_SP=a b", f"MY_DB_NAME=/{web}/my-db",
            f"MY_DB_PORT=tcp://{ip}:80"]
    for port, proto in ((80, "tcp"), (81, "udp"), (5000, "tcp"), (5001, "tcp"),
                        (5002, "tcp")):
        head = f"MY_DB_PORT_{port}_{proto.upper()}"
        want += [f"{head}={proto}://{ip}:{port}", f"{head}_ADDR={ip}", f"{head}_PORT={port}",
                 f"{head}_PROTO={proto}"]
    want += [f"MY_DB_PORT_5000_TCP_START=tcp://{ip}:5000", "MY_DB_PORT_5000_TCP_PORT_START=5000",
             f"MY_DB_PORT_5000_TCP_END=tcp://{ip}:5002", "MY_DB_PORT_5000_TCP_PORT_END=5002"]
    assert got == sorted(want)


def test_rm_link_and_the_links_shown(docker: DockerRun, dockerpy: Any,
                                     ctr: Callable[..., str]) -> None:
    db, web = ctr("db"), ctr("web")
    docker("run", "-d", "--name", db, "busybox", "sleep", "120")
    docker("run", "-d", "--name", web, "--link", db, "--link", f"{db}:al", "--link",
           f"{db}:al2", "busybox", "sleep", "120")
    assert inspect_ctr(docker, web)["HostConfig"]["Links"] == [
        f"/{db}:/{web}/{db}", f"/{db}:/{web}/al", f"/{db}:/{web}/al2"]
    hosts = docker("exec", web, "cat", "/etc/hosts").stdout
    assert f"{_ip(docker, db)}\tal " in hosts
    docker("rm", "--link", f"/{web}/al")
    dockerpy.api.remove_container(f"{web}/al2", link=True)
    assert inspect_ctr(docker, web)["HostConfig"]["Links"] == [f"/{db}:/{web}/{db}"]
    docker("restart", "-t", "0", web)
    hosts = docker("exec", web, "cat", "/etc/hosts").stdout
    assert "\tal " not in hosts and f"\t{db} " in hosts
    # dockerd's refusals.
    r = docker("rm", "--link", f"/{web}/nope", check=False)
    assert f"No such container: {web}/nope" in r.stderr
    r = docker("rm", "--link", db, check=False)
    assert "cannot remove the default link name of the container" in r.stderr
    assert docker("inspect", db).returncode == 0  # the linked container stays


def test_link_errors(dockerpy: Any, docker: DockerRun, ctr: Callable[..., str],
                     busybox_image: str) -> None:
    with pytest.raises(docker_sdk.errors.APIError) as e:
        dockerpy.containers.create("busybox", ["true"], links={"nope-xyz": "x"})
    assert e.value.status_code == 400
    assert e.value.explanation == \
        "could not get container for nope-xyz: No such container: nope-xyz"
    stopped, web = ctr("stopped"), ctr("web")
    docker("create", "--name", stopped, "busybox", "true")
    docker("create", "--name", web, "--link", f"{stopped}:x", "busybox", "true")
    r = docker("start", web, check=False)
    assert f"Cannot link to a non running container: /{stopped} AS /{web}/x" in r.stderr


def test_link_alias_resolves_on_a_user_network(docker: DockerRun, network: Make,
                                                ctr: Callable[..., str]) -> None:
    n = network()
    db, web = ctr("db"), ctr("web")
    docker("run", "-d", "--name", db, "--network", n["Name"], "busybox", "httpd", "-f", "-p",
           "80", "-h", "/etc")
    docker("run", "-d", "--name", web, "--network", n["Name"], "--link", f"{db}:dbal",
           "busybox", "sleep", "120")
    endpoint = inspect_ctr(docker, web)["NetworkSettings"]["Networks"][n["Name"]]
    assert endpoint["Links"] == [f"{db}:dbal"]
    assert inspect_ctr(docker, web)["HostConfig"]["Links"] is None
    hostname = inspect_ctr(docker, db)["Config"]["Hostname"]
    assert wait_in(docker, web, "http://dbal/hostname").strip() == hostname
    # The record goes with the linking container.
    docker("rm", "-f", web)
    other = ctr("other")
    docker("run", "-d", "--name", other, "--network", n["Name"], "busybox", "sleep", "120")
    r = docker("exec", other, "nslookup", "dbal", check=False)
    assert _ip(docker, db, n["Name"]) not in r.stdout
