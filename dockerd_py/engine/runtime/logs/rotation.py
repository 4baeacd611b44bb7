"""Log rotation: max-size/max-file (and compress) on top of conmon's single log file.

dockerd's json-file and local drivers rotate at `max-size` keeping `max-file`
files; conmon 2.1.6 can only truncate. So the daemon rotates: `LogRotator`
notices (inotify IN_MODIFY) that container.log reached max-size, renames
container.log.(i) -> .(i+1) and container.log -> .1, and asks conmon to reopen
(ctl type 2), which starts a new empty container.log. Records written between
the rename and the reopen land at the end of .1, so nothing is lost or
reordered. With max-file 1 the reopen alone truncates, as json-file does.

With compress, as dockerd: the rotated files are container.log.1.gz ...; .1 is
compressed once conmon has let go of it, i.e. once a new container.log exists
(conmon creates it only when it reopens), in a thread. A rotation that finds
.1 not yet compressed waits for that compression and is retried after it.

Contract: `RotationPolicy` (the drivers module reads the options into one);
`rotate(log_dir, max_file, reopen, compress)` performs one rotation;
`compress_rotated(log_dir)` compresses a closed .1; `LogRotator` rotates the
logs of running containers (add when one starts, discard when it stops), one
inotify descriptor for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from ..inotify import IN_CREATE, IN_MODIFY, IN_MOVED_TO, Inotify
from .records import LOG_NAME, log_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RotationPolicy:
    max_size: int | None = None   # bytes; None: never rotate (json-file's default)
    max_file: int = 1
    compress: bool = False        # rotated files gzip-compressed (needs max_file >= 2)


# --- rotation -----------------------------------------------------------------------

def _existing(base: str, i: int) -> str | None:
    for path in (f"{base}.{i}", f"{base}.{i}.gz"):
        if os.path.exists(path):
            return path
    return None


def rotate(log_dir: str, max_file: int, reopen: Callable[[], None],
           compress: bool = False) -> bool:
    """Shifts container.log -> .1 -> .2 ... keeping max_file files, then reopen()
    (conmon starts a new container.log). max_file 1: reopen alone truncates.
    With compress, an uncompressed .1 must be compressed first: False, nothing done."""
    if max_file > 1:
        base = log_path(log_dir)
        if not os.path.exists(base):
            return True  # a rotation is already waiting for its reopen
        if compress and os.path.exists(f"{base}.1"):
            return False
        for suffix in ("", ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{base}.{max_file - 1}{suffix}")
        for i in range(max_file - 2, 0, -1):
            old = _existing(base, i)
            if old is not None:
                os.rename(old, f"{base}.{i + 1}{'.gz' if old.endswith('.gz') else ''}")
        try:
            os.rename(base, f"{base}.1")
        except FileNotFoundError:
            return True  # a rotation is already waiting for its reopen
        try:
            reopen()
        except Exception:
            # The container is gone: nothing will write a new container.log.
            with contextlib.suppress(OSError):
                if not os.path.exists(base):
                    os.rename(f"{base}.1", base)
            raise
        return True
    reopen()
    return True


def compress_rotated(log_dir: str) -> None:
    """container.log.1 -> .1.gz, once conmon has reopened (a new container.log exists)."""
    base = log_path(log_dir)
    src = f"{base}.1"
    if not (os.path.exists(base) and os.path.exists(src)):
        return
    tmp = f"{src}.gz.tmp"
    try:
        with open(src, "rb") as fin, \
                open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600),
                     "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        os.rename(tmp, f"{src}.gz")  # readers take .1 while both exist
    except FileNotFoundError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return
    os.unlink(src)


@dataclass(frozen=True)
class _Entry:
    log_dir: str
    policy: RotationPolicy
    reopen: Callable[[], None]
    running: Callable[[], bool]


class LogRotator:
    """Rotates the logs of running containers at their max-size (one inotify fd).

    add(key, log_dir, policy, reopen, running) when a container with a max-size
    starts (or is found running after a daemon restart: add() checks at once);
    discard(key) when it stops. reopen is Monitor.reopen_log bound to the process;
    running tells whether it still runs (an exit may be seen here before discard).
    """

    def __init__(self) -> None:
        self._notify: Inotify | None = None
        self._entries: dict[str, _Entry] = {}
        self._wds: dict[int, str] = {}
        self._keys_wd: dict[str, int] = {}
        self._compressing: dict[str, asyncio.Task[None]] = {}

    def add(self, key: str, log_dir: str, policy: RotationPolicy,
            reopen: Callable[[], None], running: Callable[[], bool] = lambda: True) -> None:
        if policy.max_size is None:
            return
        if self._notify is None:
            self._notify = Inotify()
            asyncio.get_running_loop().add_reader(self._notify.fd, self._on_events)
        self.discard(key)
        self._entries[key] = _Entry(log_dir, policy, reopen, running)
        wd = self._notify.add_watch(log_dir, IN_MODIFY | IN_MOVED_TO | IN_CREATE)
        self._wds[wd] = key
        self._keys_wd[key] = wd
        self._compress(key)  # one left from before a daemon restart
        self.check(key)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)
        wd = self._keys_wd.pop(key, None)
        if wd is not None and self._notify is not None:
            self._wds.pop(wd, None)
            self._notify.rm_watch(wd)

    def check(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        policy = entry.policy
        assert policy.max_size is not None
        try:
            size = os.path.getsize(log_path(entry.log_dir))
        except FileNotFoundError:
            return
        # local's max-size 0 rotates at every write; an empty file is never rotated.
        if size == 0 or size < policy.max_size or not entry.running():
            return
        try:
            if not rotate(entry.log_dir, policy.max_file, entry.reopen, policy.compress):
                self._compress(key)  # rotates again once .1 is compressed
        except Exception as e:  # a stopped monitor: nothing more will be written
            log.warning("log rotation of %s failed: %s", key, e)

    def _compress(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None or not entry.policy.compress or key in self._compressing:
            return
        self._compressing[key] = asyncio.get_running_loop().create_task(
            self._compress_then_check(key, entry.log_dir))

    async def _compress_then_check(self, key: str, log_dir: str) -> None:
        try:
            await asyncio.to_thread(compress_rotated, log_dir)
        except OSError as e:
            log.warning("compressing the rotated log of %s failed: %s", key, e)
        finally:
            self._compressing.pop(key, None)
        self.check(key)

    def _on_events(self) -> None:
        assert self._notify is not None
        modified: set[str] = set()
        reopened: set[str] = set()
        for wd, mask, name in self._notify.read_events():
            key = self._wds.get(wd)
            if key is not None and name == LOG_NAME:
                (modified if mask & IN_MODIFY else reopened).add(key)
        for key in reopened:  # conmon has let go of .1
            self._compress(key)
        for key in modified | reopened:
            self.check(key)

    def close(self) -> None:
        if self._notify is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._notify.fd)
            self._notify.close()
            self._notify = None
        for task in self._compressing.values():
            task.cancel()
        self._compressing.clear()
        self._entries.clear()
        self._wds.clear()
        self._keys_wd.clear()
