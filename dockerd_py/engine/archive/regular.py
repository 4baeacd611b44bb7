"""Regular files of a tree we do not trust (an image, a container, a build context), read
without ever opening anything else.

Opening a FIFO blocks until a writer comes; opening a device node runs its driver (a
watchdog arms, a terminal becomes the controlling one) and reading it reads the host's
hardware. A file is therefore first held as an O_PATH descriptor, which opens nothing,
checked with fstat, and only a regular file is then opened for reading, through that
descriptor (/proc/self/fd), so the inode checked is the inode read whatever the tree's
owner renames meanwhile:

  * `read_in_root`, for a file named by its path (/etc/passwd, /etc/group): the path is
    resolved inside the root by openat2(RESOLVE_IN_ROOT), as dockerd's
    FollowSymlinkInScope resolves it (a link to /etc/shadow names the tree's own), and the
    file must hold at most `limit` bytes;
  * `open_regular`, for walkers that have just lstat'ed a regular file (no symlink is
    followed). live=False, for trees nothing runs in (a finished build step, an image, a
    build context) and nothing can swap a file in: one open, O_NONBLOCK | O_NOCTTY, then
    fstat; a hot path (layers) saves the O_PATH step there.
"""

from __future__ import annotations

import errno
import os
import stat

from .dirfds import open_in_root

_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# The host's /proc, opened at import, before any thread chroots into a container
# (rootview.py): the /proc found there would be the container's to fake.
_PROC = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


class RefusedFile(OSError):
    """The file exists but is not read: not a regular file, or too large. `op` is the
    operation Go's os package would name in its error ("open", "read")."""

    def __init__(self, code: int, text: str, path: str, op: str) -> None:
        super().__init__(code, text, path)
        self.op = op


def _refuse(path: str, mode: int) -> RefusedFile:
    if stat.S_ISDIR(mode):  # Go opens a directory, and fails reading it
        return RefusedFile(errno.EISDIR, "is a directory", path, "read")
    return RefusedFile(errno.EINVAL, "not a regular file", path, "open")


def _too_large(path: str) -> RefusedFile:
    return RefusedFile(errno.EFBIG, "file too large", path, "read")


def open_regular(name: str, dir_fd: int | None = None, *, live: bool = True) -> int:
    """A descriptor to read the regular file `name` (a final symlink is not followed);
    RefusedFile if it is anything else. live: something may replace the file meanwhile
    (a running container), see the module's doc."""
    if live:
        found = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            mode = os.fstat(found).st_mode
            if not stat.S_ISREG(mode):
                raise _refuse(name, mode)
            return os.open(f"self/fd/{found}", _READ, dir_fd=_PROC)
        finally:
            os.close(found)
    fd = os.open(name, _READ | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(name, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_in_root(root: str, path: str, limit: int) -> bytes | None:
    """The content of the regular file at `path` inside the tree at `root`, or None when
    nothing is there (a missing component, or one that is not a directory). Raises
    RefusedFile for anything but a regular file of at most `limit` bytes, OSError when the
    path does not resolve (ELOOP: a symlink loop)."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            found = open_in_root(root_fd, path.lstrip("/"), os.O_PATH)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(found)
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(path, st.st_mode)
            if st.st_size > limit:
                raise _too_large(path)
            fd = os.open(f"self/fd/{found}", _READ, dir_fd=_PROC)
        finally:
            os.close(found)
    finally:
        os.close(root_fd)
    try:
        chunks, left = [], limit + 1  # one byte more: a file that grew is refused too
        while left and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if not left:
        raise _too_large(path)
    return b"".join(chunks)
