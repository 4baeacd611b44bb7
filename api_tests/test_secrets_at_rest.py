"""Secrets at rest: no local user but root reads them under the data root (issue 14, item 5).

A container started with `-e PASSWORD=...` that prints it to its log, and a volume created
with `-o o=password=...`, put secrets in the metadata database, its WAL, the container's
log and its writable layer. An unprivileged user (nobody, through setpriv) then searches
the whole data root with grep: nothing it can read holds them. The database and its WAL
are 0600, the directories have dockerd's modes, and what containers need stays readable
by them (a non-root container user reads /etc/hosts and lists its root and a volume).

A data root left by an older daemon (metadata.db 0644 and 0755 directories, as today's
main leaves them) is tightened at the next start.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DOCKER_CLI, Daemon, _mounts_under

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def secret_daemon(busybox_tar: Path) -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="dpk-", dir="/tmp"))
    tmp.chmod(0o755)  # the data root's own modes are what is tested, not mkdtemp's
    d = Daemon(tmp)
    d.start()
    try:
        _cli(d, "import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        subprocess.run([DOCKER_CLI, "rm", "-f", "-v", "keeper", "stopped"], env=d.cli_env(),
                       capture_output=True, timeout=120)
        d.stop()
        for point in _mounts_under(tmp):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _cli(d: Daemon, *args: str) -> str:
    r = subprocess.run([DOCKER_CLI, *args], capture_output=True, text=True, env=d.cli_env(),
                       timeout=300)
    assert r.returncode == 0, f"docker {args}: {r.stderr}\n{d.log_tail()}"
    return r.stdout


def _readable_by_nobody(root: Path, secrets: list[str]) -> list[str]:
    """Files under root that nobody can open by their path and that hold a secret. Root
    lists them (a directory nobody may only traverse hides its names, not its files); nobody's
    grep then opens each by path."""
    files = [os.path.join(top, name) for top, _, names in os.walk(root) for name in names
             if stat.S_ISREG(os.lstat(os.path.join(top, name)).st_mode)]
    args = [a for s in secrets for a in ("-e", s)]
    r = subprocess.run([*NOBODY, "xargs", "-0", "grep", "-l", "-a", "-s", "-F", *args, "--"],
                       input="\0".join(files), capture_output=True, text=True, timeout=300)
    # grep: 0 found, 1 not found, 2 some files unreadable (-s keeps that quiet); xargs: 123
    assert r.returncode in (0, 1, 2, 123) and not r.stderr, r.stderr
    return r.stdout.split()


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def _plant_secrets(d: Daemon) -> list[str]:
    env_secret, vol_secret = f"envpw-{uuid.uuid4().hex}", f"volpw-{uuid.uuid4().hex}"
    _cli(d, "volume", "create", "-d", "local", "-o", "type=cifs",
         "-o", "device=//127.0.0.1/share", "-o", f"o=username=u,password={vol_secret}", "cifs")
    _cli(d, "run", "-d", "--name", "keeper", "-e", f"PASSWORD={env_secret}", "-v", "data:/data",
         "busybox", "sh", "-c",
         'echo "$PASSWORD"; echo "$PASSWORD" > /written; echo "$PASSWORD" > /data/f; '
         "exec sleep 600")
    _cli(d, "create", "--name", "stopped", "-e", f"PASSWORD={env_secret}", "busybox")
    deadline = time.monotonic() + 60
    while env_secret not in _cli(d, "logs", "keeper"):  # on disk: the log has it
        assert time.monotonic() < deadline, "the container did not print its secret"
        time.sleep(0.1)
    return [env_secret, vol_secret]


def _check_private(d: Daemon, secrets: list[str]) -> None:
    root = d.data_root
    # The volume's data is the user's to share, as with dockerd: only the secret the
    # container wrote into the volume may be found, and only there.
    found = _readable_by_nobody(root, secrets)
    assert all("/volumes/data/_data/" in f for f in found), f"readable by nobody: {found}"
    for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
        if (root / name).exists():
            assert _mode(root / name) == 0o600, f"{name}: {oct(_mode(root / name))}"
    assert _mode(root) == 0o710  # dockerd 20.10's
    assert _mode(root / "containers") == 0o710
    assert _mode(root / "snapshots") == 0o710
    assert _mode(root / "content") == 0o700
    assert _mode(root / "volumes") == 0o701


def test_secrets_not_readable_by_other_users(secret_daemon: Daemon) -> None:
    d = secret_daemon
    secrets = _plant_secrets(d)
    _check_private(d, secrets)
    # Containers still read what they need as a non-root user.
    out = _cli(d, "run", "--rm", "-u", "65534:65534", "-v", "data:/data", "busybox", "sh", "-c",
               "cat /etc/hosts >/dev/null && ls / >/dev/null && ls /data && echo ok")
    assert out.endswith("ok\n"), out
    # A new file the daemon writes for containers has the mode containers expect.
    state = d.data_root / "containers" / _cli(d, "inspect", "-f", "{{.Id}}", "keeper").strip()
    assert _mode(state / "hosts") == 0o644


def test_older_data_root_tightened_at_start(secret_daemon: Daemon) -> None:
    d = secret_daemon
    secrets = _plant_secrets(d)
    d.stop()
    # What today's main leaves: the database 0644 and its directories 0755.
    root = d.data_root
    for name in ("metadata.db", "metadata.db-wal", "metadata.db-shm"):
        if (root / name).exists():
            os.chmod(root / name, 0o644)
    for sub in ("content", "snapshots"):
        os.chmod(root / sub, 0o755)
    os.chmod(root, 0o711)
    assert _readable_by_nobody(root, secrets), "the loosened root should leak (test sanity)"
    d.start()
    _check_private(d, secrets)
