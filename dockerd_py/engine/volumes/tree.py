"""Volume data on disk: filling a new volume from an image directory, measuring it, and
deleting what a removed volume left.

The copy is fd-relative and never follows a symlink of the source: an image's tree is
untrusted input, and a volume's root is a host directory. Only regular files are opened
(archive.open_regular); device nodes and FIFOs are made anew with the same type, numbers
and mode, symlinks are copied as links, sockets are left out. Container starts and the
builder's RUN steps (an image's VOLUMEs) fill volumes with this one copy.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat

from ..archive import open_regular

log = logging.getLogger(__name__)


def remove_tree(path: str | None) -> None:
    if path is None:
        return
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("could not remove %s: %s", path, e)


def dir_size(path: str) -> int:
    """Apparent size of everything but directories, hard links counted once (moby's
    directory.Size)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def walk(directory: str) -> None:
        nonlocal total
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            if directory == path:
                raise
            return
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                walk(entry.path)
            elif st.st_size and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size

    walk(path)
    return total


def size_or_unknown(path: str) -> int:
    try:
        return dir_size(path)
    except OSError as e:
        log.warning("could not determine the size of %s: %s", path, e)
        return -1


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_IGNORED_XATTR_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP)


def copy_into_empty(source: str, target: str | int) -> bool:
    """Copy the tree under `source` (a resolved path: no symlink in it) into the empty
    directory `target` (a path, or a directory descriptor the caller keeps). False if
    `source` is not a directory or `target` is not empty."""
    try:
        src = os.open(source, _DIR_FLAGS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise
    try:
        dst = os.open(target, _DIR_FLAGS) if isinstance(target, str) else os.dup(target)
        try:
            if os.listdir(dst):
                return False
            _TreeCopy(dst).directory(src, dst, "")
            _copy_attributes(src, dst, os.fstat(src))
            return True
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _copy_attributes(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then xattrs (file capabilities after
    chown), then times."""
    os.fchown(dst_fd, st.st_uid, st.st_gid)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    for key in os.listxattr(src_fd):
        try:
            os.setxattr(dst_fd, key, os.getxattr(src_fd, key))
        except OSError as e:
            if e.errno not in _IGNORED_XATTR_ERRORS:
                raise
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


class _TreeCopy:
    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.links: dict[tuple[int, int], str] = {}  # source inode -> path copied (from root)

    def directory(self, src: int, dst: int, rel: str) -> None:
        for name in sorted(os.listdir(src)):
            st = os.stat(name, dir_fd=src, follow_symlinks=False)
            path = os.path.join(rel, name)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst)
                child_src = os.open(name, _DIR_FLAGS, dir_fd=src)
                try:
                    child_dst = os.open(name, _DIR_FLAGS, dir_fd=dst)
                    try:
                        self.directory(child_src, child_dst, path)
                        _copy_attributes(child_src, child_dst, st)
                    finally:
                        os.close(child_dst)
                finally:
                    os.close(child_src)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in self.links:
                    os.link(self.links[key], name, src_dir_fd=self.root_fd, dst_dir_fd=dst,
                            follow_symlinks=False)
                    continue
                self.file(src, dst, name, st)
                if st.st_nlink > 1:
                    self.links[key] = path
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                self.node_attributes(src, dst, name, st, symlink=True)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst)
                self.node_attributes(src, dst, name, st, symlink=False)
            # sockets are not copied (nothing listens on them in a new volume)

    @staticmethod
    def file(src: int, dst: int, name: str, st: os.stat_result) -> None:
        fin = open_regular(name, src)
        try:
            fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600, dir_fd=dst)
            try:
                _copy_data(fin, fout)
                _copy_attributes(fin, fout, st)
            finally:
                os.close(fout)
        finally:
            os.close(fin)

    @staticmethod
    def node_attributes(src: int, dst: int, name: str, st: os.stat_result, *,
                        symlink: bool) -> None:
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not symlink:
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)
        src_path, dst_path = f"/proc/self/fd/{src}/{name}", f"/proc/self/fd/{dst}/{name}"
        for key in os.listxattr(src_path, follow_symlinks=False):
            try:
                os.setxattr(dst_path, key, os.getxattr(src_path, key, follow_symlinks=False),
                            follow_symlinks=False)
            except OSError as e:  # symlinks refuse user.* attributes
                if e.errno not in _IGNORED_XATTR_ERRORS and not (symlink
                                                                 and e.errno == errno.EPERM):
                    raise
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_data(fin: int, fout: int) -> None:
    try:
        while os.sendfile(fout, fin, None, 1 << 30) > 0:
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(fin, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fout, view):]
