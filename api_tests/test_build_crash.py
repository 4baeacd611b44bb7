"""A daemon killed mid-build leaves mounts; the next start removes them (issue 14, item 11).

`kill -9` of the daemon while RUN steps sleep in two stages built at once: the steps'
root filesystems (overlays under <data root>/builder) stay mounted, and the step
containers keep running. The next start must unmount every mount under the builder
directory and remove the build directories, stop the orphaned step containers, and
leave nothing mounted under the data root that no container owns, without touching a
mount outside the data root (one whose path merely starts with the data root's is
planted to check that). A build then works as before.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DOCKER_CLI, Daemon, _mounts_under

DOCKERFILE = """\
FROM busybox AS one
RUN echo one > /one && sleep 600
FROM busybox AS two
RUN echo two > /two && sleep 600
FROM busybox
COPY --from=one /one /one
COPY --from=two /two /two
"""


_orphans: list[int] = []  # the steps' processes, killed after the test if still there


@pytest.fixture
def crash_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="dpc-", dir="/tmp"))
    d = Daemon(tmp)
    d.start()
    try:
        _cli(d, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        d.stop()
        for pid in _alive(_orphans):
            os.kill(pid, signal.SIGKILL)
        for point in _mounts_under(tmp):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _cli(d: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True, env=d.cli_env(),
                       timeout=300)
    assert r.returncode == 0, f"docker {args}: {r.stderr}\n{d.log_tail()}"
    return r


def _sleepers(d: Daemon) -> list[int]:
    """The build steps' `sleep 600`: in the cgroup of a step whose directory is under this
    daemon's builder directory (the cgroup is named after the step's key)."""
    found = []
    steps = {p.name for p in (d.data_root / "builder").glob("*/*")}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if f.read() != b"sleep\x00600\x00":
                    continue
            with open(f"/proc/{entry}/cgroup") as f:
                keys = set(re.findall(r"/([0-9a-f]{64})\b", f.read()))
        except OSError:
            continue
        if any(key[:12] in steps for key in keys):
            found.append(int(entry))
    return found


def _alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == b"sleep\x00600\x00":
                    out.append(pid)
        except OSError:
            pass
    return out


def _wait(predicate, what: str, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_kill9_mid_build_leaves_no_mounts(crash_daemon: Daemon, tmp_path: Path) -> None:
    d = crash_daemon
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    # A mount outside the data root whose path starts with the data root's.
    neighbour = Path(str(d.data_root) + "-neighbour")
    neighbour.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(neighbour)],
                   check=True)
    try:
        build = subprocess.Popen([DOCKER_CLI, "build", "-q", str(context)], env=d.cli_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: len(_sleepers(d)) == 2, "both RUN steps to sleep")
            _orphans[:] = _sleepers(d)
            builder = d.data_root / "builder"
            assert len(_mounts_under(builder)) >= 2, "the steps' root filesystems are mounted"
            d.stop(signal.SIGKILL)
        finally:
            build.kill()
            build.wait()
        d.start()
        left = _mounts_under(d.data_root)
        assert not left, f"mounts left under the data root: {left}"
        assert not list((d.data_root / "builder").iterdir()), "build directories left"
        _wait(lambda: not _alive(_orphans), "the orphaned build steps to be stopped", 30)
        runc_root = d.exec_root / "runtime-runc"
        orphans = [p.name for p in runc_root.iterdir() if re.fullmatch(r"[0-9a-f]{64}", p.name)] \
            if runc_root.is_dir() else []
        assert not orphans, f"runtime state of build steps left: {orphans}"
        assert str(neighbour) in _mounts_under(neighbour), "a mount outside the data root went"
        # The daemon builds as before.
        (context / "Dockerfile").write_text("FROM busybox\nRUN echo fine > /fine\n")
        _cli(d, "build", "-q", str(context))
    finally:
        subprocess.run(["umount", "-l", str(neighbour)], capture_output=True, check=False)
        neighbour.rmdir()
