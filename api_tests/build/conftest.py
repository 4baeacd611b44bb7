"""Fixtures for builder tests: a context directory maker and `docker build` through the CLI.

  make_context(files)    a fresh directory with {relative path: text | bytes} written in it
  build(ctx, *args, ...) `docker build` on ctx -> BuildResult (rc, stdout, stderr, image ID);
                         every tag it makes is removed after the test
  image_config(ref)      the image's config document as the daemon stores it (docker save)
  build_leftovers()      containers, runtime state, mounts, snapshots-in-progress and temp
                         dirs a build may leave behind (all must be empty after a build)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..conftest import _mounts_under


@dataclass
class BuildResult:
    rc: int
    stdout: str
    stderr: str
    image_id: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def build(docker: Any, daemon: Any) -> Iterator[Callable[..., BuildResult]]:
    tags: list[str] = []

    def run(ctx: Path | str, *args: str, input: str | bytes | None = None,
            check: bool = True) -> BuildResult:
        with tempfile.TemporaryDirectory(prefix="iid-", dir="/tmp") as tmp:
            iid = Path(tmp) / "iid"
            argv = ["docker", "build", "--iidfile", str(iid), *args, str(ctx)]
            for i, a in enumerate(args):
                if a in ("-t", "--tag"):
                    tags.append(args[i + 1])
            proc = subprocess.run(argv, input=input, capture_output=True,
                                  env=daemon.cli_env(), timeout=300,
                                  text=not isinstance(input, bytes))
            stdout = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode()
            stderr = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
            image_id = iid.read_text().strip() if proc.returncode == 0 else ""
        if check and proc.returncode != 0:
            raise AssertionError(f"docker build failed ({proc.returncode}):\n{stdout}\n{stderr}")
        return BuildResult(proc.returncode, stdout, stderr, image_id)

    yield run
    if tags:
        docker("rmi", "-f", *tags, check=False)


@pytest.fixture
def image_config(docker: Any, tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    def read(ref: str) -> dict[str, Any]:
        out = tmp_path / "save.tar"
        docker("save", "-o", str(out), ref)
        with tarfile.open(out) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            doc: dict[str, Any] = json.load(
                tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        out.unlink()
        return doc
    return read


@pytest.fixture
def build_leftovers(daemon: Any, docker: Any) -> Callable[[], list[str]]:
    def find() -> list[str]:
        found = []
        ps = docker("ps", "-aq").stdout.split()
        found += [f"container {c}" for c in ps]
        builder_dir = daemon.data_root / "builder"
        if builder_dir.is_dir():
            found += [f"build dir {p}" for p in builder_dir.iterdir()]
        found += [f"mount {m}" for m in _mounts_under(builder_dir)]
        runc_root = daemon.exec_root / "runtime-runc"
        if runc_root.is_dir():
            found += [f"runc state {p.name}" for p in runc_root.iterdir()
                      if re.fullmatch(r"[0-9a-f]{64}", p.name)]
        found += [f"cgroup {p}" for p in _build_cgroups()]
        return found
    return find


def _build_cgroups() -> list[str]:
    """Cgroups of build containers (64-hex names under dockerd-py/) with processes in them."""
    out = []
    for base in ("/sys/fs/cgroup/pids/dockerd-py", "/sys/fs/cgroup/unified/dockerd-py",
                 "/sys/fs/cgroup/dockerd-py"):
        if not os.path.isdir(base):
            continue
        for name in os.listdir(base):
            procs = os.path.join(base, name, "cgroup.procs")
            if re.fullmatch(r"[0-9a-f]{64}", name) and os.path.exists(procs):
                with open(procs) as f:
                    if f.read().strip():
                        out.append(os.path.join(base, name))
    return out


def active_snapshots(daemon: Any) -> list[str]:
    """Names of active (uncommitted) snapshots whose name is a build step key."""
    import sqlite3
    conn = sqlite3.connect(f"file:{daemon.data_root / 'metadata.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name FROM snapshots WHERE kind = 'active'").fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows if re.fullmatch(r"[0-9a-f]{64}", r[0])]


def run_in(docker: Any, image: str, *argv: str) -> Any:
    """`docker run --rm` of a built image, without networking (builds are what is tested)."""
    return docker("run", "--rm", "--network", "none", image, *argv)
