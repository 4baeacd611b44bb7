"""Renames are durable before the metadata that names them commits (issue 14, item 12).

strace, attached to a test daemon, records its renames, fsyncs and sqlite's WAL writes
(with the paths of their file descriptors). Then:

  * a snapshot prepare (a `docker run`): on the metadata thread, the rename of the
    staging directory to snapshots/<id> is followed by an fsync of snapshots/ before
    the WAL write that commits its row;
  * a volume create: the same for volumes/<name>;
  * a load: every blob renamed into blobs/sha256/ is followed by an fsync of that
    directory before the image is recorded, and one fsync covers all the archive's
    blobs.

No mock: the real system calls of the real daemon on a real file system.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import archives as A
from .conftest import DOCKER_CLI, Daemon, _mounts_under

_LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")


@pytest.fixture
def traced(busybox_tar: Path) -> Iterator[tuple[Daemon, Path]]:
    tmp = Path(tempfile.mkdtemp(prefix="dpd-", dir="/tmp"))
    d = Daemon(tmp)
    d.start()
    trace, attached = tmp / "strace.log", tmp / "strace.err"
    assert d.proc is not None
    with open(attached, "wb") as err:
        strace = subprocess.Popen(["strace", "-f", "-y", "-p", str(d.proc.pid), "-o", str(trace),
                                   "-e", "trace=rename,renameat,renameat2,fsync,pwrite64"],
                                  stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while " attached" not in attached.read_text():  # after it attached to every thread
            assert strace.poll() is None, f"strace failed: {attached.read_text()}"
            assert time.monotonic() < deadline, "strace did not attach"
            time.sleep(0.05)
        _cli(d, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d, trace
    finally:
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=30)
        subprocess.run([DOCKER_CLI, "rm", "-f", "-v", "durable"], env=d.cli_env(),
                       capture_output=True, timeout=120)
        d.stop()
        for point in _mounts_under(tmp):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _cli(d: Daemon, *args: str, input: bytes | None = None) -> None:
    r = subprocess.run([DOCKER_CLI, *args], input=input, capture_output=True, env=d.cli_env(),
                       timeout=300)
    assert r.returncode == 0, f"docker {args}: {r.stderr!r}\n{d.log_tail()}"


def _calls(trace: Path) -> list[tuple[int, str, str]]:
    """(thread, syscall, arguments) of the successful calls, in order."""
    out = []
    for line in trace.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m and int(m.group(4)) >= 0:
            out.append((int(m.group(1)), m.group(2), m.group(3)))
    return out


def _durable_before_commit(calls: list[tuple[int, str, str]], directory: str,
                           entry: re.Pattern[str]) -> int:
    """For each rename into directory matching entry: on the same thread, an fsync of
    directory follows before the next WAL write. Returns how many were checked."""
    checked = 0
    for i, (tid, name, args) in enumerate(calls):
        if not name.startswith("rename"):
            continue
        target = re.findall(r'"([^"]+)"', args)[-1]
        if not entry.fullmatch(target.removeprefix(directory + "/")):
            continue
        synced = False
        for later_tid, later, later_args in calls[i + 1:]:
            if later_tid != tid:
                continue
            if later == "fsync" and f"<{directory}>" in later_args:
                synced = True
            if later == "pwrite64" and "metadata.db-wal>" in later_args:
                break
        assert synced, f"rename to {target} not fsynced before its row was written"
        checked += 1
    return checked


def test_snapshot_and_volume_renames_fsynced_before_their_rows(traced) -> None:  # type: ignore[no-untyped-def]
    d, trace = traced
    _cli(d, "volume", "create", "durable-vol")
    _cli(d, "run", "--name", "durable", "-v", "durable-vol:/v", "busybox", "true")
    calls = _calls(trace)
    snapshots = str(d.data_root / "snapshots")
    assert _durable_before_commit(calls, snapshots, re.compile(r"\d+")) >= 1
    volumes = str(d.data_root / "volumes")
    assert _durable_before_commit(calls, volumes, re.compile(r"durable-vol")) == 1


def test_load_fsyncs_blob_names_once(traced) -> None:  # type: ignore[no-untyped-def]
    d, trace = traced
    layers = [A.rootfs(f"durable-{i}") for i in range(3)]
    archive = A.docker_archive(layers, ["durable-load:1"])
    before = len(_calls(trace))
    _cli(d, "load", input=archive.data)
    calls = _calls(trace)[before:]
    blobs = str(d.data_root / "content" / "blobs" / "sha256")
    renamed = [(i, c) for i, c in enumerate(calls)
               if c[1].startswith("rename") and f'"{blobs}/' in c[2]]
    syncs = [i for i, c in enumerate(calls) if c[1] == "fsync" and f"<{blobs}>" in c[2]]
    assert len(renamed) >= 4, renamed  # three layers, a config, manifest.json
    assert len(syncs) == 1, "one directory fsync for the whole archive"
    assert syncs[0] > max(i for i, _ in renamed)
    # ... and before the image row: the image's transaction writes the WAL after it.
    assert any(c[1] == "pwrite64" and "metadata.db-wal>" in c[2] for c in calls[syncs[0]:])
