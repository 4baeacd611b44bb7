"""`docker info` lists each runtime with the path the daemon really runs, as dockerd does
(daemon.json's path, or the binary it found), never a bare name it did not resolve."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import dockerd_py

WRAPPER = Path(dockerd_py.__file__).resolve().parent.parent / "contrib" / "crun-hybrid"


def expected_crun() -> str:
    """On a cgroup v1 hybrid host crun runs through the wrapper; else the crun on PATH."""
    if os.path.ismount("/sys/fs/cgroup/unified") and os.access(WRAPPER, os.X_OK):
        return str(WRAPPER)
    return shutil.which("crun") or ""


def info_runtimes(docker) -> dict[str, dict[str, str]]:
    out = json.loads(docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert isinstance(out, dict)
    return out


@pytest.mark.skipif(not shutil.which("crun"), reason="crun is not installed")
def test_crun_path_is_resolved(docker) -> None:
    runtimes = info_runtimes(docker)
    assert runtimes["crun"] == {"path": expected_crun()}
    assert os.path.isabs(runtimes["crun"]["path"])
    assert runtimes["runc"] == {"path": "runc"}  # the stock runtime, shown as dockerd does


@pytest.mark.skipif(not shutil.which("crun"), reason="crun is not installed")
def test_the_listed_crun_runs_containers(docker, busybox_image, unique_name) -> None:
    """The path shown is the one a --runtime crun container runs with."""
    path = info_runtimes(docker)["crun"]["path"]
    assert os.access(path, os.X_OK)
    name = unique_name("crunpath")
    r = docker("run", "--rm", "--name", name, "--runtime", "crun", busybox_image,
               "echo", "ran")
    assert r.stdout == "ran\n"
