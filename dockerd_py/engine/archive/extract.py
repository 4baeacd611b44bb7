"""The one hostile-input-safe tar extractor: image layers, build contexts, `docker cp`.

Blocking code: callers run it in a thread.

`apply_layer(fileobj, root)` extracts an image layer (any supported compression) into the
empty directory root, in one streaming pass, and returns its diff_id (of the whole
uncompressed stream, read to EOF) and size; build contexts are extracted the same way.
`unpack_to_dir(fileobj, dest, ...)` is `docker cp`'s extraction into an existing
directory. What differs between the two is decided by their `Rules` (rules.py); the
mechanism is shared, and trusts nothing in the tar:

  * every entry is created relative to its parent directory's descriptor (dirfds.py),
    never through a path resolved from the host's root; the last component is created
    with O_EXCL/O_NOFOLLOW semantics (mkdir, mknod, symlink, link and O_EXCL opens never
    follow a symlink), and only when its name is taken is the way cleared (a directory
    kept for a directory entry) and the creation tried again;
  * parents are found as the rules say: never through a symlink for layers, inside the
    root for docker cp; hardlink targets are looked up the same way and linked without
    following them;
  * every failure is a refusal worded by the rules, or an error they map.

Whiteouts (layers) use the overlayfs format, so the result is a lowerdir as is: ".wh.x"
becomes the 0:0 character device "x", ".wh..wh..opq" sets trusted.overlay.opaque=y on its
directory. Directories get their mode and times last, children before parents, so that
children do not bump a parent's mtime and a read-only directory does not stop the
extraction.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from .compression import decompressed
from .dirfds import BadParent, DirFds
from .format import (
    CHUNK,
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    PAX_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    ArchiveError,
    LayerStats,
)
from .rules import CopyRules, LayerRules, Rules, Why
from .stream import TarStream, members, write_all

T = TypeVar("T")
_PRIVILEGED_XATTRS = ("trusted.", "security.")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def apply_layer(fileobj: BinaryIO, root: str, *, same_owner: bool | None = None) -> LayerStats:
    """Extract one layer tar (any supported compression) into the empty directory root.

    Raises ArchiveError for malformed or hostile input; nothing is written outside root.
    same_owner (default: when running as root) gives entries the tar's uid and gid.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    root_fd = os.open(root, _ROOT)
    try:
        extractor = _Extractor(root_fd, LayerRules(same_owner))
        stream = extractor.run(fileobj, hashing=True)
    finally:
        os.close(root_fd)
    return LayerStats(diff_id=stream.finish(), size=extractor.size)


def unpack_to_dir(fileobj: BinaryIO, dest: str, *, owner: tuple[int, int] | None = None,
                  no_overwrite_dir_non_dir: bool = False) -> None:
    """`docker cp` into the directory dest (go-archive's Unpack): a tar, any compression.

    Every entry lands below dest, symlinks on the way resolved inside it; owner (cp -a)
    replaces the tar's ids. Errors are dockerd's (InternalError); a missing hardlink
    target or parent stays FileNotFoundError, for the caller to word.
    """
    root_fd = os.open(dest, _ROOT)
    try:
        _Extractor(root_fd, CopyRules(dest, owner, no_overwrite_dir_non_dir)).run(
            fileobj, hashing=False)
    finally:
        os.close(root_fd)


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return round(m.mtime * 1e9) if isinstance(m.mtime, float) else int(m.mtime) * 10**9


def _has_xattrs(m: tarfile.TarInfo) -> bool:
    return any(key.startswith(PAX_XATTR) for key in m.pax_headers)


