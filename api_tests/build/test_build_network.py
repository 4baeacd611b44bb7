"""RUN steps on the networks the reference's builder gives them: the default bridge
without --network, a user-defined network by name, the host's with `--network host`,
loopback only with `--network none`; and nothing of a step's networking (endpoint,
veth, namespace pin) left after it, whether it succeeded, failed or was cancelled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI, Daemon

HOST_ONLY = b"host-loopback-secret"
SETTLE_TIMEOUT = 30.0  # a cancelled build's teardown runs behind the client's exit


@pytest.fixture(autouse=True)
def _busybox(busybox_image: str) -> None:
    """Every Dockerfile here builds FROM busybox."""


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A server on the host's 127.0.0.1 only; its port. Answers HOST_ONLY to anyone."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(HOST_ONLY), HOST_ONLY))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(srv.getsockname()[1])
    stop.set()
    srv.close()
    thread.join(5)


@pytest.fixture
def server(docker: Any, busybox_image: str, unique_name: Any) -> Iterator[Callable[..., str]]:
    """busybox httpd serving its /etc in a container (its name); removed afterwards."""
    names: list[str] = []

    def start(*network: str) -> str:
        name = unique_name("srv")
        names.append(name)
        docker("run", "-d", "--name", name, *network, busybox_image,
               "httpd", "-f", "-p", "80", "-h", "/etc")
        return name
    yield start
    if names:
        docker("rm", "-f", *names, check=False)


def _inspect(docker: Any, *argv: str) -> Any:
    return json.loads(docker(*argv).stdout)[0]


def _bridge(docker: Any) -> tuple[str, str]:
    """The default bridge's interface name and subnet."""
    n = _inspect(docker, "network", "inspect", "bridge")
    return (n["Options"]["com.docker.network.bridge.name"], n["IPAM"]["Config"][0]["Subnet"])


def _step_leftovers(daemon: Any, docker: Any) -> list[str]:
    """Build steps' networking still present: namespace pins of anything but a running
    container or the bridge's anchor, veths on our bridge of anything but a running
    container, endpoints in `docker network inspect` of no running container."""
    running = set(docker("ps", "-q", "--no-trunc").stdout.split())
    found = []
    netns_dir = daemon.exec_root / "netns"
    if netns_dir.is_dir():
        found += [f"netns pin {p.name}" for p in netns_dir.iterdir()
                  if p.name not in running and not p.name.startswith("anchor-")]
    bridge, _ = _bridge(docker)
    links = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                           capture_output=True, text=True).stdout
    ours = {f"vd{c[:12]}" for c in running}
    for m in re.finditer(r"^\d+: (vd[0-9a-f]{12})@", links, re.M):
        if m[1] not in ours:
            found.append(f"veth {m[1]}")
    for net in json.loads(docker("network", "inspect", "bridge").stdout):
        found += [f"endpoint {cid}" for cid in net["Containers"] if cid not in running]
    return found


