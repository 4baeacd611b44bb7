"""crictl (cri-tools v1.36) against the CRI socket of a dockerd-py: a pod from a JSON
config with a published port, a container in it, exec, logs, port-forward, stats,
inspection, removal with nothing left on the host; the image store shared with the
Docker API; `docker rm -f` behind the CRI's back."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from dockerd_py.protos.cri import api_pb2 as pb
from dockerd_py.protos.cri import api_pb2_grpc as rpc_pb

from ..conftest import DOCKER_CLI, Daemon, _mounts_under
from ..lifetime import die_with_test_run
from ..registry.fixtures import free_port
from .conftest import CRICTL, CriRun

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
PAGE = "hello-from-the-pod"


def docker(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER_CLI, *args], env=d.cli_env(), capture_output=True,
                          text=True, timeout=120, check=False)


def pod_config(tmp: Path, name: str, host_port: int = 0) -> Path:
    cfg: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "crit", "uid": str(uuid.uuid4()),
                     "attempt": 0},
        "hostname": name, "log_directory": str(tmp / "logs" / name),
        "dns_config": {"servers": ["10.0.0.10"], "searches": ["crit.svc"],
                       "options": ["ndots:5"]},
        "labels": {"app": name}, "linux": {}}
    if host_port:
        cfg["port_mappings"] = [{"container_port": 80, "host_port": host_port,
                                 "host_ip": "127.0.0.1"}]
    path = tmp / f"{name}-pod.json"
    path.write_text(json.dumps(cfg))
    return path


def container_config(tmp: Path, name: str, script: str) -> Path:
    path = tmp / f"{name}-ctr.json"
    path.write_text(json.dumps({
        "metadata": {"name": name}, "image": {"image": BUSYBOX},
        "command": ["sh", "-c", script], "log_path": f"{name}.log",
        "labels": {"role": name}, "linux": {}}))
    return path


WEB = f"mkdir -p /w && echo {PAGE} > /w/index.html && echo started && exec httpd -f -p 80 -h /w"


@pytest.fixture
def tmp(cri_daemon: Daemon) -> Path:
    path = cri_daemon.tmp / f"t-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def _http(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


def _leftovers(d: Daemon, pod_id: str, pid: int, ip: str) -> list[str]:
    found = []
    pin = d.exec_root / "cri" / "netns" / pod_id
    if pin.exists() or _mounts_under(pin):
        found.append(f"network namespace pin {pin}")
    ipam = d.tmp / "cni" / "ipam"
    found += [f"CNI allocation {p}" for p in ipam.glob("*/*") if p.name == ip]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found += [f"firewall rule {line}" for line in rules.splitlines()
              if pod_id in line or (ip and f"{ip}/" in line) or (ip and f"{ip}:" in line)]
    if pid and os.path.exists(f"/proc/{pid}"):
        found.append(f"pause process {pid}")
    found += [f"mount {m}" for m in _mounts_under(d.exec_root / "cri")]
    return found


def test_pod_lifecycle(cri_daemon: Daemon, crictl: CriRun, tmp: Path) -> None:
    host_port = free_port()
    pod_cfg = pod_config(tmp, "web", host_port)
    crictl("pull", BUSYBOX)
    pod = crictl("runp", str(pod_cfg)).stdout.strip()
    status = json.loads(crictl("inspectp", pod).stdout)
    assert status["status"]["state"] == "SANDBOX_READY"
    ip = status["status"]["network"]["ip"]
    assert ip, status["status"]["network"]
    pid = int(status["info"]["pid"])
    assert crictl("pods", "-q", "--label", "app=web").stdout.split() == [pod]
    pause = json.loads(crictl("inspecti", "registry.k8s.io/pause:3.9").stdout)["status"]
    busybox = json.loads(crictl("inspecti", BUSYBOX).stdout)["status"]
    assert pause["pinned"] is True and not busybox.get("pinned")  # kubelet's GC spares it

    ctr = crictl("create", pod, str(container_config(tmp, "httpd", WEB)),
                 str(pod_cfg)).stdout.strip()
    crictl("start", ctr)
    assert crictl("ps", "-q", "--pod", pod, "--state", "running").stdout.split() == [ctr]

    # exec -s: ExecSync, in the pod's namespaces with its hostname and DNS config
    out = crictl("exec", "-s", ctr, "sh", "-c",
                 "hostname; cat /etc/resolv.conf; ip -4 addr show eth0")
    lines = out.stdout
    assert lines.splitlines()[0] == "web"
    assert "nameserver 10.0.0.10" in lines and "search crit.svc" in lines
    assert "options ndots:5" in lines and f"inet {ip}/" in lines
    failed = crictl("exec", "-s", ctr, "sh", "-c", "exit 3", check=False)
    assert failed.returncode != 0 and "exited with 3" in failed.stderr  # crictl's wording

    # the published port (CNI portmap) and the pod's address answer
    assert PAGE.encode() in _http(host_port)

    # logs: crictl reads the file at log_directory/log_path, in the CRI format
    assert "started" in crictl("logs", ctr).stdout
    log_file = tmp / "logs" / "web" / "httpd.log"
    first = log_file.read_text().splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) stdout F started",
                        first), first

    # port-forward through the streaming server into the pod's network namespace
    local = free_port()
    proc = subprocess.Popen([str(CRICTL), "--config", str(cri_daemon.tmp / "crictl.yaml"),
                             "port-forward", pod, f"{local}:80"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_test_run)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Forwarding from" in line, line
        assert PAGE.encode() in _http(local)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    # stats of the container and of the pod
    stats = json.loads(crictl("stats", "-o", "json", "--id", ctr).stdout)["stats"]
    assert [s["attributes"]["id"] for s in stats] == [ctr]
    assert int(stats[0]["memory"]["workingSetBytes"]["value"]) > 0
    podstats = json.loads(crictl("statsp", "-o", "json", "--id", pod).stdout)["stats"]
    assert podstats[0]["attributes"]["id"] == pod
    net = podstats[0]["linux"]["network"]["defaultInterface"]
    assert net["name"] == "eth0" and int(net["rxBytes"]["value"]) > 0  # the HTTP above

    # the Docker API shows them as what they are, under the CRI's names and labels
    names = docker(cri_daemon, "ps", "--format", "{{.Names}}", "--filter",
                   "label=io.dockerd-py.cri.kind").stdout.split()
    assert {f"k8s_POD_web_crit_{status['status']['metadata']['uid']}_0",
            f"k8s_httpd_web_crit_{status['status']['metadata']['uid']}_0"} <= set(names)

    crictl("stop", ctr)
    exited = json.loads(crictl("inspect", ctr).stdout)["status"]
    assert exited["state"] == "CONTAINER_EXITED" and exited["reason"] in ("Completed", "Error")
    crictl("stopp", pod)
    crictl("stopp", pod)  # idempotent
    assert json.loads(crictl("inspectp", pod).stdout)["status"]["state"] == \
        "SANDBOX_NOTREADY"
    crictl("rmp", pod)
    assert crictl("pods", "-q", "--id", pod).stdout.split() == []
    assert crictl("ps", "-aq", "--pod", pod).stdout.split() == []
    assert _leftovers(cri_daemon, pod, pid, ip) == []


def test_image_store_shared_with_docker(cri_daemon: Daemon, crictl: CriRun,
                                        cri_registry: str) -> None:
    """An image pulled through the Docker API is a CRI image and the reverse."""
    by_docker = "registry.k8s.io/e2e-test-images/nginx:1.14-2"
    assert docker(cri_daemon, "pull", "-q", by_docker).returncode == 0
    listed = json.loads(crictl("images", "-o", "json").stdout)["images"]
    assert any(f"{by_docker}" in i["repoTags"] for i in listed)
    by_cri = "gcr.io/k8s-staging-cri-tools/test-image-1:latest"
    crictl("pull", by_cri)
    ids = docker(cri_daemon, "images", "-q", "--no-trunc", by_cri).stdout.split()
    assert ids and ids[0] == json.loads(crictl("inspecti", by_cri).stdout)["status"]["id"]
    crictl("rmi", by_cri)
    assert docker(cri_daemon, "images", "-q", by_cri).stdout.strip() == ""
    crictl("rmi", by_cri, check=False)


def test_docker_rm_of_a_pod_container(cri_daemon: Daemon, crictl: CriRun, tmp: Path) -> None:
    """`docker rm -f` of a pod's container: the CRI view loses that container only."""
    pod_cfg = pod_config(tmp, "rmf")
    crictl("pull", BUSYBOX)
    pod = crictl("runp", str(pod_cfg)).stdout.strip()
    ctr = crictl("create", pod, str(container_config(tmp, "sleeper", "sleep 1000")),
                 str(pod_cfg)).stdout.strip()
    crictl("start", ctr)
    assert docker(cri_daemon, "rm", "-f", ctr).returncode == 0
    assert crictl("ps", "-aq", "--pod", pod).stdout.split() == []
    assert crictl("inspect", ctr, check=False).returncode != 0
    status = json.loads(crictl("inspectp", pod).stdout)
    assert status["status"]["state"] == "SANDBOX_READY"
    # Now the pause container itself: the pod is gone from the CRI's view, and kubelet's
    # RemovePodSandbox (crictl rmp asks for a status first) still takes its network apart.
    assert docker(cri_daemon, "rm", "-f", pod).returncode == 0
    assert crictl("pods", "-q", "--id", pod).stdout.split() == []
    with grpc.insecure_channel("unix:" + cri_daemon.cri_sock) as channel:  # type: ignore[attr-defined]
        rpc_pb.RuntimeServiceStub(channel).RemovePodSandbox(  # type: ignore[no-untyped-call]
            pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert _leftovers(cri_daemon, pod, int(status["info"]["pid"]),
                      status["status"]["network"]["ip"]) == []


@pytest.mark.parametrize("how", ["restart", "kill9"])
def test_pods_survive_daemon_restart(cri_daemon: Daemon, crictl: CriRun, tmp: Path,
                                     how: str) -> None:
    pod_cfg = pod_config(tmp, f"live-{how}")
    crictl("pull", BUSYBOX)
    pod = crictl("runp", str(pod_cfg)).stdout.strip()
    ctr = crictl("create", pod, str(container_config(tmp, "sleeper", "echo up; sleep 1000")),
                 str(pod_cfg)).stdout.strip()
    crictl("start", ctr)
    before = json.loads(crictl("inspectp", pod).stdout)
    ip = before["status"]["network"]["ip"]
    if how == "restart":
        cri_daemon.restart()
    else:
        cri_daemon.kill9_and_restart()
    after = json.loads(crictl("inspectp", pod).stdout)
    assert after["status"]["state"] == "SANDBOX_READY"
    assert after["status"]["network"]["ip"] == ip
    assert after["info"]["pid"] == before["info"]["pid"]
    assert crictl("ps", "-q", "--pod", pod, "--state", "running").stdout.split() == [ctr]
    assert crictl("exec", "-s", ctr, "echo", "still-here").stdout.strip() == "still-here"
    assert "up" in crictl("logs", ctr).stdout
    crictl("stopp", pod)
    crictl("rmp", pod)
    assert _leftovers(cri_daemon, pod, int(before["info"]["pid"]), ip) == []


def test_container_events(cri_daemon: Daemon, crictl: CriRun, tmp: Path) -> None:
    """GetContainerEvents streams created/started/stopped/deleted for CRI containers only,
    each with the container's status and its pod's."""
    pod_cfg = pod_config(tmp, "events")
    crictl("pull", BUSYBOX)
    pod = crictl("runp", str(pod_cfg)).stdout.strip()
    with grpc.insecure_channel("unix:" + cri_daemon.cri_sock) as channel:  # type: ignore[attr-defined]
        stream = rpc_pb.RuntimeServiceStub(channel).GetContainerEvents(  # type: ignore[no-untyped-call]
            pb.GetEventsRequest(), timeout=120)
        assert docker(cri_daemon, "run", "--rm", "-q", BUSYBOX, "true").returncode == 0
        ctr = crictl("create", pod, str(container_config(tmp, "ev", "sleep 1000")),
                     str(pod_cfg)).stdout.strip()
        crictl("start", ctr)
        crictl("stop", ctr)
        crictl("rm", ctr)
        seen = []
        for ev in stream:
            assert ev.container_id == ctr  # the Docker API's container is not a CRI event
            seen.append(ev.container_event_type)
            if ev.container_event_type != pb.CONTAINER_DELETED_EVENT:
                assert ev.containers_statuses[0].id == ctr
                assert ev.pod_sandbox_status.id == pod
            if len(seen) == 4:
                break
        stream.cancel()
    assert seen == [pb.CONTAINER_CREATED_EVENT, pb.CONTAINER_STARTED_EVENT,
                    pb.CONTAINER_STOPPED_EVENT, pb.CONTAINER_DELETED_EVENT]
    crictl("stopp", pod)
    crictl("rmp", pod)
