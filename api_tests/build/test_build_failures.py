"""Failed and cancelled builds: Docker's wording and exit codes, and nothing left behind
(no containers, runtime state, cgroups with processes, mounts, active snapshots or build
directories)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import active_snapshots

pytestmark = pytest.mark.usefixtures("busybox_image")


def _no_leftovers(daemon: Any, docker: Any, build_leftovers: Callable[[], list[str]],
                  before: list[str]) -> None:
    containers = set(docker("ps", "-aq", "--no-trunc").stdout.split())
    deadline = time.monotonic() + 30
    while True:
        left = [x for x in build_leftovers() if x not in before]
        snaps = [s for s in active_snapshots(daemon) if s not in containers]
        if not left and not snaps:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: {left} {snaps}")
        time.sleep(0.2)


def test_failing_run_reports_the_exit_code(make_context: Callable[..., Path], build: Any,
                                           daemon: Any, docker: Any,
                                           build_leftovers: Callable[[], list[str]]) -> None:
    before = build_leftovers()
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo out; exit 4\n"})
    result = build(ctx, check=False)
    assert result.rc == 4
    assert "out\n" in result.stdout
    assert "The command '/bin/sh -c echo out; exit 4' returned a non-zero code: 4" \
        in result.stderr
    ctx = make_context({"Dockerfile": 'FROM busybox\nRUN ["sh", "-c", "exit 3"]\n'})
    result = build(ctx, check=False)
    assert result.rc == 3
    assert "The command 'sh -c exit 3' returned a non-zero code: 3" in result.stderr
    _no_leftovers(daemon, docker, build_leftovers, before)


def test_missing_command_is_a_runtime_error(make_context: Callable[..., Path], build: Any,
                                            daemon: Any, docker: Any,
                                            build_leftovers: Callable[[], list[str]]) -> None:
    before = build_leftovers()
    ctx = make_context({"Dockerfile": 'FROM busybox\nRUN ["nosuchcmd"]\n'})
    result = build(ctx, check=False)
    assert result.rc == 1
    assert 'exec: "nosuchcmd": executable file not found in $PATH' in result.stderr
    assert "runc run failed" not in result.stdout  # the runtime's words are not RUN output
    _no_leftovers(daemon, docker, build_leftovers, before)


def test_parse_errors_have_line_numbers_and_a_status(make_context: Callable[..., Path],
                                                     build: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\n\nFOO bar\n"})
    result = build(ctx, check=False)
    assert result.rc == 1
    assert "Error response from daemon: dockerfile parse error line 3: unknown instruction: " \
        "FOO" in result.stderr
    assert "Step 1/" not in result.stdout


def test_missing_base_image(make_context: Callable[..., Path], build: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM localhost:1/nosuch/image:1\nRUN true\n"})
    result = build(ctx, check=False)
    assert result.rc == 1
    assert "Step 1/2 : FROM localhost:1/nosuch/image:1" in result.stdout


def test_failed_stage_cancels_its_siblings(make_context: Callable[..., Path], build: Any,
                                           daemon: Any, docker: Any,
                                           build_leftovers: Callable[[], list[str]]) -> None:
    before = build_leftovers()
    ctx = make_context({"Dockerfile": """FROM busybox AS slow
RUN sleep 1000
FROM busybox AS broken
RUN exit 7
FROM busybox
COPY --from=slow /etc/passwd /a
COPY --from=broken /etc/passwd /b
"""})
    # were the sleeping sibling awaited, not killed, the build would outlive the CLI timeout
    result = build(ctx, "--no-cache", check=False)
    assert result.rc == 7
    assert "The command '/bin/sh -c exit 7' returned a non-zero code: 7" in result.stderr
    _no_leftovers(daemon, docker, build_leftovers, before)


def test_client_going_away_kills_the_build(make_context: Callable[..., Path], daemon: Any,
                                           docker: Any,
                                           build_leftovers: Callable[[], list[str]]) -> None:
    before = build_leftovers()
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo started; sleep 60\n"})
    proc = subprocess.Popen(["docker", "build", "--no-cache", str(ctx)], env=daemon.cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("started"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _no_leftovers(daemon, docker, build_leftovers, before)
