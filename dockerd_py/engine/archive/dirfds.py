"""Directories below an extraction root, held as O_PATH file descriptors.

Every entry of an archive is created relative to its parent directory's descriptor, so
no path is ever resolved from the host's root. How a parent is found depends on the
caller:

  * strict (layers, build contexts): walked one component at a time with O_NOFOLLOW;
    a component that is a symlink or not a directory is reported (`BadParent`), a
    missing one created (0755) or reported (FileNotFoundError);
  * in root (`docker cp`): resolved by openat2(RESOLVE_IN_ROOT), as dockerd's
    go-archive does: symlinks and ".." are followed but never leave the root (a symlink
    to "/" means the root); missing components are created 0755, owned by 0:0.

`open_beneath` is the third reading, for a volume's sub-path: links are followed only
while they stay below the root; one that leaves it is an error, not a rewrite.

Descriptors are cached by path (most recently used kept). A cached path may resolve
differently once a directory or a symlink is removed, so `forget()` drops them all;
descriptors are closed only at `trim()` (between entries) or `close()`, never while a
caller may still hold one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import posixpath
import stat
from collections import OrderedDict

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_NO_MAGICLINKS, _RESOLVE_BENEATH, _RESOLVE_IN_ROOT = 0x02, 0x08, 0x10
_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_CACHED = 64  # more than a tree is deep: tars list a directory's entries together


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _openat2(root_fd: int, rel: str, flags: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, (rel or ".").encode("utf-8", "surrogateescape"),
                       ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), rel)
    return int(fd)


def open_in_root(root_fd: int, rel: str, flags: int = _DIR) -> int:
    """openat2(RESOLVE_IN_ROOT): rel's symlinks and ".." never leave root_fd's directory."""
    return _openat2(root_fd, rel, flags, _RESOLVE_IN_ROOT)


def open_beneath(root_fd: int, rel: str, flags: int = os.O_PATH) -> int:
    """openat2(RESOLVE_BENEATH): relative symlinks inside root_fd's directory are followed;
    an absolute one, or a ".." that would leave it, fails with EXDEV (never rewritten)."""
    return _openat2(root_fd, rel, flags, _RESOLVE_BENEATH)


class BadParent(Exception):
    """Strict resolution met a symlink or a non-directory on the way (`parent`)."""

    def __init__(self, parent: str, symlink: bool) -> None:
        super().__init__(parent)
        self.parent, self.symlink = parent, symlink


class DirFds:
    def __init__(self, root_fd: int, *, in_root: bool,
                 implicit_owner: tuple[int, int] | None = None) -> None:
        self.root_fd = root_fd
        self.in_root = in_root
        self.implicit_owner = implicit_owner  # of the directories made for missing parents
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._retired: list[int] = []

    def get(self, rel: str, *, create: bool = True) -> int:
        """A descriptor of the directory rel ("" is the root), owned by this cache."""
        if not rel:
            return self.root_fd
        fd = self._fds.get(rel)
        if fd is not None:
            self._fds.move_to_end(rel)
            return fd
        return self._in_root(rel, create) if self.in_root else self._walk(rel, create)

    def forget(self) -> None:
        """Something on the way to a cached directory was removed: resolve afresh."""
        self._retired.extend(self._fds.values())
        self._fds.clear()

    def trim(self) -> None:
        """Between entries: close what was forgotten and what the cache cannot keep."""
        while len(self._fds) > _CACHED:
            self._retired.append(self._fds.popitem(last=False)[1])
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()

    def close(self) -> None:
        self.forget()
        self.trim()

    def _keep(self, rel: str, fd: int) -> int:
        self._fds[rel] = fd
        return fd

    def _walk(self, rel: str, create: bool) -> int:
        known = posixpath.dirname(rel)
        while known and known not in self._fds:
            known = posixpath.dirname(known)
        fd = self._fds[known] if known else self.root_fd
        prefix = known
        for part in rel[len(known):].lstrip("/").split("/"):
            prefix = posixpath.join(prefix, part)
            try:
                nfd = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                self._mkdir(part, fd)
                nfd = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                raise BadParent(prefix, stat.S_ISLNK(st.st_mode)) from None
            fd = self._keep(prefix, nfd)
        return fd

    def _in_root(self, rel: str, create: bool) -> int:
        try:
            return self._keep(rel, open_in_root(self.root_fd, rel))
        except FileNotFoundError:
            if not create:
                raise
        fd, prefix = self.root_fd, ""
        for part in rel.split("/"):
            prefix = posixpath.join(prefix, part)
            nfd = self._fds.get(prefix)
            if nfd is None:
                try:
                    nfd = open_in_root(self.root_fd, prefix)
                except FileNotFoundError:
                    self._mkdir(part, fd)
                    nfd = open_in_root(self.root_fd, prefix)
                self._keep(prefix, nfd)
            fd = nfd
        return fd

    def _mkdir(self, name: str, parent_fd: int) -> None:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        os.chmod(name, 0o755, dir_fd=parent_fd)  # Go's MkdirAll under umask 0022
        if self.implicit_owner is not None:
            os.chown(name, *self.implicit_owner, dir_fd=parent_fd, follow_symlinks=False)
