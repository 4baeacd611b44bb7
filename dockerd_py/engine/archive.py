"""Image-layer tars: safe extraction into an overlay lower dir, and creation from a tree.

Blocking code: the engine runs it through `asyncio.to_thread`.

`apply_layer` trusts nothing in the tar. Names are cleaned as dockerd cleans them (leading
"/" dropped, ".." climbing out of the root rejected) and every parent of an entry must be a
real directory inside the root: a path through a symlink is rejected, never resolved. The
check is an `lstat` per new parent, which is enough because the root is private to the
extraction while it runs, and final components are created with O_EXCL/O_NOFOLLOW
semantics (mkdir, mknod, symlink, link and O_EXCL opens never follow a symlink).

Whiteouts use the overlayfs format, so the result is a lowerdir as is: ".wh.x" becomes the
0:0 character device "x", ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory.
`write_layer` converts an upper dir back.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import json
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

import zstandard

from dockerd_py.errors import InvalidParameter

try:  # ISA-L inflates gzip about four times faster than zlib: it paces `docker pull`
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    _GzipFile: type[gzip.GzipFile] = _igzip.GzipFile
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,
                                                     cast(type[Exception], _isal_zlib.error))
except ImportError:  # pragma: no cover - the stdlib is the fallback
    _GzipFile = gzip.GzipFile
    _INFLATE_ERRORS = (zlib.error,)
# How decompressors report corrupt or truncated input.
_DATA_ERRORS: tuple[type[Exception], ...] = (EOFError, lzma.LZMAError, zstandard.ZstdError,
                                             *_INFLATE_ERRORS)

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTRS = "trusted.overlay."
_PAX_XATTR = "SCHILY.xattr."
_PRIVILEGED_XATTRS = ("trusted.", "security.")
_MAGICS = {b"\x1f\x8b\x08": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
           b"\xfd7zXZ\x00": "xz"}
# tarfile reads PAX and GNU long-name headers whole; like Go's archive/tar, refuse metadata
# beyond this, so that a declared size cannot make us buffer gigabytes.
_MAX_METADATA = 2 * CHUNK
# Errors a hostile name or tree shape can provoke from the filesystem: the client's fault.
_INPUT_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EMLINK,
                 errno.E2BIG, errno.ERANGE, errno.EINVAL, errno.ENOENT}


class ArchiveError(InvalidParameter):
    """The archive is malformed, truncated, or tries to write outside its root."""


@dataclass(frozen=True)
class LayerStats:
    diff_id: str  # "sha256:<hex>" of the whole uncompressed tar stream
    size: int  # sum of the sizes of the regular files and symlinks in the layer (as dockerd)


# --- compression -------------------------------------------------------------------------


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes (6 are enough)."""
    for magic, kind in _MAGICS.items():
        if head.startswith(magic):
            return kind
    # A zstd stream may open with skippable frames (magic 0x184D2A5?, little endian).
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"
    return "none"


