"""A pod for the streaming tests, on api_tests/cri's CRI daemon (a dockerd-py with
--cri-socket, its own CNI config, registry-hosts mirrors onto a private registry of
critest's stand-ins), reached with crictl.

Fixtures (and api_tests/cri's cri_dir, cri_registry, cri_daemon, crictl):
  stream_pod   (module)  Pod: a sandbox with three busybox containers: `web` (busybox
                         httpd on 127.0.0.1:8080 inside the pod, a shell to exec in),
                         `reader` (stdin, stdin_once: echoes what it reads, for attach) and
                         `shell` (sh on a TTY, for attach -it), one of each per transport
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..cri.conftest import (  # noqa: F401  (fixtures)
    CriRun,
    cri_daemon,
    cri_dir,
    cri_registry,
    crictl,
)

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
WEB_PORT = 8080
PAGE = "pod-says-hi"


@dataclass
class Pod:
    id: str
    web: str
    reader: dict[str, str]   # by transport: each is used up by one attach
    shell: dict[str, str]
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
    crictl("pull", BUSYBOX, timeout=300)
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
        reader, shell = {}, {}
        for transport in ("spdy", "websocket"):
            reader[transport] = _container(
                crictl, pod_id, pod_cfg, d, f"reader-{transport}", stdin=True, stdin_once=True,
                command=["sh", "-c", "while read l; do echo got:$l; done; echo reader-done"])
            shell[transport] = _container(crictl, pod_id, pod_cfg, d, f"shell-{transport}",
                                          stdin=True, tty=True, command=["sh"])
        yield Pod(pod_id, web, reader, shell, d)
    finally:
        crictl("stopp", pod_id, check=False)
        crictl("rmp", pod_id, check=False)
