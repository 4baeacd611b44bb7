"""A pod for the streaming tests on a dockerd-py with --cri-socket and a CNI config of
its own (api_tests/cri's helpers), reached with crictl.

The images (pause, busybox stand-ins from api_tests/cri's registry) are pulled through
the Docker API and tagged with the names the CRI asks for: the same image store, and no
dependence on per-registry mirrors.

Fixtures:
  cri_daemon   (session) the Daemon, its CRI socket at .cri_sock
  crictl       (session) run(*args, check=True, timeout=120, input=None)
  stream_pod   (module)  Pod: a sandbox with two busybox containers, `web` (busybox
                         httpd on 127.0.0.1:8080 inside the pod, a shell to exec in) and
                         `reader` (stdin, stdin_once: echoes what it reads, for attach),
                         `shell` (sh on a TTY, for attach -it)
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import DOCKER_CLI, Daemon, network_config, stop_and_check
from ..cri.conftest import CRICTL, CriRun, cni_config, cri_dir, cri_registry  # noqa: F401
from ..lifetime import die_with_test_run

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
PAUSE = "registry.k8s.io/pause:3.9"
WEB_PORT = 8080
PAGE = "pod-says-hi"


@pytest.fixture(scope="session")
def cri_daemon(cri_dir: Path, cri_registry: str) -> Iterator[Daemon]:  # noqa: F811
    tmp = cri_dir / "s"
    tmp.mkdir()
    conf, bridge, _ = cni_config(tmp)
    cfg = network_config(tmp)
    cfg["cri"] = {"cni-conf-dir": str(conf), "cni-bin-dir": "/usr/lib/cni"}
    (tmp / "daemon.json").write_text(json.dumps(cfg))
    sock = tmp / "cri.sock"
    d = Daemon(tmp, extra_args=("--cri-socket", str(sock)))
    d.cri_sock = str(sock)  # type: ignore[attr-defined]
    (tmp / "crictl.yaml").write_text(
        f"runtime-endpoint: unix://{sock}\nimage-endpoint: unix://{sock}\ntimeout: 60\n")
    d.start()
    try:
        for name, path in ((PAUSE, "pause:3.9"), (BUSYBOX, BUSYBOX.split("/", 1)[1])):
            for args in (("pull", f"{cri_registry}/{path}"),
                         ("tag", f"{cri_registry}/{path}", name)):
                subprocess.run([DOCKER_CLI, *args], env=d.cli_env(), check=True,
                               capture_output=True, timeout=300)
        yield d
    finally:
        subprocess.run([str(CRICTL), "--config", str(tmp / "crictl.yaml"), "rmp", "-fa"],
                       capture_output=True, timeout=120, check=False)
        stop_and_check(d, tmp)
        left = [p for p in (tmp / "cni" / "ipam").glob("*/*")
                if not p.name.startswith(("last", "lock"))]
        if os.path.exists(f"/sys/class/net/{bridge}"):
            subprocess.run(["ip", "link", "del", bridge], check=False)
        if left:
            pytest.fail("\n".join(f"CNI allocation left: {p}" for p in left))


@pytest.fixture(scope="session")
def crictl(cri_daemon: Daemon) -> CriRun:
    config = str(cri_daemon.tmp / "crictl.yaml")

    def run(*args: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(CRICTL), "--config", config, *args], capture_output=True,
                              text=True, timeout=timeout, check=False, input=input,
                              preexec_fn=die_with_test_run)
        if check and done.returncode != 0:
            pytest.fail(f"crictl {' '.join(args)} exited {done.returncode}: {done.stderr}\n"
                        f"--- daemon log ---\n{cri_daemon.log_tail()}", pytrace=False)
        return done
    return run


@dataclass
class Pod:
    id: str
    web: str
    reader: str
    shell: str
    dir: Path


def _container(run: CriRun, pod_id: str, pod_cfg: Path, d: Path, name: str,
               **cfg: object) -> str:
    spec = {"metadata": {"name": name}, "image": {"image": BUSYBOX},
            "log_path": f"{name}.log", "linux": {}, **cfg}
    path = d / f"{name}.json"
    path.write_text(json.dumps(spec))
    cid = run("create", pod_id, str(path), str(pod_cfg)).stdout.strip()
    run("start", cid)
    return cid


@pytest.fixture(scope="module")
def stream_pod(crictl: CriRun, cri_dir: Path) -> Iterator[Pod]:  # noqa: F811
    d = cri_dir / f"stream-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    pod_cfg = d / "pod.json"
    pod_cfg.write_text(json.dumps({
        "metadata": {"name": f"streams-{d.name}", "namespace": "default",
                     "uid": uuid.uuid4().hex, "attempt": 0},
        "log_directory": str(d / "logs"), "linux": {}}))
    pod_id = crictl("runp", str(pod_cfg), timeout=300).stdout.strip()
    try:
        web = _container(crictl, pod_id, pod_cfg, d, "web", command=[
            "sh", "-c", f"mkdir -p /w && echo {PAGE} > /w/index.html && "
                        f"exec httpd -f -p 127.0.0.1:{WEB_PORT} -h /w"])
        reader = _container(crictl, pod_id, pod_cfg, d, "reader", stdin=True, stdin_once=True,
                            command=["sh", "-c", "while read l; do echo got:$l; done; "
                                                 "echo reader-done"])
        shell = _container(crictl, pod_id, pod_cfg, d, "shell", stdin=True, tty=True,
                           command=["sh"])
        yield Pod(pod_id, web, reader, shell, d)
    finally:
        crictl("stopp", pod_id, check=False)
        crictl("rmp", pod_id, check=False)
