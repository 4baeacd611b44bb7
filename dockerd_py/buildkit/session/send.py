"""The sending end of a DiffCopy stream, for `--output type=local` (blocking parts).

The tree is listed as fsutil's sender lists it (send.go over fs.go's filepath.WalkDir,
stat.go, hardlinks.go): the root itself is not sent; each directory comes before its
entries, entries in byte order of their names; mode is Go's FileMode; a file whose
inode was listed before is sent as a hard link (linkname = the first path);
sockets are left out. Nothing is followed: directories are opened O_NOFOLLOW relative
to their parent, files through open_regular (a FIFO or device is never opened).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from dockerd_py.engine.archive.dirfds import DirFds
from dockerd_py.engine.archive.regular import open_regular
from dockerd_py.protos.fsutil import stat_pb2

from .wire import MODE_TYPE, go_mode, split_device

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_ROOT = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def _order(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


class TreeSender:
    def __init__(self, root: str) -> None:
        self.root_fd = os.open(root, _ROOT)
        self.dirs = DirFds(self.root_fd, in_root=False)
        self.files: dict[int, str] = {}  # id (place in the listing) -> path of a file

    def stats(self) -> Iterator[stat_pb2.Stat]:
        """Every entry's Stat, in fsutil's order; regular files are remembered by id."""
        inodes: dict[tuple[int, int], str] = {}
        index = 0
        stack: list[tuple[str, int, Iterator[str]]] = []
        fd = os.open(".", _DIR, dir_fd=self.root_fd)
        stack.append(("", fd, iter(sorted(os.listdir(fd), key=_order))))
        try:
            while stack:
                prefix, dfd, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(dfd)
                    stack.pop()
                    continue
                path = f"{prefix}/{name}" if prefix else name
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISSOCK(st.st_mode):
                    continue
                out = self._stat(path, name, dfd, st, inodes)
                if out.mode & MODE_TYPE == 0:  # fsutil's fileCanRequestData
                    self.files[index] = path
                index += 1
                yield out
                if stat.S_ISDIR(st.st_mode):
                    child = os.open(name, _DIR, dir_fd=dfd)
                    stack.append((path, child, iter(sorted(os.listdir(child), key=_order))))
        finally:
            for _, dfd, _ in stack:
                os.close(dfd)

    def _stat(self, path: str, name: str, dfd: int, st: os.stat_result,
              inodes: dict[tuple[int, int], str]) -> stat_pb2.Stat:
        out = stat_pb2.Stat(path=path, mode=go_mode(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                            modTime=st.st_mtime_ns)
        if stat.S_ISDIR(st.st_mode):
            return out
        out.size = st.st_size
        if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
            out.devmajor, out.devminor = split_device(st.st_rdev)
        elif stat.S_ISLNK(st.st_mode):
            out.linkname = os.readlink(name, dir_fd=dfd)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            first = inodes.setdefault((st.st_dev, st.st_ino), path)
            if first != path:
                out.linkname = first  # (mkstat sets Size after setUnixOpt zeroed it)
        return out

    def open(self, file_id: int) -> int | None:
        """A read descriptor of the file listed as file_id (once); None when it is gone
        or no longer a regular file (its data is then empty, as fsutil sends it)."""
        path = self.files.pop(file_id)
        parent, _, name = path.rpartition("/")
        try:
            return open_regular(name, self.dirs.get(parent, create=False), live=False)
        except OSError:
            return None
        finally:
            self.dirs.trim()

    def has(self, file_id: int) -> bool:
        return file_id in self.files

    def close(self) -> None:
        self.dirs.close()
        with contextlib.suppress(OSError):
            os.close(self.root_fd)
