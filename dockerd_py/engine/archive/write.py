"""Writing tars from a tree: one entry writer for `docker cp`, export, commit and layers.

`TarWriter.add` writes one file as go-archive's addTarFile does: PAX format where needed,
whole-second mtimes (reproducible layers), no user or group names, a hard link for every
name of an inode after the first, and exactly as many data bytes as the header says (a
file that grows or shrinks while it is read is cut or padded, so the stream stays valid).
Options say what else goes in:

  * xattrs="capability" (docker cp, export, commit): only security.capability, as
    dockerd; a file that vanished or changed kind meanwhile (the container may be
    running), or cannot be read, is skipped, as go-archive logs and skips it;
  * xattrs="all" (write_layer, tar_paths): every xattr, and any error is raised;
  * overlay="convert" (write_layer): an overlay upper dir becomes a layer: whiteout
    devices become ".wh." files, an opaque directory is followed by its ".wh..wh..opq"
    entry (as moby's overlay converter does), trusted.overlay.* is never written;
    overlay="drop": the same without whiteouts or opaque markers (a layer without
    parents has nothing to hide).

Blocking code; the callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal, cast

from .format import (
    CAPABILITY_XATTR,
    CHUNK,
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    OVERLAY_XATTRS,
    PAX_XATTR,
    WHITEOUT_PREFIX,
    LayerStats,
)
from .regular import open_regular
from .xattrs import capability, read_xattrs

_KINDS = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
          stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
          stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


class _Sink:
    """What tarfile needs of the sink it writes to: write() and tell(); hashes if asked."""

    def __init__(self, sink: Any, hashing: bool) -> None:
        self._sink, self._pos = sink, 0
        self._sha = hashlib.sha256() if hashing else None

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        if self._sha is not None:
            self._sha.update(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def digest(self) -> str:
        return "sha256:" + (self._sha.hexdigest() if self._sha is not None else "")


class _Exactly:
    """Exactly `size` bytes of a file that may change while it is read: cut, or padded
    with zeros, so that a growing or shrinking file never breaks the tar stream."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._left = fd, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = os.read(self._fd, n) if n else b""
        if len(data) < n:
            data += bytes(n - len(data))
        self._left -= len(data)
        return data


