"""The CRI server under test: a dockerd-py with --cri-socket, a private registry holding
critest's image stand-ins (/work/shared/cri/mkimages.py), a CNI configuration of its own
(bridge + host-local + portmap + loopback, IPAM state under the test directory), and
crictl pointed at it.

Fixtures:
  cri_registry  (session)  "127.0.0.1:PORT" of a docker-registry holding the stand-ins
  cri_daemon    (session)  the Daemon, its CRI socket at .cri_sock
  crictl        (session)  run(*args, check=True, timeout=120) -> CompletedProcess[str]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..cni.conftest import _drop_unused_shared_chains as drop_unused_shared_chains
from ..cni.conftest import iptables_save
from ..conftest import Daemon, network_config, stop_and_check
from ..lifetime import die_with_test_run
from ..registry.fixtures import free_port

KIT = Path(os.environ.get("CRI_KIT", "/work/shared/cri"))
CRICTL = KIT / "crictl"
REGISTRY_BIN = "/usr/bin/docker-registry"
# What critest pulls under these registries resolves to the private one (same paths).
MIRRORED = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io")

CriRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def cri_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dcri-", dir="/tmp"))
    yield path
    if not os.environ.get("DPY_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def cri_registry(cri_dir: Path) -> Iterator[str]:
    """docker-registry on a free port, with every image critest asks for."""
    d = cri_dir / "registry"
    src = d / "src"
    src.mkdir(parents=True)
    for helper in ("nnp", "nginx", "pause"):
        subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(src / helper),
                        str(KIT / f"{helper}.c")], check=True, capture_output=True)
    tar = subprocess.run(["sh", str(KIT / "make-busybox-rootfs.sh"), str(d / "bb")],
                         check=True, capture_output=True, text=True).stdout.strip()
    addr = f"127.0.0.1:{free_port()}"
    (d / "config.yml").write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {d}/data}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: {addr}}}\n")
    with open(d / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(d / "config.yml")],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                preexec_fn=die_with_test_run)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited: {(d / 'registry.log').read_text()}")
            try:
                urllib.request.urlopen(f"http://{addr}/v2/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run([sys_python(), str(KIT / "mkimages.py"), "--registry", addr,
                        "--base", tar, "--nnp", str(src / "nnp"), "--nginx",
                        str(src / "nginx"), "--pause", str(src / "pause")],
                       check=True, capture_output=True)
        yield addr
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def sys_python() -> str:
    return shutil.which("python3") or "python3"


def cni_config(tmp: Path) -> tuple[Path, str, str]:
    """A conflist of the test's own: bridge name and subnet derived from its directory."""
    h = int(uuid.uuid5(uuid.NAMESPACE_URL, str(tmp)).hex[:8], 16)
    bridge = f"dcni{h & 0xFFFFF:05x}"
    subnet = f"10.{200 + h % 40}.{(h >> 8) % 256}.0/24"
    conf = tmp / "cni" / "net.d"
    conf.mkdir(parents=True)
    (conf / "10-crit.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": f"crit-{h & 0xFFFF:04x}", "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(tmp / "cni" / "ipam"),
                      "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": subnet}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"}]}))
    return conf, bridge, subnet


@pytest.fixture(scope="session")
def cri_daemon(cri_dir: Path, cri_registry: str) -> Iterator[Daemon]:
    tmp = cri_dir / "d"
    tmp.mkdir()
    conf, bridge, _ = cni_config(tmp)
    cfg = network_config(tmp)
    cfg["registry-mirrors"] = [f"http://{cri_registry}"]
    cfg["registry-hosts"] = {r: {"mirrors": [f"http://{cri_registry}"]} for r in MIRRORED}
    cfg["cri"] = {"cni-conf-dir": str(conf), "cni-bin-dir": "/usr/lib/cni"}
    (tmp / "daemon.json").write_text(json.dumps(cfg))
    sock = tmp / "cri.sock"
    firewall_before = iptables_save()
    d = Daemon(tmp, extra_args=("--cri-socket", str(sock)))
    d.cri_sock = str(sock)  # type: ignore[attr-defined]
    (tmp / "crictl.yaml").write_text(
        f"runtime-endpoint: unix://{sock}\nimage-endpoint: unix://{sock}\ntimeout: 60\n")
    d.start()
    yield d
    run = [str(CRICTL), "--config", str(tmp / "crictl.yaml"), "rmp", "-fa"]
    subprocess.run(run, capture_output=True, timeout=120, check=False)
    stop_and_check(d, tmp)
    left = [p for p in (tmp / "cni" / "ipam").glob("*/*")
            if not p.name.startswith(("last", "lock"))]
    problems = [f"CNI allocation left: {p}" for p in left]
    if os.path.exists(f"/sys/class/net/{bridge}"):
        subprocess.run(["ip", "link", "del", bridge], check=False)
    drop_unused_shared_chains(firewall_before)  # portmap's, when this session made them
    if problems:
        pytest.fail("\n".join(problems))


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