class _Reader:
    """The minimal readable stream tarfile and the decompressors use: puts peeked bytes back
    in front of `rest`, and, for a decompressor (`kind`), turns data errors into ArchiveError.
    """

    def __init__(self, rest: BinaryIO, head: bytes = b"", kind: str = "") -> None:
        self._rest, self._head, self._kind = rest, head, kind

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:
        """For ISA-L's gzip reader, which fills its own buffer."""
        data = self.read(len(buf))
        memoryview(buf)[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._head:
            cut = len(self._head) if size < 0 else size
            data, self._head = self._head[:cut], self._head[cut:]
            return data + self.read() if size < 0 else data
        try:
            return self._rest.read(size)
        except _DATA_ERRORS as e:
            raise ArchiveError(f"corrupt {self._kind} stream: {_eof_wording(e)}") from e
        except OSError as e:
            # gzip/bz2 report bad data as OSError without errno; I/O errors of the source
            # carry one and are not the client's fault.
            if e.errno is not None or not self._kind:
                raise
            raise ArchiveError(f"corrupt {self._kind} stream: {e}") from e


_DECOMPRESSORS: dict[str, Callable[[BinaryIO], object]] = {
    "gzip": lambda f: _GzipFile(fileobj=f, mode="rb"),
    "bzip2": lambda f: bz2.BZ2File(f, "rb"),
    "xz": lambda f: lzma.LZMAFile(f, "rb"),
    # python-zstandard does not report a stream cut inside a frame: the tar reader catches
    # most such cuts, the caller's diff_id check the rest.
    "zstd": lambda f: zstandard.ZstdDecompressor().stream_reader(
        f, read_size=CHUNK, read_across_frames=True),
}


def decompressed(fileobj: BinaryIO) -> BinaryIO:
    """Wrap a readable stream (seekable or not) so that it yields the uncompressed bytes."""
    head = b""
    while len(head) < 6 and (more := fileobj.read(6 - len(head))):
        head += more
    source = cast(BinaryIO, _Reader(fileobj, head))
    kind = detect_compression(head)
    if kind == "none":
        return source
    inner = cast(BinaryIO, _DECOMPRESSORS[kind](source))
    return cast(BinaryIO, _Reader(inner, kind=kind))


def _eof_wording(e: BaseException) -> str:
    text = str(e)
    if isinstance(e, EOFError) or "end of data" in text or "ended before" in text:
        return "unexpected EOF"
    return text


# --- extraction --------------------------------------------------------------------------


class _LayerReader:
    """Forward-only, buffered, hashing view of the uncompressed tar stream.

    tarfile (non-stream mode) only seeks forward when members are read in order, so
    seek() skips by reading. File data bypasses tarfile through copy_to(), without copies.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._sha = hashlib.sha256()
        self._buf, self._off, self._consumed = b"", 0, 0
        self.last_read = b""

    def fill(self) -> bool:
        """Make sure unread bytes are buffered; False at EOF."""
        if self._off < len(self._buf):
            return True
        data = self._source.read(CHUNK)
        self._sha.update(data)
        self._consumed += len(data)
        self._buf, self._off = data, 0
        return bool(data)

    def tell(self) -> int:
        return self._consumed - (len(self._buf) - self._off)

    def read(self, size: int) -> bytes:
        if not 0 <= size <= _MAX_METADATA:
            raise ArchiveError(f"invalid layer tar: header of {size} bytes is too large")
        parts = []
        while size > 0 and self.fill():
            part = self._buf[self._off : self._off + size]
            self._off += len(part)
            size -= len(part)
            parts.append(part)
        self.last_read = parts[0] if len(parts) == 1 else b"".join(parts)
        return self.last_read

    def seek(self, pos: int) -> int:
        skip = pos - self.tell()
        if skip < 0:
            raise ArchiveError("invalid layer tar: backward seek")
        while skip > 0 and self.fill():  # past the end is allowed, as for files
            step = min(skip, len(self._buf) - self._off)
            self._off += step
            skip -= step
        return self.tell()

    def copy_to(self, fd: int, size: int) -> None:
        while size > 0:
            if not self.fill():
                raise ArchiveError("invalid layer tar: unexpected EOF in file data")
            view = memoryview(self._buf)[self._off : self._off + size]
            self._off += len(view)
            size -= len(view)
            _write_all(fd, view)

    def finish(self) -> str:
        """Read to EOF (the end padding belongs to the diff_id) and return the digest."""
        self._off = len(self._buf)
        while self.fill():
            self._off = len(self._buf)
        return "sha256:" + self._sha.hexdigest()


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _bad(name: str, why: str) -> ArchiveError:
    return ArchiveError(f"invalid tar entry {json.dumps(name)}: {why}")


def clean_name(name: str) -> str:
    """Docker's rule for entry names: clean, drop a leading "/", refuse to climb out.

    Returns the path relative to the root; "" is the root itself.
    """
    if "\x00" in name:
        raise _bad(name, "name contains NUL")
    if not name:
        raise _bad(name, "empty name")
    cleaned = posixpath.normpath(name).lstrip("/")
    if cleaned == ".." or cleaned.startswith("../"):
        raise _bad(name, "path escapes the layer root")
    return "" if cleaned == "." else cleaned


def _mtime_ns(m: tarfile.TarInfo) -> int:
    return round(m.mtime * 1e9) if isinstance(m.mtime, float) else int(m.mtime) * 10**9


class _Extractor:
    def __init__(self, root: str, stream: _LayerReader, same_owner: bool) -> None:
        self.root = os.path.abspath(root)
        self.stream = stream
        self.same_owner = same_owner
        self.privileged = os.geteuid() == 0
        self.size = 0
        # Directories known to be real (not symlinks) inside root -> the (mode, mtime_ns)
        # to apply at the end, or None for parents created implicitly.
        self.dirs: dict[str, tuple[int, int] | None] = {"": None}

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def _next(self, tar: tarfile.TarFile, last: tarfile.TarInfo | None) -> tarfile.TarInfo | None:
        try:
            return tar.next()
        except tarfile.ReadError as e:
            # Go's archive/tar (dockerd, containerd) takes EOF right after the last member's
            # data, before its block padding, as the end of the archive; umoci writes such
            # layers. EOF anywhere else (inside the padding too) stays an error.
            if (last is not None and str(e) == "unexpected end of data"
                    and not self.stream.fill()
                    and self.stream.tell() == last.offset_data + last.size):
                return None
            raise

    def run(self, tar: tarfile.TarFile) -> None:
        last: tarfile.TarInfo | None = None
        while (m := self._next(tar, last)) is not None:
            last = m
            tar.members.clear()  # type: ignore[attr-defined]  # a layer may have millions
            try:
                self.entry(tar, m)
            except OSError as e:
                if e.errno not in _INPUT_ERRNOS:
                    raise
                raise _bad(m.name, e.strerror or str(e)) from e
            except (ValueError, OverflowError) as e:  # e.g. an absurd uid or mtime
                raise _bad(m.name, str(e)) from e
        # tarfile ends silently on a short or garbled header after the first; the last
        # block it read tells which. A clean EOF on a block boundary is accepted, as Go does.
        block = self.stream.last_read
        if block and self.stream.tell() - len(block) == tar.offset:
            if len(block) < tarfile.BLOCKSIZE:
                raise ArchiveError("invalid layer tar: unexpected EOF in header")
            if block.count(0) != tarfile.BLOCKSIZE:
                raise ArchiveError(f"invalid layer tar: invalid header at offset {tar.offset}")
        # Deepest first, so a parent's mtime is set after its children are final.
        for rel in sorted(self.dirs, key=lambda d: d.count("/") + bool(d), reverse=True):
            if (meta := self.dirs[rel]) is not None:
                os.chmod(self.path(rel), meta[0])
                os.utime(self.path(rel), ns=(meta[1], meta[1]), follow_symlinks=False)

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name)
        base = posixpath.basename(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(m, rel, base)
        elif rel.startswith(WHITEOUT_META_PREFIX):
            pass  # inside aufs metadata directories (.wh..wh.plnk/...)
        elif m.isdir():
            self.directory(m, rel)
        elif not rel:
            raise _bad(m.name, "cannot replace the layer root")
        elif m.isreg():
            self.regular(tar, m, rel)
        elif m.islnk():
            self.hardlink(m, rel)
        elif m.issym():
            if "\x00" in m.linkname:
                raise _bad(m.name, "link target contains NUL")
            os.symlink(m.linkname, path := self.replace(m, rel))
            self.finish_entry(m, path)
            self.size += len(os.fsencode(m.linkname))  # dockerd counts symlinks' own size
        elif m.isfifo():
            os.mkfifo(path := self.replace(m, rel), 0o600)
            self.finish_entry(m, path)
        elif m.ischr() or m.isblk():
            self.device(m, rel)
        else:
            raise _bad(m.name, f"unsupported entry type {m.type!r}")

    def parent_dirs(self, m: tarfile.TarInfo, rel: str, *, create: bool = True) -> None:
        """Make sure every ancestor of rel is a real directory inside root."""
        missing = []
        parent = posixpath.dirname(rel)
        while parent not in self.dirs:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for parent in reversed(missing):
            try:
                st = os.lstat(self.path(parent))
            except FileNotFoundError:
                if not create:  # only hardlink targets are looked up, not created
                    raise _bad(m.name, f"hardlink target {json.dumps(m.linkname)} is not an "
                               "earlier entry of this layer") from None
                os.mkdir(self.path(parent), 0o755)
            else:
                if stat.S_ISLNK(st.st_mode):
                    raise _bad(m.name, f"parent {json.dumps(parent)} is a symlink")
                if not stat.S_ISDIR(st.st_mode):
                    raise _bad(m.name, f"parent {json.dumps(parent)} is not a directory")
            self.dirs[parent] = None

    def replace(self, m: tarfile.TarInfo, rel: str, *, keep_dir: bool = False) -> str:
        """Clear the way for rel and return its path; an existing directory stays if keep_dir."""
        self.parent_dirs(m, rel)
        path = self.path(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
        elif not keep_dir:
            shutil.rmtree(path)
            inside = rel + "/"
            self.dirs = {d: v for d, v in self.dirs.items()
                         if d != rel and not d.startswith(inside)}
        return path

    def directory(self, m: tarfile.TarInfo, rel: str) -> None:
        path = self.replace(m, rel, keep_dir=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass  # replace() kept a directory: only its metadata changes
        self.chown(m, path)
        self.set_xattrs(m, path)
        # Mode and mtime wait until the end: children would bump the mtime, and a
        # read-only directory would stop an unprivileged extraction.
        self.dirs[rel] = (m.mode & 0o7777, _mtime_ns(m))

    def regular(self, tar: tarfile.TarFile, m: tarfile.TarInfo, rel: str) -> None:
        path = self.replace(m, rel)
        # O_EXCL: a fresh inode, so a hardlink made earlier to the file this entry replaces
        # keeps its content.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            if m.sparse is not None and (src := tar.extractfile(m)) is not None:
                while data := src.read(CHUNK):
                    _write_all(fd, data)
            else:
                self.stream.copy_to(fd, m.size)
            if self.same_owner:
                os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, m.mode & 0o7777)  # after chown, which clears setuid/setgid
            self.set_xattrs(m, fd)
            os.utime(fd, ns=(_mtime_ns(m), _mtime_ns(m)))
        finally:
            os.close(fd)
        self.size += m.size

    def hardlink(self, m: tarfile.TarInfo, rel: str) -> None:
        try:
            target = clean_name(m.linkname)
        except ArchiveError:
            raise _bad(m.name, f"hardlink target {json.dumps(m.linkname)} escapes the layer "
                       "root") from None
        if target in ("", rel):
            raise _bad(m.name, "hardlink to itself or to the root")
        self.parent_dirs(m, target, create=False)
        try:
            st = os.lstat(self.path(target))
        except FileNotFoundError:
            raise _bad(m.name, f"hardlink target {json.dumps(m.linkname)} is not an earlier "
                       "entry of this layer") from None
        if stat.S_ISDIR(st.st_mode):
            raise _bad(m.name, "hardlink to a directory")
        os.link(self.path(target), self.replace(m, rel), follow_symlinks=False)

    def device(self, m: tarfile.TarInfo, rel: str) -> None:
        if not self.privileged:
            return  # as dockerd: device nodes only when running as root
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        try:
            os.mknod(path := self.replace(m, rel), kind | 0o600,
                     os.makedev(m.devmajor, m.devminor))
        except PermissionError:
            return  # root in a user namespace may not create devices
        self.finish_entry(m, path)

    def whiteout(self, m: tarfile.TarInfo, rel: str, base: str) -> None:
        parent = posixpath.dirname(rel)
        if base == OPAQUE_MARKER:
            self.parent_dirs(m, rel)
            os.setxattr(self.path(parent), OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other aufs metadata
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise _bad(m.name, "invalid whiteout")
        path = self.replace(m, posixpath.join(parent, hidden))
        os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
        self.chown(m, path)

    def chown(self, m: tarfile.TarInfo, path: str) -> None:
        if self.same_owner:
            os.chown(path, m.uid, m.gid, follow_symlinks=False)

    def finish_entry(self, m: tarfile.TarInfo, path: str) -> None:
        self.chown(m, path)
        if not m.issym():  # Linux has no lchmod; path is a node we just created
            os.chmod(path, m.mode & 0o7777)
        self.set_xattrs(m, path)
        os.utime(path, ns=(_mtime_ns(m), _mtime_ns(m)), follow_symlinks=False)

    def set_xattrs(self, m: tarfile.TarInfo, target: str | int) -> None:
        for key, text in m.pax_headers.items():
            name = key[len(_PAX_XATTR) :]
            # Overlay's own xattrs never come from a tar: only whiteouts express them.
            if not key.startswith(_PAX_XATTR) or name.startswith(_OVERLAY_XATTRS):
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
                if name.startswith(_PRIVILEGED_XATTRS) and self.privileged:
                    raise _bad(m.name, f"cannot set xattr {name}: {e.strerror}") from e


def apply_layer(fileobj: BinaryIO, root: str, *, same_owner: bool | None = None) -> LayerStats:
    """Extract one layer tar (any supported compression) into the empty directory root.

    One streaming pass; the diff_id covers the whole uncompressed stream, read to EOF.
    Raises ArchiveError for malformed or hostile input; nothing is written outside root.
    """
    if same_owner is None:
        same_owner = os.geteuid() == 0
    stream = _LayerReader(decompressed(fileobj))
    extractor = _Extractor(root, stream, same_owner)
    if stream.fill():  # an empty stream is an empty layer
        try:
            extractor.run(tarfile.TarFile(fileobj=cast(BinaryIO, stream), mode="r"))
        except tarfile.TarError as e:
            raise ArchiveError(f"invalid layer tar: {_eof_wording(e)}") from e
    return LayerStats(diff_id=stream.finish(), size=extractor.size)


# --- creation ----------------------------------------------------------------------------


class _HashingWriter:
    def __init__(self, sink: BinaryIO) -> None:
        self._sink, self._sha, self._pos = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self._sha.update(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def _walk(root: str) -> Iterator[tuple[str, str, os.stat_result]]:
    """Depth first, each directory's names in byte order: a deterministic path order."""
    pending = [""]
    while pending:
        rel = pending.pop()
        path = os.path.join(root, rel) if rel else root
        st = os.lstat(path)
        if rel:
            yield rel, path, st
        if stat.S_ISDIR(st.st_mode):
            names = sorted(os.listdir(path), key=os.fsencode, reverse=True)
            pending.extend(posixpath.join(rel, name) for name in names)


def _read_xattrs(path: str) -> dict[str, bytes]:
    found = {}
    with contextlib.suppress(OSError):  # ENOTSUP: no xattrs on this filesystem
        for name in sorted(os.listxattr(path, follow_symlinks=False)):
            with contextlib.suppress(OSError):  # ENODATA: removed meanwhile
                found[name] = os.getxattr(path, name, follow_symlinks=False)
    return found


def _header(name: str, st: os.stat_result, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, stat.S_IMODE(st.st_mode)
    info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
    info.mtime = int(st.st_mtime)  # whole seconds, as moby, for reproducible layers
    return info


_KINDS = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
          stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
          stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


def _write_tree(root: str, fileobj: BinaryIO, *, layer: bool, whiteouts: bool) -> LayerStats:
    sink = _HashingWriter(fileobj)
    tar = tarfile.TarFile(fileobj=cast(BinaryIO, sink), mode="w", format=tarfile.PAX_FORMAT,
                          copybufsize=CHUNK)
    first_names: dict[tuple[int, int], str] = {}
    size = 0
    for rel, path, st in _walk(root):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            continue  # sockets cannot be represented in a tar; Docker skips them too
        if layer and kind == tarfile.CHRTYPE and st.st_rdev == 0:  # an overlay whiteout
            if whiteouts:
                head, base = posixpath.split(rel)
                info = _header(posixpath.join(head, WHITEOUT_PREFIX + base), st)
                info.mode = 0o600
                tar.addfile(info)
            continue
        info = _header(rel, st, kind)
        xattrs = _read_xattrs(path)
        opaque = layer and whiteouts and xattrs.get(OPAQUE_XATTR) == b"y"
        info.pax_headers = {_PAX_XATTR + k: v.decode("utf-8", "surrogateescape")
                            for k, v in xattrs.items()
                            if not (layer and k.startswith(_OVERLAY_XATTRS))}
        if kind != tarfile.DIRTYPE and st.st_nlink > 1:
            inode = (st.st_dev, st.st_ino)
            if inode in first_names:
                info.type, info.linkname = tarfile.LNKTYPE, first_names[inode]
                tar.addfile(info)
                continue
            first_names[inode] = rel
        if kind == tarfile.REGTYPE:
            info.size = st.st_size
            size += st.st_size
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb", buffering=0) as f:
                tar.addfile(info, f)
            continue
        if kind == tarfile.SYMTYPE:
            info.linkname = os.readlink(path)
            size += len(os.fsencode(info.linkname))
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
        if opaque:  # right after its directory, as moby's overlay converter does
            tar.addfile(_header(posixpath.join(rel, OPAQUE_MARKER), st))
    tar.close()
    return LayerStats(diff_id=sink.digest(), size=size)


def write_layer(root: str, fileobj: BinaryIO, *, parents_whiteouts: bool = True) -> LayerStats:
    """Write the overlay upper dir at root as a deterministic, uncompressed layer tar.

    Overlay whiteouts become ".wh.<name>" entries; an opaque directory is followed by a
    "<dir>/.wh..wh..opq" entry. parents_whiteouts=False leaves both out: a layer without
    parent layers has nothing to hide. trusted.overlay.* xattrs are never written.
    """
    return _write_tree(root, fileobj, layer=True, whiteouts=parents_whiteouts)


def tar_paths(root: str, fileobj: BinaryIO) -> None:
    """Tar the whole tree at root as it is (no whiteout conversion), in path order."""
    _write_tree(root, fileobj, layer=False, whiteouts=False)