def _settled(daemon: Any, docker: Any) -> list[str]:
    """Leftovers once any teardown still running behind the build has finished."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (found := _step_leftovers(daemon, docker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def _ours(leftovers: list[str], output: str) -> list[str]:
    """build_leftovers() without other daemons' build cgroups (the cgroup parent is shared
    by every daemon on the host): only those of the steps this output ran count."""
    steps = re.findall(r" ---> Running in ([0-9a-f]{12})\n", output)
    return [item for item in leftovers if not item.startswith("cgroup ")
            or any(f"/{s}" in item for s in steps)]


def _run_dockerfile(*lines: str) -> dict[str, str]:
    return {"Dockerfile": "FROM busybox\n" + "".join(f"RUN {ln}\n" for ln in lines)}


def test_default_bridge(make_context: Callable[..., Path], build: Any, docker: Any,
                        daemon: Any, server: Callable[..., str], busybox_image: str,
                        loopback_server: int) -> None:
    srv = server()
    srv_ip = _inspect(docker, "inspect", srv)["NetworkSettings"]["IPAddress"]
    srv_host = _inspect(docker, "inspect", srv)["Config"]["Hostname"]
    _, subnet = _bridge(docker)
    ctx = make_context(_run_dockerfile(
        "ip -4 -o addr show eth0; ls /sys/class/net; echo '--resolv'; cat /etc/resolv.conf; "
        "echo '--hosts'; cat /etc/hosts; echo '--end'",
        f"for i in $(seq 50); do timeout 5 wget -qO- http://{srv_ip}/hostname && break; "
        "sleep 0.2; done",
        f"if timeout 5 wget -qO- http://127.0.0.1:{loopback_server}/; then echo REACHED; "
        "else echo host-loopback-unreachable; fi"))
    out = build(ctx, "--no-cache").stdout
    addr = re.search(r"eth0\s+inet (\d+\.\d+\.\d+\.\d+)/(\d+)", out)
    assert addr, out
    prefix = subnet.rsplit(".", 1)[0]
    assert addr[1].startswith(prefix + ".") and subnet.endswith("/" + addr[2]), (addr[0], subnet)
    assert re.search(r"\neth0\nlo\n--resolv", out), out
    # the step's /etc files are those `docker run` gets on the default bridge
    expected_resolv = docker("run", "--rm", busybox_image, "cat", "/etc/resolv.conf").stdout
    assert f"--resolv\n{expected_resolv}--hosts" in out
    cid = re.search(r" ---> Running in ([0-9a-f]{12})\n(?:.*\n)*?.*eth0\s+inet", out)
    assert cid, out
    assert "--hosts\n127.0.0.1\tlocalhost\n" in out
    assert re.search(rf"ff02::2\tip6-allrouters\n{re.escape(addr[1])}\t{cid[1]}\n--end", out)
    assert f"\n{srv_host}\n" in out  # the other container's httpd answered
    assert "host-loopback-unreachable\n" in out and "\nREACHED\n" not in out
    assert HOST_ONLY.decode() not in out
    assert _settled(daemon, docker) == []


def test_host_network(make_context: Callable[..., Path], build: Any, docker: Any,
                      loopback_server: int) -> None:
    bridge, _ = _bridge(docker)
    ctx = make_context(_run_dockerfile(
        "ls /sys/class/net",
        f"timeout 5 wget -qO- http://127.0.0.1:{loopback_server}/; echo"))
    out = build(ctx, "--no-cache", "--network", "host").stdout
    names = set(out.split())
    assert bridge in names and "lo" in names
    assert set(os.listdir("/sys/class/net")) & names - {"lo", bridge}, out
    assert HOST_ONLY.decode() in out


def test_none_network(make_context: Callable[..., Path], build: Any, docker: Any) -> None:
    ctx = make_context(_run_dockerfile("echo \"nets=$(ls /sys/class/net | tr '\\n' ' ')\""))
    out = build(ctx, "--no-cache", "--network", "none").stdout
    assert "nets=lo \n" in out


def test_user_network(make_context: Callable[..., Path], build: Any, docker: Any,
                      daemon: Any, server: Callable[..., str], busybox_image: str,
                      unique_name: Any) -> None:
    net = unique_name("buildnet")
    docker("network", "create", net)
    try:
        srv = server("--network", net)
        srv_host = _inspect(docker, "inspect", srv)["Config"]["Hostname"]
        ctx = make_context(_run_dockerfile(
            "echo '--resolv'; cat /etc/resolv.conf; echo '--end'",
            f"for i in $(seq 50); do timeout 5 wget -qO- http://{srv}/hostname && break; "
            "sleep 0.2; done"))
        out = build(ctx, "--no-cache", "--network", net).stdout
        assert f"\n{srv_host}\n" in out, out
        expected = docker("run", "--rm", "--network", net, busybox_image,
                          "cat", "/etc/resolv.conf").stdout
        assert f"--resolv\n{expected}--end" in out
        nosuch = unique_name("nosuch")
        missing = build(ctx, "--no-cache", "--network", nosuch, check=False)
        assert missing.rc == 1 and f"\nnetwork {nosuch} not found\n" in missing.output
    finally:
        docker("rm", "-f", srv, check=False)
        docker("network", "rm", net, check=False)
    assert _settled(daemon, docker) == []


def test_failed_step_releases_its_endpoint(make_context: Callable[..., Path], build: Any,
                                           docker: Any, daemon: Any,
                                           build_leftovers: Any) -> None:
    ctx = make_context(_run_dockerfile("ip -4 -o addr show eth0 && exit 7"))
    result = build(ctx, "--no-cache", check=False)
    assert result.rc == 7 and "eth0" in result.stdout, result.output
    assert _settled(daemon, docker) == []
    assert _ours(build_leftovers(), result.stdout) == []


def _build_until_started(daemon: Any, ctx: Path, *flags: str
                         ) -> tuple[subprocess.Popen[str], str]:
    """A `docker build` left running once its RUN step printed "started"; its output so far."""
    proc = subprocess.Popen(["docker", "build", "--no-cache", *flags, str(ctx)],
                            env=daemon.cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if line.strip() == "started":
            return proc, seen
    proc.wait()
    raise AssertionError(f"the build ended before its step started:\n{seen}")


def test_cancelled_step_releases_its_endpoint(make_context: Callable[..., Path], docker: Any,
                                              daemon: Any, build_leftovers: Any) -> None:
    ctx = make_context(_run_dockerfile("ip -4 -o addr show eth0; echo started; sleep 600"))
    proc, seen = _build_until_started(daemon, ctx)
    try:
        assert "inet" in seen, seen
        assert _step_leftovers(daemon, docker) != []  # the step is on the bridge now
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _settled(daemon, docker) == []
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (left := _ours(build_leftovers(), seen)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == []


def test_network_in_use_by_a_step_cannot_be_removed(make_context: Callable[..., Path],
                                                    docker: Any, daemon: Any,
                                                    unique_name: Any) -> None:
    net = unique_name("stepnet")
    docker("network", "create", net)
    ctx = make_context(_run_dockerfile("echo started; sleep 600"))
    proc, seen = _build_until_started(daemon, ctx, "--network", net)
    try:
        r = docker("network", "rm", net, check=False)
        assert r.returncode == 1
        assert (f"Error response from daemon: error while removing network: network {net} "
                "has active endpoints (name:") in r.stderr, r.stderr
        assert _inspect(docker, "network", "inspect", net)["Name"] == net
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert _settled(daemon, docker) == []
    docker("network", "rm", net)


def test_daemon_without_default_bridge(busybox_tar: Path) -> None:
    """`--bridge none` (here in daemon.json): the reference runs a build's steps with
    loopback only, as if `--network none` had been given, instead of failing."""
    d = Daemon(Path(tempfile.mkdtemp(prefix="dpybn-", dir="/tmp")))
    d.config_file.write_text(json.dumps({"bridge": "none"}) + "\n")
    d.start()
    try:
        def cli(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([DOCKER_CLI, *argv], env=d.cli_env(), capture_output=True,
                                  text=True, timeout=300)
        assert cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest") \
            .returncode == 0
        ctx = d.tmp / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(
            "FROM busybox\nRUN echo \"nets=$(ls /sys/class/net | tr '\\n' ' ')\"\n")
        result = cli("build", "--no-cache", str(ctx))
        assert result.returncode == 0, result.stderr
        assert "nets=lo \n" in result.stdout
    finally:
        d.stop()
        shutil.rmtree(d.tmp, ignore_errors=True)
