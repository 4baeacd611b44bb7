"""The pid file, guarded by an exclusive lock.

The lock, not the pid, decides whether another daemon is alive: a daemon that
was killed (even with -9) releases its lock, so its stale pid file never stops
the next start, while a live daemon on the same file always does.
"""

from __future__ import annotations

import fcntl
import os

from .errors import Conflict


class PidFile:
    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"pid file found, ensure dockerd-py is not running or delete "
                           f"{self.path}") from None
        os.fchmod(fd, 0o644)  # as dockerd's, whatever the daemon's umask
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None


class DirLock:
    """An exclusive lock on a directory's `.lock` file, held for the daemon's life."""

    def __init__(self, directory: str, what: str) -> None:
        self._path = os.path.join(directory, ".lock")
        self._what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"{self._what} {os.path.dirname(self._path)} is in use by another "
                           "daemon") from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
