"""The build cache: a rebuild with no change reuses every step and gives the same image;
a changed file re-runs from the first step that reads it; content and mode count, mtime
alone does not; --no-cache; the cache survives a daemon restart; builder prune and
system df account for it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")

DOCKERFILE = """FROM busybox
RUN echo first > /first
COPY app.txt /app.txt
RUN cat /app.txt > /copied
COPY other.txt /other.txt
"""


def _steps(output: str) -> list[str]:
    """Per step: "cache" or "run", in order (FROM excluded)."""
    out = []
    for block in output.split("Step ")[2:]:
        out.append("cache" if " ---> Using cache\n" in block else "run")
    return out


def _context(make_context: Callable[..., Path]) -> Path:
    return make_context({"Dockerfile": DOCKERFILE, "app.txt": "v1\n", "other.txt": "o\n"})


def test_rebuild_without_change_is_fully_cached(make_context: Callable[..., Path],
                                                build: Any, unique_name: Any) -> None:
    ctx = _context(make_context)
    tag = unique_name("cache")
    first = build(ctx, "-t", tag)
    assert _steps(first.stdout) == ["run"] * 4
    second = build(ctx, "-t", tag)
    assert _steps(second.stdout) == ["cache"] * 4
    assert second.image_id == first.image_id
    assert "Running in" not in second.stdout


def test_changed_file_reruns_from_the_step_that_reads_it(make_context: Callable[..., Path],
                                                         build: Any, docker: Any,
                                                         unique_name: Any) -> None:
    ctx = _context(make_context)
    tag = unique_name("cache")
    first = build(ctx, "-t", tag)
    (ctx / "app.txt").write_text("v2\n")
    second = build(ctx, "-t", tag)
    assert _steps(second.stdout) == ["cache", "run", "run", "run"]
    assert second.image_id != first.image_id
    assert run_in(docker, tag, "cat", "/copied").stdout == "v2\n"


def test_mtime_alone_does_not_bust_but_mode_does(make_context: Callable[..., Path],
                                                 build: Any, unique_name: Any) -> None:
    ctx = _context(make_context)
    tag = unique_name("cache")
    first = build(ctx, "-t", tag)
    later = time.time() + 3600
    os.utime(ctx / "app.txt", (later, later))
    assert _steps(build(ctx, "-t", tag).stdout) == ["cache"] * 4
    os.chmod(ctx / "app.txt", 0o600)
    assert _steps(build(ctx, "-t", tag).stdout) == ["cache", "run", "run", "run"]
    assert first.image_id


def test_no_cache_runs_everything(make_context: Callable[..., Path], build: Any,
                                  unique_name: Any) -> None:
    ctx = _context(make_context)
    tag = unique_name("cache")
    build(ctx, "-t", tag)
    assert _steps(build(ctx, "-t", tag, "--no-cache").stdout) == ["run"] * 4


def test_build_args_in_effect_are_part_of_the_key(make_context: Callable[..., Path],
                                                  build: Any, unique_name: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nARG V=1\nRUN echo $V > /v\n"})
    tag = unique_name("cache")
    build(ctx, "-t", tag)
    assert _steps(build(ctx, "-t", tag).stdout) == ["cache", "cache"]
    # the ARG step itself records its default, as the reference: only the RUN re-runs
    assert _steps(build(ctx, "-t", tag, "--build-arg", "V=2").stdout) == ["cache", "run"]


def test_cache_survives_restart(make_context: Callable[..., Path], build: Any, daemon: Any,
                                unique_name: Any) -> None:
    ctx = _context(make_context)
    tag = unique_name("cache")
    first = build(ctx, "-t", tag)
    daemon.restart()
    second = build(ctx, "-t", tag)
    assert _steps(second.stdout) == ["cache"] * 4
    assert second.image_id == first.image_id


def test_system_df_and_builder_prune(make_context: Callable[..., Path], build: Any,
                                     docker: Any, unique_name: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN head -c 100000 /dev/zero > /blob\n"
                                      f"RUN echo {unique_name('x')} > /mark\n"})
    build(ctx)  # untagged: the whole cache is prunable
    df = json.loads(docker("system", "df", "--format", "{{json .}}").stdout.splitlines()[-1])
    assert df["Type"] == "Build Cache"
    assert int(df["TotalCount"]) >= 2
    verbose = docker("system", "df", "-v").stdout
    assert "Build cache usage:" in verbose
    pruned = docker("builder", "prune", "-f").stdout
    assert "Total reclaimed space:" in pruned
    assert "Deleted build cache objects:" in pruned
    rebuilt = build(ctx)
    assert _steps(rebuilt.stdout) == ["run", "run"]


def test_builder_prune_until(make_context: Callable[..., Path], build: Any,
                             docker: Any, unique_name: Any) -> None:
    """--filter until= takes what dockerd's filter takes (a duration, an RFC 3339 time,
    seconds): entries made after it stay, those made before go; a bad value is refused."""
    ctx = make_context({"Dockerfile": f"FROM busybox\nRUN echo {unique_name('u')} > /mark\n"})
    build(ctx)
    for until in ("1h", "2000-01-01T00:00:00Z", "946684800"):
        docker("builder", "prune", "-f", "--filter", f"until={until}")
        assert _steps(build(ctx).stdout) == ["cache"], until
    docker("builder", "prune", "-f", "--filter", "until=0s")  # made before now: pruned
    assert _steps(build(ctx).stdout) == ["run"]
    bad = docker("builder", "prune", "-f", "--filter", "until=soon", check=False)
    assert bad.returncode == 1
    assert 'failed to parse value as time or duration: "soon"' in bad.stderr, bad.stderr


def test_copy_layers_are_reproducible(make_context: Callable[..., Path], build: Any,
                                      docker: Any, unique_name: Any) -> None:
    """The same COPY/WORKDIR steps on the same base give the same layer digests, cache
    or no cache (RUN layers keep the times their commands write)."""
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY app /srv/app\nWORKDIR /srv/work\n"
                                      "COPY top.txt .\n",
                        "app/main.txt": "main\n", "app/lib/util.txt": "util\n",
                        "top.txt": "top\n"})
    layers = []
    for _ in range(2):
        tag = unique_name("repro")
        build(ctx, "--no-cache", "-t", tag)
        layers.append(docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", tag).stdout)
    assert layers[0] == layers[1]
    assert len(json.loads(layers[0])) == 4
