"""What a container changed: an overlay upper dir against the layer dirs below it.

Shared by `docker diff`/`docker commit` and the builder's layers. Blocking code: callers
run it through asyncio.to_thread.

`diff_dirs(upper, lowers)` is dockerd's naive diff (archive.ChangesDirs of the merged tree
against the image's), in path order, computed without mounting: only what the upper dir
holds can differ. A whiteout is a deletion, an opaque directory deletes the image's
entries below it, a directory holding changes is itself a change, and the paths of
dockerd's init layer (/etc/hosts, /proc, ...) that the runtime creates as mount points
count as unchanged, as there. Same means: same type, mode, owner, device, and for
non-directories size and mtime (whole seconds match sub-second ones, as a tar's do) and
file capabilities.

`write_changes(upper, changes, fileobj)` writes the layer that holds exactly those
changes (go-archive's ExportChanges): changed entries from the upper dir, a ".wh." file
per deletion, in path order, every file opened below upper without following a symlink.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import stat
import tarfile
import time
from collections.abc import Sequence
from typing import Any

from .archive import WHITEOUT_PREFIX, TarWriter
from .archive.xattrs import capability, is_opaque

MODIFIED, ADDED, DELETED = 0, 1, 2


# Paths of dockerd's init layer (daemon/initlayer): mount points the runtime may create in
# the upper dir. Missing from the image, they are no change; /dev and /etc are their parents.
_INIT_PATHS = frozenset({"/dev/pts", "/dev/shm", "/proc", "/sys", "/.dockerenv",
                         "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/dev/console",
                         "/etc/mtab", "/dev", "/etc"})


@dataclasses.dataclass(frozen=True)
class Change:
    path: str
    kind: int  # MODIFIED, ADDED, DELETED

    def to_api(self) -> dict[str, Any]:
        return {"Path": self.path, "Kind": self.kind}


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _same_time(a: int, b: int) -> bool:
    """go-archive's sameFsTime: equal, or equal seconds with one side whole seconds (tar)."""
    return a == b or (a // 10**9 == b // 10**9 and (a % 10**9 == 0 or b % 10**9 == 0))


def _stat_different(old: os.stat_result, new: os.stat_result) -> bool:
    """go-archive's statDifferent: size and mtime do not count for directories."""
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
            new.st_mode, new.st_uid, new.st_gid, new.st_rdev):
        return True
    return not stat.S_ISDIR(old.st_mode) and (
        not _same_time(old.st_mtime_ns, new.st_mtime_ns) or old.st_size != new.st_size)


class _Lower:
    """The image's tree as its layer directories (top first) show it, read without
    mounting: a whiteout hides, a file hides what is below it, an opaque directory ends
    the stack below it."""

    def __init__(self, dirs: Sequence[str]) -> None:
        self.dirs = list(dirs)
        self._opaque: dict[str, bool] = {}

    def _opaque_dir(self, path: str) -> bool:
        if path not in self._opaque:
            self._opaque[path] = is_opaque(path)
        return self._opaque[path]

    def _in_layer(self, layer: str, parts: list[str]) -> tuple[str, os.stat_result | None, bool]:
        """(path, stat, True): found; (_, None, True): hidden by this layer;
        (_, None, False): the layer says nothing, look below."""
        path, opaque = layer, False
        for i, part in enumerate(parts):
            path = os.path.join(path, part)
            try:
                st = os.lstat(path)
            except OSError:
                return path, None, opaque
            if _is_whiteout(st):
                return path, None, True
            if i == len(parts) - 1:
                return path, st, True
            if not stat.S_ISDIR(st.st_mode):
                return path, None, True
            opaque = opaque or self._opaque_dir(path)
        return path, None, False

    def find(self, rel: str) -> tuple[str, os.stat_result] | None:
        """The layer path and stat that show rel, if the image has it."""
        parts = rel.split("/")
        for layer in self.dirs:
            path, st, final = self._in_layer(layer, parts)
            if final:
                return (path, st) if st is not None else None
        return None

    def children(self, rel: str) -> set[str]:
        names: set[str] = set()
        hidden: set[str] = set()
        parts = rel.split("/") if rel else []
        for layer in self.dirs:
            path = layer
            if parts:
                path, st, final = self._in_layer(layer, parts)
                if st is None and not final:
                    continue
                if st is None or not stat.S_ISDIR(st.st_mode):
                    break
            for entry in os.scandir(path):
                if entry.name not in names and entry.name not in hidden:
                    whiteout = _is_whiteout(entry.stat(follow_symlinks=False))
                    (hidden if whiteout else names).add(entry.name)
            if self._opaque_dir(path):
                break
        return names


