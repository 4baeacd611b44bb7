"""A full disk during a snapshot prepare or commit (issue 14, item 9).

A daemon whose data root is a small tmpfs loads an image whose layer does not fit:
the load fails with the disk's error, and once the space is back (nothing to do here:
the failed layer must have been removed) loads and runs work again without a restart.

A prepare whose transaction fails after its directory was renamed into place (a full
disk failing the COMMIT) leaves snapshots/<id> behind while AUTOINCREMENT hands the same
id to the next prepare. That state is made directly (a directory at the next id) and
every later prepare must still work, and the leftover go.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import archives as A
from .conftest import DOCKER_CLI, Daemon, _mounts_under

MB = 1 << 20
TMPFS_MB = 48


@pytest.fixture
def small_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="dpf-", dir="/tmp"))
    d = Daemon(tmp)
    d.data_root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m,mode=0710", "tmpfs",
                    str(d.data_root)], check=True)
    try:
        d.start()
        _cli(d, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        d.stop()
        for point in _mounts_under(tmp):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _cli(d: Daemon, *args: str, input: bytes | None = None,
         check: bool = True) -> subprocess.CompletedProcess[bytes]:
    r = subprocess.run([DOCKER_CLI, *args], input=input, capture_output=True,
                       env=d.cli_env(), timeout=300)
    if check:
        assert r.returncode == 0, f"docker {args}: {r.stderr!r}\n{d.log_tail()}"
    return r


def _snapshot_dirs(d: Daemon) -> set[str]:
    return {e for e in os.listdir(d.data_root / "snapshots") if e.isdigit()}


def _snapshot_ids(d: Daemon) -> set[str]:
    conn = sqlite3.connect(f"file:{d.data_root / 'metadata.db'}?mode=ro", uri=True)
    try:
        return {str(r[0]) for r in conn.execute("SELECT id FROM snapshots")}
    finally:
        conn.close()


def _next_snapshot_id(d: Daemon) -> int:
    conn = sqlite3.connect(f"file:{d.data_root / 'metadata.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'snapshots'").fetchone()
    finally:
        conn.close()
    return (row[0] if row else 0) + 1


def _works(d: Daemon, tag: str) -> None:
    """A load and a run, as any client would do next."""
    small = A.docker_archive([A.rootfs(f"after-{tag}")], [f"after-{tag}:1"])
    _cli(d, "load", input=small.data)
    out = _cli(d, "run", "--rm", "busybox", "echo", "alive").stdout
    assert out == b"alive\n"
    _cli(d, "rmi", f"after-{tag}:1")


def test_layer_that_does_not_fit(small_daemon: Daemon) -> None:
    d = small_daemon
    big = A.tar_bytes([A.reg("big", bytes(TMPFS_MB * 2 * MB))])
    layer = gzip.compress(big, 1)
    archive = A.docker_archive([layer], ["toobig:1"], diff_ids=[A.sha256(big)])
    r = _cli(d, "load", input=archive.data, check=False)
    assert r.returncode != 0
    assert b"no space left on device" in r.stderr.lower(), r.stderr
    assert _cli(d, "images", "-q", "toobig:1").stdout == b""
    _works(d, "enospc")
    # Nothing of the failed layer is left taking the space.
    assert _snapshot_dirs(d) <= _snapshot_ids(d)


def test_leftover_directory_at_the_next_id(small_daemon: Daemon) -> None:
    d = small_daemon
    leftover = d.data_root / "snapshots" / str(_next_snapshot_id(d))
    (leftover / "fs").mkdir(parents=True)
    (leftover / "fs" / "stale").write_text("from a prepare whose COMMIT failed\n")
    _works(d, "leftover")
    _works(d, "again")
    assert not (leftover / "fs" / "stale").exists()
    assert _snapshot_dirs(d) <= _snapshot_ids(d)
