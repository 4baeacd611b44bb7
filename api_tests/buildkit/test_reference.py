"""The same builds through buildx on our daemon and on Docker's dockerd 20.10 (its
built-in BuildKit) started for this module: a failing RUN ends the same way (exit status,
the ERROR lines, the step's output in the error box), a cached rebuild shows the same
CACHED steps."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI
from ..test_reference_interop import Reference


@pytest.fixture(scope="module")
def reference(busybox_tar: Path) -> Iterator[Reference]:
    ref = Reference(Path(tempfile.mkdtemp(prefix="dpybkref-", dir="/tmp")))
    try:
        problem = ref.start()
        if problem:
            pytest.fail(problem)
        ref.run("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")
        yield ref
    finally:
        ref.stop()


def _ref_build(reference: Reference, cfg: str, *args: object
               ) -> subprocess.CompletedProcess[str]:
    env = {**reference.env, "DOCKER_CONFIG": cfg, "BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}
    return subprocess.run([DOCKER_CLI, "build", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300)


def _errors(text: str) -> list[str]:
    """The lines that describe the failure, without the timing columns of step output."""
    lines = [re.sub(r"^(#\d+ )?(\d+\.\d+ )?", "", line) for line in text.splitlines()]
    return [line for line in lines if "ERROR" in line or line.startswith(" > ")]


def test_failing_run_as_the_reference(bx: Any, reference: Reference, buildx_env: dict[str, str],
                                      busybox_image: str,
                                      make_context: Callable[..., Path]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo before; exit 3\n"})
    ours = bx("build", "--progress=plain", "--network", "host", ctx, check=False)
    theirs = _ref_build(reference, buildx_env["DOCKER_CONFIG"], "--progress=plain",
                        "--network", "host", ctx)
    assert theirs.returncode == ours.returncode == 1, theirs.stderr
    assert _errors(ours.stderr) == _errors(theirs.stderr), (ours.stderr, theirs.stderr)


def test_cached_rebuild_as_the_reference(bx: Any, reference: Reference,
                                         buildx_env: dict[str, str], busybox_image: str,
                                         make_context: Callable[..., Path],
                                         unique_name: Callable[..., str]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY a /a\nRUN cat /a\n", "a": "a\n"})
    tag = unique_name("bkref")
    cfg = buildx_env["DOCKER_CONFIG"]
    for _ in range(2):
        ours = bx("build", "--progress=plain", "--network", "host", "-t", tag, ctx)
        theirs = _ref_build(reference, cfg, "--progress=plain", "--network", "host", "-t",
                            tag, ctx)
        assert theirs.returncode == 0, theirs.stderr

    def cached(text: str) -> list[str]:
        names = dict(re.findall(r"^#(\d+) (\[.*)$", text, re.M))
        return sorted(names[n] for n in re.findall(r"^#(\d+) CACHED$", text, re.M))
    assert cached(ours.stderr) == cached(theirs.stderr) != []
    shutil.rmtree(ctx)