class _Differ:
    """ChangesDirs(merged container tree, image tree), driven by the upper dir (only what
    it holds can differ), walked by file descriptors that never follow a symlink."""

    def __init__(self, lower: _Lower) -> None:
        self.lower = lower
        self.out: list[Change] = []

    def directory(self, fd: int, rel: str, *, old_is_dir: bool) -> None:
        for name in sorted(os.listdir(fd), key=os.fsencode):
            child = f"{rel}/{name}" if rel else name
            path = "/" + child
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            old = self.lower.find(child) if old_is_dir else None
            if _is_whiteout(st):
                if old is not None:
                    self.out.append(Change(path, DELETED))
                continue
            if old is None:
                own = path not in _INIT_PATHS  # a runtime mount point is no change
            else:
                own = _stat_different(old[1], st) or (stat.S_ISREG(st.st_mode) and (
                    capability(old[0]) != capability(f"/proc/self/fd/{fd}/{name}")))
            if own:
                self.out.append(Change(path, MODIFIED if old else ADDED))
            if stat.S_ISDIR(st.st_mode):
                self.subdirectory(fd, name, child, old, own)

    def subdirectory(self, fd: int, name: str, child: str,
                     old: tuple[str, os.stat_result] | None, own: bool) -> None:
        start = len(self.out)
        try:
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
        except OSError:
            return
        try:
            old_dir = old is not None and stat.S_ISDIR(old[1].st_mode)
            self.directory(sub, child, old_is_dir=old_dir)
            if old_dir and is_opaque(sub):  # the image's entries are hidden here
                gone = self.lower.children(child) - set(os.listdir(sub))
                self.out.extend(Change(f"/{child}/{n}", DELETED)
                                for n in sorted(gone, key=os.fsencode))
        finally:
            os.close(sub)
        if len(self.out) > start and not own:
            # A directory holding changes is a change itself (go-archive's addChanges).
            self.out.insert(start, Change("/" + child, MODIFIED))


def diff_dirs(upper: str, lowers: Sequence[str]) -> list[Change]:
    """The changes an overlay upper dir makes to the layer dirs below it (top first)."""
    differ = _Differ(_Lower(lowers))
    fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        differ.directory(fd, "", old_is_dir=True)
    finally:
        os.close(fd)
    return differ.out


def write_changes(upper: str, found: Sequence[Change], fileobj: Any, *,
                  live: bool = True) -> None:
    """go-archive's ExportChanges, from the upper dir: entries in path order, a ".wh."
    file per deletion. Files are opened below upper without following any symlink, and
    only if regular; live=False when nothing runs on upper (see archive.open_regular)."""
    out = TarWriter(fileobj, live=live)
    root = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    now = int(time.time())
    try:
        for change in sorted(found, key=lambda ch: ch.path):
            rel = change.path.lstrip("/")
            parent, base = posixpath.split(rel)
            if change.kind == DELETED:
                info = tarfile.TarInfo(posixpath.join(parent, WHITEOUT_PREFIX + base))
                info.mode, info.mtime, info.uname, info.gname = 0, now, "", ""
                out.addfile(info)
                continue
            try:
                fd = _open_below(root, parent)
            except OSError:
                continue  # changed meanwhile; dockerd logs and goes on too
            try:
                out.add(rel, base, dir_fd=fd)
            finally:
                os.close(fd)
        out.close()
    finally:
        os.close(root)


def _open_below(root: int, rel: str) -> int:
    fd = os.dup(root)
    for part in rel.split("/") if rel else []:
        try:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
        finally:
            os.close(fd)
        fd = nfd
    return fd