def header(name: str, st: os.stat_result, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    """A tar header for a file with stat st, with no user/group names, whole seconds."""
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
    info.mtime = int(st.st_mtime)
    return info


class TarWriter:
    def __init__(self, sink: Any, *, xattrs: Literal["capability", "all"] = "capability",
                 overlay: Literal["keep", "convert", "drop"] = "keep",
                 hashing: bool = False, live: bool = True) -> None:
        """live=False: nothing runs in the tree (a finished build step), files are opened
        the cheaper way (archive.open_regular)."""
        self._live = live
        self._sink = _Sink(sink, hashing)
        self.tar = tarfile.TarFile(fileobj=cast(BinaryIO, self._sink), mode="w",
                                   format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        self._all = xattrs == "all"
        self._overlay = overlay
        self._links: dict[tuple[int, int], str] = {}
        self.size = 0  # regular files and symlink targets, as dockerd counts a layer's size

    def add(self, arcname: str, name: str, dir_fd: int | None = None,
            st: os.stat_result | None = None) -> None:
        """Add the file `name` (relative to dir_fd, which xattrs="all" does not take) as
        `arcname`; st if its lstat is known. Sockets are left out (Go's tar refuses them)."""
        try:
            if st is None:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            if self._all:
                raise
            return
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            return
        if self._overlay != "keep" and kind == tarfile.CHRTYPE and st.st_rdev == 0:
            if self._overlay == "convert":  # an overlay whiteout
                head, base = posixpath.split(arcname)
                info = header(posixpath.join(head, WHITEOUT_PREFIX + base), st)
                info.mode = 0o600
                self.tar.addfile(info)
            return
        info = header(arcname, st, kind)
        opaque = False
        if self._all:
            found = read_xattrs(name)
            opaque = self._overlay == "convert" and found.get(OPAQUE_XATTR) == b"y"
            info.pax_headers = {PAX_XATTR + k: v.decode("utf-8", "surrogateescape")
                                for k, v in found.items()
                                if not (self._overlay != "keep" and k.startswith(OVERLAY_XATTRS))}
        if kind != tarfile.DIRTYPE and st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), arcname)
            if first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self.tar.addfile(info)
                return
        if kind == tarfile.REGTYPE:
            self._regular(info, name, dir_fd)
            return
        if kind == tarfile.SYMTYPE:
            try:
                info.linkname = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                if self._all:
                    raise
                return
            self.size += len(os.fsencode(info.linkname))
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self.tar.addfile(info)
        if opaque:  # right after its directory, as moby's overlay converter does
            self.tar.addfile(header(posixpath.join(arcname, OPAQUE_MARKER), st))

    def _regular(self, info: tarfile.TarInfo, name: str, dir_fd: int | None) -> None:
        try:
            fd = open_regular(name, dir_fd, live=self._live)
        except OSError:
            if self._all:
                raise
            return  # gone, or replaced by a symlink, a FIFO or a device node, meanwhile
        try:
            info.size = os.fstat(fd).st_size
            if not self._all and (cap := capability(fd)) is not None:
                info.pax_headers = {PAX_XATTR + CAPABILITY_XATTR:
                                    cap.decode("utf-8", "surrogateescape")}
            self.tar.addfile(info, cast(BinaryIO, _Exactly(fd, info.size)))
        finally:
            os.close(fd)
        self.size += info.size

    def addfile(self, info: tarfile.TarInfo) -> None:
        """A header of the caller's making (a whiteout), without data."""
        self.tar.addfile(info)

    def close(self) -> LayerStats:
        """End the tar; its digest (if hashing) and size."""
        self.tar.close()
        return LayerStats(diff_id=self._sink.digest(), size=self.size)


def walk(top: str, *, strict: bool = True) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative name, path, lstat) of everything below top, depth first, each directory's
    names in byte order (filepath.WalkDir's order); symlinks to directories are not
    entered. Not strict: what cannot be read (gone meanwhile) is left out."""

    def names(path: str) -> Iterator[str]:
        try:
            return iter(sorted(os.listdir(path), key=os.fsencode))
        except OSError:
            if strict:
                raise
            return iter(())

    stack = [("", top, names(top))]
    while stack:
        prefix, directory, left = stack[-1]
        name = next(left, None)
        if name is None:
            stack.pop()
            continue
        path = posixpath.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            if strict:
                raise
            continue
        yield prefix + name, path, st
        if stat.S_ISDIR(st.st_mode):  # listed only now: the caller has seen the directory
            stack.append((f"{prefix}{name}/", path, names(path)))


def write_layer(root: str, fileobj: BinaryIO, *, parents_whiteouts: bool = True) -> LayerStats:
    """Write the overlay upper dir at root as a deterministic, uncompressed layer tar.

    Overlay whiteouts become ".wh.<name>" entries; an opaque directory is followed by a
    "<dir>/.wh..wh..opq" entry. parents_whiteouts=False leaves both out: a layer without
    parent layers has nothing to hide. trusted.overlay.* xattrs are never written.
    """
    out = TarWriter(fileobj, xattrs="all", overlay="convert" if parents_whiteouts else "drop",
                    hashing=True, live=False)
    for rel, path, st in walk(root):
        out.add(rel, path, st=st)
    return out.close()


def tar_paths(root: str, fileobj: BinaryIO) -> None:
    """Tar the whole tree at root as it is (no whiteout conversion), in path order."""
    out = TarWriter(fileobj, xattrs="all", live=False)
    for rel, path, st in walk(root):
        out.add(rel, path, st=st)
    out.close()


