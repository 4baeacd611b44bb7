"""The receiving end of a DiffCopy stream: a hostile packet stream made a directory.

Blocking code (one thread per transfer). The stream is checked as fsutil's receiver
checks it (its Validator and Hardlinks rules) and more strictly: every path is clean and
relative, entries come in walk order, so an entry's parent is always a directory this
stream made or kept; it is reached through descriptors walked without following links
(dirfds.py), and the entry itself is made with mkdirat/openat(O_EXCL|O_NOFOLLOW)/
symlinkat/linkat/mknodat, so nothing outside dest is ever touched and no link is
followed. Hard links may only name a regular file sent earlier in the same stream.

dest may hold an earlier transfer of the same directory: an entry whose type, size,
mode, owner and mtime are unchanged is kept without asking for its data (fsutil's
metadata differ), and whatever the stream no longer lists is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from builder.dockerignore import Matcher
from dockerd_py.engine.archive.dirfds import DirFds
from dockerd_py.protos.fsutil import stat_pb2, wire_pb2

from .record import SessionError
from .wire import (
    DEFAULT_LIMITS,
    MAX_PATH,
    MAX_XATTR_VALUE,
    MAX_XATTRS,
    Limits,
    Refused,
    check_path,
    device_numbers,
    kind_of,
    unix_perm,
)

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_FILES = 32  # the sender fills 4 files at a time; more stay closed until their data
_KEPT_XATTRS = ("user.",)
_NODE_TYPES = {"block": stat.S_IFBLK, "char": stat.S_IFCHR, "fifo": stat.S_IFIFO}
PACKET = wire_pb2.Packet


@dataclass
class _Frame:
    """A directory the walk is in: the last name seen in it, and for a directory that
    existed before this stream, every name seen (the rest is removed when it closes)."""
    rel: str
    last: bytes = b""
    seen: set[str] | None = None


@dataclass
class _Pending:
    parent: str
    name: str
    stat: stat_pb2.Stat
    written: int = 0


class TreeWriter:
    def __init__(self, root_fd: int, request: Callable[[int], None], *,
                 limits: Limits = DEFAULT_LIMITS, include: Matcher | None = None,
                 exclude: Matcher | None = None) -> None:
        self.dirs = DirFds(root_fd, in_root=False)
        self.root_fd = root_fd
        self.request = request
        self.limits = limits
        self.include, self.exclude = include, exclude
        self.owner = os.geteuid() == 0
        self.stack = [_Frame("", seen=set() if _names(root_fd) else None)]
        self.index = 0              # a stat's id is its place in the stream
        self.stats_done = False
        self.pending: dict[int, _Pending] = {}
        self.open: OrderedDict[int, int] = OrderedDict()  # id -> fd, most recent last
        self.files: set[str] = set()  # regular files sent (hard link targets)
        self.made_dirs: list[tuple[str, stat_pb2.Stat]] = []
        self.received = 0           # bytes of file data so far
        self.dropped: set[str] = set()  # paths the patterns left out

    # -- packets ----------------------------------------------------------------
    def packet(self, raw: bytes) -> bool:
        """Apply one packet; True once everything asked for has arrived (send FIN)."""
        if len(raw) > self.limits.max_packet:
            raise Refused("oversized packet")
        p = PACKET.FromString(raw)
        if p.type == PACKET.PACKET_STAT:
            if self.stats_done:
                raise Refused("stat after the end of the listing")
            if p.HasField("stat"):
                self.entry(p.stat)
            else:
                self.stats_done = True
        elif p.type == PACKET.PACKET_DATA:
            self.data(p.ID, p.data)
        elif p.type == PACKET.PACKET_ERR:
            raise SessionError("error from sender: " + p.data[:1000].decode("utf-8", "replace"))
        else:
            raise Refused(f"unexpected packet type {p.type}")
        return self.stats_done and not self.pending

    # -- entries ----------------------------------------------------------------
    def entry(self, st: stat_pb2.Stat) -> None:
        sid = self.index
        self.index += 1
        if self.index > self.limits.max_entries:
            raise Refused(f"more than {self.limits.max_entries} entries")
        path = st.path
        check_path(path)
        kind = kind_of(st.mode, path)
        frame = self._place(path)
        parent, _, name = path.rpartition("/")
        if self._dropped(path, kind):
            self.dropped.add(path)
            return
        if st.linkname in self.dropped and kind == "file":
            st.linkname = ""  # its target was dropped here: as fsutil's hardlinkFilter does
        if frame.seen is not None:
            frame.seen.add(name)
        _xattrs(st, path)  # checked now, set with the metadata
        pfd = self.dirs.get(parent, create=False)
        old = _lstat(name, pfd)
        if kind == "dir":
            self._dir(path, name, pfd, old, st)
        elif kind == "file" and st.linkname:
            self._hardlink(path, name, pfd, old, st.linkname)
        elif kind == "file":
            self._file(sid, path, parent, name, pfd, old, st)
        elif kind == "symlink":
            self._symlink(path, name, pfd, old, st)
        else:
            self._node(kind, path, name, pfd, old, st)
        self.dirs.trim()

    def _place(self, path: str) -> _Frame:
        """fsutil's Validator: entries of a directory in increasing byte order, right
        after it (or after its earlier entries' subtrees)."""
        parent, _, name = path.rpartition("/")
        while self.stack[-1].rel != parent:
            if len(self.stack) == 1:
                raise Refused(f"{path!r}: out of order, or its directory was not sent")
            self._close(self.stack.pop())
        frame = self.stack[-1]
        key = name.encode("utf-8", "surrogateescape")
        if key <= frame.last:
            raise Refused(f"{path!r}: out of order")
        frame.last = key
        return frame

    def _dropped(self, path: str, kind: str) -> bool:
        """The sender applies the patterns; they are applied again so that a client that
        sends more gets no more. A directory may be the parent of an included entry."""
        if kind == "dir":
            return False
        if self.exclude is not None and self.exclude.matches(path):
            return True
        return self.include is not None and not self.include.matches(path)

    def _clear(self, name: str, pfd: int, old: os.stat_result | None) -> None:
        if old is None:
            return
        if stat.S_ISDIR(old.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
            self.dirs.forget()  # cached descriptors below it are gone
        else:
            os.unlink(name, dir_fd=pfd)

    def _dir(self, path: str, name: str, pfd: int, old: os.stat_result | None,
             st: stat_pb2.Stat) -> None:
        existed = old is not None and stat.S_ISDIR(old.st_mode)
        if not existed:
            self._clear(name, pfd, old)
            os.mkdir(name, 0o700, dir_fd=pfd)
        elif old is not None and old.st_mode & 0o700 != 0o700:
            fd = os.open(name, _OPEN_DIR, dir_fd=pfd)
            try:
                os.fchmod(fd, 0o700)  # its entries are written first, its mode last
            finally:
                os.close(fd)
        self.made_dirs.append((path, st))
        self.stack.append(_Frame(path, seen=set() if existed else None))

    def _file(self, sid: int, path: str, parent: str, name: str, pfd: int,
              old: os.stat_result | None, st: stat_pb2.Stat) -> None:
        self.files.add(path)
        if old is not None and self._unchanged(old, st):
            return
        self._clear(name, pfd, old)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=pfd)
        self.pending[sid] = _Pending(parent, name, st)
        self._keep_open(sid, fd)
        self.request(sid)

    def _unchanged(self, old: os.stat_result, st: stat_pb2.Stat) -> bool:
        return (stat.S_ISREG(old.st_mode) and old.st_size == st.size
                and old.st_mtime_ns == st.modTime
                and stat.S_IMODE(old.st_mode) == unix_perm(st.mode)
                and (not self.owner or (old.st_uid, old.st_gid) == (st.uid, st.gid)))

    def _hardlink(self, path: str, name: str, pfd: int, old: os.stat_result | None,
                  target: str) -> None:
        check_path(target, "hard link target")
        if target not in self.files:
            raise Refused(f"{path!r}: hard link to {target!r}, not a file sent before it")
        tparent, _, tname = target.rpartition("/")
        tfd = self.dirs.get(tparent, create=False)
        self._clear(name, pfd, old)
        os.link(tname, name, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)

    def _symlink(self, path: str, name: str, pfd: int, old: os.stat_result | None,
                 st: stat_pb2.Stat) -> None:
        target = st.linkname
        if not target or "\0" in target or len(target.encode("utf-8", "surrogateescape")) > (
                MAX_PATH):
            raise Refused(f"{path!r}: invalid symlink target")
        if old is not None and stat.S_ISLNK(old.st_mode) and old.st_mtime_ns == st.modTime \
                and os.readlink(name, dir_fd=pfd) == target:
            return
        self._clear(name, pfd, old)
        os.symlink(target, name, dir_fd=pfd)
        if self.owner:
            os.chown(name, st.uid, st.gid, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, ns=(st.modTime, st.modTime), dir_fd=pfd, follow_symlinks=False)

    def _node(self, kind: str, path: str, name: str, pfd: int, old: os.stat_result | None,
              st: stat_pb2.Stat) -> None:
        """Devices and FIFOs, which fsutil makes with mknod (devices need root)."""
        device = 0 if kind == "fifo" else device_numbers(st.devmajor, st.devminor, path)
        self._clear(name, pfd, old)
        try:
            os.mknod(name, _NODE_TYPES[kind] | unix_perm(st.mode), device, dir_fd=pfd)
        except PermissionError:
            raise Refused(f"{path!r}: cannot make a {kind} device here") from None
        # just made by mknodat in a directory only this transfer writes: not a symlink
        if self.owner:
            os.chown(name, st.uid, st.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(name, unix_perm(st.mode), dir_fd=pfd)  # (user.* xattrs: not on nodes)
        os.utime(name, ns=(st.modTime, st.modTime), dir_fd=pfd, follow_symlinks=False)

    # -- data -------------------------------------------------------------------
    def data(self, sid: int, chunk: bytes) -> None:
        pending = self.pending.get(sid)
        if pending is None:
            raise Refused(f"data for file {sid}, which was not asked for")
        fd = self._fd(sid, pending)
        if not chunk:
            self._finish_file(sid, pending, fd)
            return
        self.received += len(chunk)
        if self.received > self.limits.max_bytes:
            raise Refused(f"more than {self.limits.max_bytes} bytes of file data")
        view = memoryview(chunk)
        while view:
            n = os.pwrite(fd, view, pending.written)
            pending.written += n
            view = view[n:]

    def _fd(self, sid: int, pending: _Pending) -> int:
        fd = self.open.get(sid)
        if fd is not None:
            self.open.move_to_end(sid)
            return fd
        pfd = self.dirs.get(pending.parent, create=False)
        fd = os.open(pending.name, _REOPEN, dir_fd=pfd)
        self.dirs.trim()
        self._keep_open(sid, fd)
        return fd

    def _keep_open(self, sid: int, fd: int) -> None:
        self.open[sid] = fd
        while len(self.open) > _OPEN_FILES:
            os.close(self.open.popitem(last=False)[1])

    def _finish_file(self, sid: int, pending: _Pending, fd: int) -> None:
        st = pending.stat
        _set_xattrs(fd, _xattrs(st, st.path))
        if self.owner:
            os.fchown(fd, st.uid, st.gid)
        os.fchmod(fd, unix_perm(st.mode))  # after chown, which clears setuid
        os.utime(fd, ns=(st.modTime, st.modTime))
        del self.open[sid]
        os.close(fd)
        del self.pending[sid]

    # -- the end ----------------------------------------------------------------
    def finish(self) -> None:
        """After the last data: remove what the stream dropped, then give directories
        their metadata, deepest first (children would change a parent's mtime)."""
        while self.stack:
            self._close(self.stack.pop())
        for path, st in reversed(self.made_dirs):
            parent, _, name = path.rpartition("/")
            fd = os.open(name, _OPEN_DIR, dir_fd=self.dirs.get(parent, create=False))
            try:
                _set_xattrs(fd, _xattrs(st, path))
                if self.owner:
                    os.fchown(fd, st.uid, st.gid)
                os.fchmod(fd, unix_perm(st.mode))
                os.utime(fd, ns=(st.modTime, st.modTime))
            finally:
                os.close(fd)
            self.dirs.trim()

    def _close(self, frame: _Frame) -> None:
        if frame.seen is None:
            return
        for name in _names(self.dirs.get(frame.rel, create=False)):
            if name not in frame.seen:
                fd = self.dirs.get(frame.rel, create=False)
                self._clear(name, fd, os.stat(name, dir_fd=fd, follow_symlinks=False))

    def close(self) -> None:
        for fd in self.open.values():
            os.close(fd)
        self.open.clear()
        self.dirs.close()


def _names(path_fd: int) -> list[str]:
    fd = os.open(".", _OPEN_DIR, dir_fd=path_fd)
    try:
        return os.listdir(fd)
    finally:
        os.close(fd)


def _lstat(name: str, pfd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _xattrs(st: stat_pb2.Stat, path: str) -> dict[str, bytes]:
    """The extended attributes kept: user.* only. security.* and trusted.* ones (SELinux
    labels of the client's machine, capabilities, overlay markers) are dropped."""
    if len(st.xattrs) > MAX_XATTRS:
        raise Refused(f"{path!r}: too many extended attributes")
    kept = {}
    for key, value in st.xattrs.items():
        if len(key) > 255 or len(value) > MAX_XATTR_VALUE or not key.isprintable():
            raise Refused(f"{path!r}: invalid extended attribute")
        if key.startswith(_KEPT_XATTRS):
            kept[key] = value
    return kept


def _set_xattrs(fd: int, xattrs: dict[str, bytes]) -> None:
    for key, value in xattrs.items():
        with contextlib.suppress(OSError):  # as fsutil: a filesystem without them is fine
            os.setxattr(fd, key, value)