class _Extractor:
    def __init__(self, root_fd: int, rules: Rules) -> None:
        self.rules = rules
        self.dirs = DirFds(root_fd, in_root=rules.in_root, implicit_owner=rules.implicit_owner)
        self.privileged = os.geteuid() == 0
        self.size = 0
        # Directories of the tar -> (mode or -1 if set already, mtime_ns), applied once
        # every entry is in.
        self.meta: dict[str, tuple[int, int]] = {}
        self._pfd: int | None = None  # the current entry's parent, once found (`where`)

    def run(self, fileobj: BinaryIO, *, hashing: bool) -> TarStream:
        """Extract the (maybe compressed) tar in fileobj; the stream it was read from."""
        try:
            self.stream = TarStream(decompressed(fileobj), hashing=hashing)
            for tar, m in members(self.stream):
                self.dirs.trim()
                try:
                    self.entry(tar, m)
                except (OSError, ValueError, OverflowError) as e:
                    if (mapped := self.rules.error(e, m)) is None:
                        raise
                    raise mapped from e
            self.finish()
        except Exception as e:
            if (mapped := self.rules.error(e, None)) is None:
                raise
            raise mapped from e
        finally:
            self.dirs.close()
        return self.stream

    def refuse(self, why: Why, m: tarfile.TarInfo, subject: str = "") -> Exception:
        refusal = self.rules.refusal(why, m, subject)
        return refusal if refusal is not None else ArchiveError(why.value.format(subject))

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = self.rules.name(m)
        if rel is None:
            return
        parent, base = posixpath.split(rel)
        self._pfd = None
        if self.rules.whiteouts:
            if base.startswith(WHITEOUT_PREFIX):
                self.whiteout(m, parent, base)
                return
            if rel.startswith(WHITEOUT_META_PREFIX):
                return  # inside aufs metadata directories (.wh..wh.plnk/...)
        if self.rules.parents_first and rel:
            self.clear(m, rel, self.where(m, parent), base, entry_is_dir=m.isdir())
        if m.isdir():
            self.directory(m, rel, parent, base or ".")
        elif not rel:
            raise self.refuse(Why.ROOT, m)
        elif m.isreg():
            self.regular(tar, m, rel, parent, base)
        elif m.islnk():
            self.hardlink(m, rel, parent, base)
        elif m.issym():
            if "\x00" in m.linkname and (err := self.rules.refusal(Why.LINK_NUL, m)):
                raise err
            pfd = self.where(m, parent)
            self.create(m, rel, pfd, base, lambda: os.symlink(m.linkname, base, dir_fd=pfd))
            self.finish_node(m, pfd, base)
            self.size += len(os.fsencode(m.linkname))  # dockerd counts symlinks' own size
        elif m.isfifo():
            pfd = self.where(m, parent)
            self.create(m, rel, pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
            self.finish_node(m, pfd, base)
        elif m.ischr() or m.isblk():
            self.device(m, rel, parent, base)
        else:
            raise self.refuse(Why.UNSUPPORTED, m)

    def where(self, m: tarfile.TarInfo, parent: str) -> int:
        """The entry's parent directory, made if missing; found once per entry, so that
        clearing the entry's name (a symlink docker cp resolved it through) cannot move
        the entry elsewhere."""
        if self._pfd is None:
            self._pfd = self.parent(m, parent)
        return self._pfd

    def parent(self, m: tarfile.TarInfo, rel: str, *, create: bool = True) -> int:
        try:
            return self.dirs.get(rel, create=create)
        except BadParent as e:
            raise self.refuse(Why.PARENT_SYMLINK if e.symlink else Why.PARENT_NOT_DIR, m,
                              e.parent) from None

    def create(self, m: tarfile.TarInfo, rel: str, pfd: int, base: str,
               make: Callable[[], T]) -> T:
        """make() the entry; if its name is taken, clear the way and make it again."""
        try:
            return make()
        except FileExistsError:
            self.clear(m, rel, pfd, base, entry_is_dir=False)
            return make()

    def clear(self, m: tarfile.TarInfo, rel: str, pfd: int, base: str, *,
              entry_is_dir: bool) -> bool:
        """Remove what holds base, as the rules allow; True when a directory stays (for a
        directory entry, only the metadata changes)."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir != entry_is_dir:
            refusal = self.rules.refusal(Why.OVERWRITE_DIR if is_dir else Why.OVERWRITE_NON_DIR,
                                         m, rel)
            if refusal is not None:
                raise refusal
        if is_dir and entry_is_dir:
            return True
        if is_dir:
            shutil.rmtree(base, dir_fd=pfd)
            self.dirs.forget()
            inside = rel + "/"
            self.meta = {d: v for d, v in self.meta.items()
                         if d != rel and not d.startswith(inside)}
        else:
            os.unlink(base, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self.dirs.forget()  # a parent resolved through it (docker cp) is stale
        return False

    def directory(self, m: tarfile.TarInfo, rel: str, parent: str, base: str) -> None:
        pfd = self.where(m, parent)
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not self.clear(m, rel, pfd, base, entry_is_dir=True):
                os.mkdir(base, 0o700, dir_fd=pfd)
        if (owner := self.rules.owner(m)) is not None:
            os.chown(base, *owner, dir_fd=pfd, follow_symlinks=False)
        mode = m.mode & 0o7777
        if _has_xattrs(m) or not self.rules.dir_modes_last:
            fd = os.open(base, _OPEN_DIR, dir_fd=pfd)
            try:
                self.set_xattrs(m, fd)
                if not self.rules.dir_modes_last:
                    os.fchmod(fd, mode)
                    mode = -1
            finally:
                os.close(fd)
        # The mtime waits until the end, as children would bump it.
        self.meta[rel] = (mode, _mtime_ns(m))

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str, parent: str,
                base: str) -> None:
        pfd = self.where(m, parent)
        # O_EXCL: a fresh inode, so a hardlink made earlier to the file this entry replaces
        # keeps its content.
        fd = self.create(m, rel, pfd, base, lambda: os.open(base, _NEW_FILE, 0o600, dir_fd=pfd))
        try:
            if m.sparse is not None and (src := tar.extractfile(m)) is not None:
                while data := src.read(CHUNK):
                    write_all(fd, data)
            else:
                self.stream.copy_to(fd, m.size)
            if (owner := self.rules.owner(m)) is not None:
                os.fchown(fd, *owner)
            self.set_xattrs(m, fd)
            os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid/setgid
            os.utime(fd, ns=(_mtime_ns(m), _mtime_ns(m)))
        finally:
            os.close(fd)
        self.size += m.size

    def hardlink(self, m: tarfile.TarInfo, rel: str, parent: str, base: str) -> None:
        target = self.rules.link_target(m, rel)
        tparent, tbase = posixpath.split(target)
        try:
            tfd = self.parent(m, tparent, create=False)  # looked up, never created
            st = os.stat(tbase, dir_fd=tfd, follow_symlinks=False)
        except FileNotFoundError:
            if (refusal := self.rules.refusal(Why.LINK_MISSING, m)) is not None:
                raise refusal from None
            raise
        if stat.S_ISDIR(st.st_mode) and (refusal := self.rules.refusal(Why.LINK_DIR, m)):
            raise refusal
        pfd = self.where(m, parent)
        self.create(m, rel, pfd, base, lambda: os.link(
            tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False))

    def device(self, m: tarfile.TarInfo, rel: str, parent: str, base: str) -> None:
        if not self.privileged:
            return  # as dockerd: device nodes only when running as root
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        pfd = self.where(m, parent)
        try:
            self.create(m, rel, pfd, base, lambda: os.mknod(
                base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd))
        except PermissionError:
            if self.rules.skip_denied_devices:
                return
            raise
        self.finish_node(m, pfd, base)

    def whiteout(self, m: tarfile.TarInfo, parent: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            fd = os.open(".", _OPEN_DIR, dir_fd=self.where(m, parent))
            try:
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            finally:
                os.close(fd)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other aufs metadata
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise self.refuse(Why.WHITEOUT, m)
        pfd = self.where(m, parent)
        self.create(m, posixpath.join(parent, hidden), pfd, hidden,
                    lambda: os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd))
        if (owner := self.rules.owner(m)) is not None:
            os.chown(hidden, *owner, dir_fd=pfd, follow_symlinks=False)

    def finish_node(self, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        """Owner, mode, xattrs and times of a symlink, fifo or device just made."""
        if (owner := self.rules.owner(m)) is not None:
            os.chown(base, *owner, dir_fd=pfd, follow_symlinks=False)
        if not m.issym():  # Linux has no lchmod; base is a node we just created
            os.chmod(base, m.mode & 0o7777, dir_fd=pfd)
        if self.rules.node_xattrs and _has_xattrs(m):  # no fd to set them through
            self.set_xattrs(m, f"/proc/self/fd/{pfd}/{base}")
        os.utime(base, ns=(_mtime_ns(m), _mtime_ns(m)), dir_fd=pfd, follow_symlinks=False)

    def set_xattrs(self, m: tarfile.TarInfo, target: int | str) -> None:
        for key, text in m.pax_headers.items():
            name = key[len(PAX_XATTR) :]
            if not key.startswith(PAX_XATTR) or not self.rules.keep_xattr(name):
                continue
            value = text.encode("utf-8", "surrogateescape")
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as e:
                # Filesystems refuse some namespaces (user.* on symlinks, ...). Losing
                # trusted.*/security.* (file capabilities) is only fine when unprivileged.
                if e.errno not in (errno.EPERM, errno.ENOTSUP):
                    raise
                if self.privileged and name.startswith(_PRIVILEGED_XATTRS) and (
                        refusal := self.rules.refusal(Why.XATTR, m, f"{name}: {e.strerror}")):
                    raise refusal from e

    def finish(self) -> None:
        """Directories' modes and times, last: children would bump a parent's mtime, and a
        read-only directory would stop an unprivileged extraction. Children sort after
        their parent, so in reverse order a parent comes after everything below it."""
        for rel in sorted(self.meta, key=lambda d: d.split("/"), reverse=True):
            self.dirs.trim()
            mode, mtime = self.meta[rel]
            parent, base = posixpath.split(rel)
            try:
                fd = os.open(base or ".", _OPEN_DIR, dir_fd=self.dirs.get(parent, create=False))
            except (OSError, BadParent):
                if self.rules.in_root:
                    continue  # docker cp: replaced through a symlink meanwhile, no matter
                raise
            try:
                if mode >= 0:
                    os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)
