"""A pod for the streaming tests, on the CRI daemon of api_tests/cri (a dockerd-py with
--cri-socket, the stand-in registry, its own CNI config), reached with crictl.

Fixtures:
  stream_pod   (module)  Pod: a sandbox with two busybox containers, `web` (busybox
                         httpd on 127.0.0.1:8080 inside the pod, a shell to exec in) and
                         `reader` (stdin, stdin_once: echoes what it reads, for attach)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..cri.conftest import CriRun, cri_daemon, cri_dir, cri_registry, crictl  # noqa: F401

BUSYBOX = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
WEB_PORT = 8080
PAGE = "pod-says-hi"


@dataclass
class Pod:
    id: str
    web: str
    reader: str
    dir: Path


def _container(crictl: CriRun, pod_id: str, pod_cfg: Path, d: Path, name: str,
               **cfg: object) -> str:
    spec = {"metadata": {"name": name}, "image": {"image": BUSYBOX},
            "log_path": f"{name}.log", "linux": {}, **cfg}
    path = d / f"{name}.json"
    path.write_text(json.dumps(spec))
    cid = crictl("create", pod_id, str(path), str(pod_cfg)).stdout.strip()
    crictl("start", cid)
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
        reader = _container(crictl, pod_id, pod_cfg, d, "reader", stdin=True, stdin_once=True,
                            command=["sh", "-c", "while read l; do echo got:$l; done; "
                                                 "echo reader-done"])
        yield Pod(pod_id, web, reader, d)
    finally:
        crictl("stopp", pod_id, check=False)
        crictl("rmp", pod_id, check=False)
