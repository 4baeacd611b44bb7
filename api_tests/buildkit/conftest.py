"""Fixtures for BuildKit tests: the stock buildx plugin as the `docker build` of a CLI
whose DOCKER_CONFIG holds it (../shared/tools/docker-buildx), against the test daemon.

  buildx_env            the CLI environment with the plugin installed
  bx(*args, ...)        `docker <args>` with that environment -> CompletedProcess
  make_context(files)   a fresh directory with {relative path: text | bytes} in it
  leftovers()           containers, build directories, mounts, runtime state, active
                        snapshots a build may leave behind (all must be empty after one)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..build.conftest import active_snapshots
from ..conftest import DOCKER_CLI, _mounts_under

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDX = Path(os.environ.get("DPY_BUILDX", REPO_ROOT.parent.parent / "shared" / "tools"
                             / "docker-buildx"))
if not BUILDX.exists():
    BUILDX = Path("/work/shared/tools/docker-buildx")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def buildx_env(daemon: Any, session_dir: Path) -> dict[str, str]:
    cfg = session_dir / "buildx-cfg"
    plugins = cfg / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "docker-buildx").exists():
        shutil.copy(BUILDX, plugins / "docker-buildx")
    env = daemon.cli_env()
    env.update(DOCKER_CONFIG=str(cfg), BUILDX_NO_DEFAULT_ATTESTATIONS="1")
    env.pop("DOCKER_BUILDKIT", None)
    return env


@pytest.fixture
def bx(buildx_env: dict[str, str], daemon: Any, docker: Any) -> Iterator[Run]:
    tags: list[str] = []

    def run(*args: object, check: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True
        argv = [DOCKER_CLI, *map(str, args)]
        for i, a in enumerate(argv):
            if a in ("-t", "--tag") and i + 1 < len(argv):
                tags.append(argv[i + 1])
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**buildx_env, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} exited with {proc.returncode}\n"
                                 f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
                                 f"--- daemon log ---\n{daemon.log_tail()}")
        return proc

    yield run
    if tags:
        docker("rmi", "-f", *tags, check=False)


@pytest.fixture
def leftovers(daemon: Any, docker: Any) -> Callable[[], list[str]]:
    def find() -> list[str]:
        found = [f"container {c}" for c in docker("ps", "-aq").stdout.split()]
        builder_dir = daemon.data_root / "builder"
        if builder_dir.is_dir():
            # cache-mounts: RUN --mount=type=cache's store, kept between builds by design
            found += [f"build dir {p}" for p in builder_dir.iterdir()
                      if p.name != "cache-mounts"]
        found += [f"mount {m}" for m in _mounts_under(builder_dir)]
        runc_root = daemon.exec_root / "runtime-runc"
        if runc_root.is_dir():
            found += [f"runc state {p.name}" for p in runc_root.iterdir()
                      if re.fullmatch(r"[0-9a-f]{64}", p.name)]
        # (build cgroups are not checked here: other daemons on the host share the parent)
        found += [f"active snapshot {s}" for s in active_snapshots(daemon)]
        sessions = daemon.exec_root / "buildkit"
        if sessions.is_dir():
            found += [f"session socket {p}" for p in sessions.rglob("session*.sock")]
        return found
    return find
