"""A container's files: `docker cp` (archive), `docker export`, `docker diff`, `docker commit`.

Reaching the files
------------------
`rootfs()` mounts the container's overlay at <state_dir>/rootfs for as long as someone uses
it; a running container has it mounted already. cp and export then work in a *view*, as
dockerd's openContainerFS does: a thread of its own that unshares its mount namespace and
filesystem context, binds the container's volumes, bind mounts and daemon-managed /etc
files over the rootfs (tmpfs mounts are not shown, as in dockerd), and chroots into it. The
kernel resolves every path there, so a symlink the container planted ("/", "../../..")
stays inside the container; what the view mounts is seen nowhere else and goes away with
the thread. Running and stopped containers are seen the same way. /proc/<pid>/root was the
other candidate: it does not exist for stopped containers and would show the container's
/proc, /dev and tmpfs mounts, which dockerd leaves out.

Locking: the container's lock is held while the rootfs is mounted or released, not across
the streams (dockerd holds its container lock during cp; ours would also hold up stop and
exit handling). Users are counted; the last one unmounts unless the container runs, or
exists in the runtime, by then: the mount is then the container's own.

diff and commit read the overlay upper dir (the container's snapshot directory) against
the image's layer directories, without mounting. The result is dockerd's naive diff
(archive.ChangesDirs), in path order; paths of dockerd's init layer (/etc/hosts, /proc, ...)
that the runtime creates as mount points count as unchanged, as there. The commit layer
holds exactly the changes: changed entries from the upper dir, whiteouts for deletions.

Blocking code runs in the view thread or through asyncio.to_thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import dataclasses
import datetime
import errno
import json
import os
import posixpath
import queue
import shutil
import stat
import tarfile
import threading
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar, cast

from ...errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound
from .. import archive
from ..aio import ThreadReader, ThreadWriter
from ..images.changes import apply_changes
from ..images.mediatypes import OCI_LAYER, now_rfc3339
from ..images.platform import ARCH, OS
from ..images.service import parse_ref
from ..images.unpack import LayerBlob, unpack
from ..reference import InvalidReference, with_default_tag, with_tag
from ..runtime.users import resolve_user
from . import bundle
from .records import Container

T = TypeVar("T")

CHUNK = 1 << 20
MODIFIED, ADDED, DELETED = 0, 1, 2

# Paths of dockerd's init layer (daemon/initlayer): mount points the runtime may create in
# the upper dir. Missing from the image, they are no change; /dev and /etc are their parents.
_INIT_PATHS = frozenset({"/dev/pts", "/dev/shm", "/proc", "/sys", "/.dockerenv",
                         "/etc/resolv.conf", "/etc/hosts", "/etc/hostname", "/dev/console",
                         "/etc/mtab", "/dev", "/etc"})
_ETC_FILES = (("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname"),
              ("/etc/hosts", "hosts"))
_CAPABILITY = "security.capability"
_OPAQUE = "trusted.overlay.opaque"

# -- syscalls -------------------------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_CLONE_FS, _CLONE_NEWNS = 0x200, 0x20000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 0x1, 0x20, 0x1000, 0x4000, 0x80000
_SYS_OPENAT2 = 437  # the same number on every architecture
_RESOLVE_NO_MAGICLINKS, _RESOLVE_IN_ROOT = 0x02, 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(_libc.mount(os.fsencode(source) if source else None, os.fsencode(target), None,
                       flags, None), target)


def _open_in_root(root_fd: int, rel: str, flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
    """openat2(RESOLVE_IN_ROOT): rel's symlinks and ".." never leave root_fd's directory."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
    fd = _libc.syscall(_SYS_OPENAT2, root_fd, (rel or ".").encode("utf-8", "surrogateescape"),
                       ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), rel)
    return int(fd)


# -- Go's view of paths and files (pure) ------------------------------------------------------

_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID = 1 << 24, 1 << 23, 1 << 22
_GO_CHAR, _GO_STICKY = 1 << 21, 1 << 20
_GO_TYPES = {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHAR, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET}


def go_file_mode(st_mode: int) -> int:
    """An st_mode as Go's os.FileMode, which the archive stat header carries."""
    mode = (st_mode & 0o777) | _GO_TYPES.get(stat.S_IFMT(st_mode), 0)
    for bit, go_bit in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID),
                        (stat.S_ISVTX, _GO_STICKY)):
        if st_mode & bit:
            mode |= go_bit
    return mode


def go_base(path: str) -> str:
    """filepath.Base: the last element, trailing slashes ignored; "/" and "." as Go has them."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def absolute(path: str) -> str:
    """filepath.Join("/", path): cleaned and absolute."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def preserve_trailing(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator: a cleaned path keeps the "/." or "/" the
    user wrote, which cp reads as "the directory's contents" / "must be a directory"."""
    if go_base(cleaned) != "." and go_base(original) == ".":
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def rfc3339_ns(ns: int) -> str:
    when = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _go_error(op: str, path: str, e: OSError) -> str:
    text = e.strerror or str(e)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"


# -- the view ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Bind:
    source: str
    destination: str
    rw: bool


class _View:
    """A thread whose root directory is the container's (see the module doc)."""

    def __init__(self, rootfs: str, binds: Sequence[_Bind]) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(rootfs, list(binds)),
                                        name="container-fs", daemon=True)

    async def open(self) -> None:
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:
                    future.set_exception(e)

        self._jobs.put(job)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _main(self, rootfs: str, binds: list[_Bind]) -> None:
        try:
            _enter(rootfs, binds)
        except BaseException as e:
            self._ready.set_exception(e)
            return  # the thread ends, and its namespace with it
        self._ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            job()


def _enter(rootfs: str, binds: list[_Bind]) -> None:
    """Runs first in the view thread. Nothing here may touch the daemon's own context:
    unsharing CLONE_FS is what makes the chroot this thread's alone."""
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_FS), "unshare")  # or no chroot below
    _mount(None, "/", _MS_REC | _MS_SLAVE)  # nothing mounted here propagates back
    sources = []
    try:
        for b in binds:  # host paths: opened before the chroot hides them
            sources.append((os.open(os.path.dirname(b.source) or "/", os.O_PATH | os.O_DIRECTORY
                                    | os.O_CLOEXEC), os.path.basename(b.source) or ".",
                            os.path.isdir(b.source)))
        os.chroot(rootfs)
        os.chdir("/")
        for b, (parent_fd, name, is_dir) in zip(binds, sources, strict=True):
            target = _mount_point(b.destination, is_dir)
            os.fchdir(parent_fd)  # the source, named relative to its parent outside the root
            try:
                _mount(name, target, _MS_BIND | _MS_REC)
            finally:
                os.chdir("/")
            if not b.rw:
                _mount(None, target, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
    finally:
        for fd, _, _ in sources:
            os.close(fd)


def _mount_point(destination: str, is_dir: bool) -> str:
    """In the chroot: the mount point with its symlinks resolved (inside the container),
    created if missing, as dockerd does (an image's /etc/resolv.conf -> ../run/... too)."""
    real = os.path.realpath(destination)
    if not os.path.exists(real):
        if is_dir:
            os.makedirs(real, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(real), 0o755, exist_ok=True)
            os.close(os.open(real, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755))
    return real


def _binds(service: Any, c: Container) -> list[_Bind]:
    """Volumes and bind mounts, then the /etc files a user mount does not replace;
    parents before children."""
    out, taken = [], set()
    for p in c.mounts:
        source = p.get("Source") or ""
        if p.get("Type") == "tmpfs" or not source or not os.path.exists(source):
            continue
        out.append(_Bind(source, absolute(p["Destination"]), bool(p.get("RW", True))))
        taken.add(absolute(p["Destination"]))
    rw = not c.host_config.get("ReadonlyRootfs")
    for dest, name in _ETC_FILES:
        source = os.path.join(service.store.state_dir(c.id), name)
        if dest not in taken and os.path.exists(source):
            out.append(_Bind(source, dest, rw))
    return sorted(out, key=lambda b: b.destination.count("/") if b.destination != "/" else 0)


# -- rootfs -------------------------------------------------------------------------------------

_USERS: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def _in_runtime(service: Any, c: Container) -> bool:
    """Does the container use its rootfs: running, or created in the runtime (attach
    before start does that)?"""
    if c.state.running:
        return True
    try:
        service.monitor.load(c.id)
    except DaemonError:
        return False
    return True


@contextlib.asynccontextmanager
async def rootfs(service: Any, container: Container) -> AsyncIterator[str]:
    """The host path of the container's root filesystem (its overlay, no volumes), mounted
    for the duration if the container does not run."""
    users = _USERS.setdefault(service, {})
    cid = container.id
    async with service.store.lock(cid):
        c = service.get(cid)
        mounts = await service.snapshots.mounts(cid)
        path = await asyncio.to_thread(bundle.mount_rootfs, service.store.state_dir(cid), mounts,
                                       service.snapshots.root)
        users[cid] = users.get(cid, 0) + 1
    try:
        yield path
    finally:
        async with service.store.lock(cid):
            users[cid] -= 1
            if not users[cid]:
                del users[cid]
                try:
                    c = service.get(cid)
                except NotFound:
                    pass  # removed meanwhile: remove() unmounted it
                else:
                    if not _in_runtime(service, c):
                        await asyncio.to_thread(bundle.teardown, service.store.state_dir(cid))


@contextlib.asynccontextmanager
async def _view(service: Any, c: Container, *, mounts: bool) -> AsyncIterator[_View]:
    """A view of the container's files; with mounts, its volumes and binds are in it."""
    held: list[tuple[str, str]] = []
    async with rootfs(service, c) as path:
        try:
            binds = _binds(service, c) if mounts else []
            volumes = service.volumes
            if mounts and volumes is not None:
                # Device-backed volumes must be mounted to be seen. A reference of our own
                # keeps the container's reference count (and its unmount at exit) intact.
                for p in c.mounts:
                    if p.get("Type") == "volume" and p.get("Name"):
                        vol = await volumes.get(p["Name"])
                        if vol.needs_mount:
                            ref = f"{c.id}-fs-{uuid.uuid4().hex[:12]}"
                            await volumes.mount(vol.name, ref, destination=p["Destination"],
                                                rw=bool(p.get("RW", True)))
                            held.append((vol.name, ref))
            view = _View(path, binds)
            try:
                await view.open()
            except OSError as e:
                await view.close()
                raise InternalError(f"cannot open the filesystem of container {c.id}: "
                                    f"{e}") from None
            try:
                yield view
            finally:
                await view.close()
        finally:
            for name, ref in held:
                with contextlib.suppress(DaemonError):
                    await volumes.unmount(name, ref)


async def _stream(view: _View, writer_fn: Callable[[ThreadWriter], None]
                  ) -> AsyncGenerator[bytes, None]:
    """aio.produce, with the writer running in the view."""
    w = ThreadWriter(asyncio.get_running_loop())

    def run() -> None:
        try:
            writer_fn(w)
        except BaseException as e:  # handed to the reader, which re-raises it
            with contextlib.suppress(BrokenPipeError):
                w.finish(e)
            return
        with contextlib.suppress(BrokenPipeError):
            w.finish()

    done = view.submit(run)
    chunks = cast(AsyncGenerator[bytes, None], w.chunks())
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # now, so that a writer blocked on a full queue gives up
        await asyncio.wrap_future(done)


def _event(service: Any, c: Container, action: str, **extra: str) -> None:
    service.store.event(c, action, **extra)


# -- writing tars --------------------------------------------------------------------------------

_TAR_KINDS = {stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
              stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
              stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFREG: tarfile.REGTYPE}


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


class _Counting:
    """What tarfile needs of a sink it writes to: write() and tell()."""

    def __init__(self, sink: Any) -> None:
        self._sink, self._pos = sink, 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


class _TarOut:
    """Tar entries as go-archive's addTarFile writes them: PAX when needed, whole-second
    mtimes, no user/group names, hard links by inode, only security.capability kept."""

    def __init__(self, sink: Any) -> None:
        self.tar = tarfile.TarFile(fileobj=cast(BinaryIO, _Counting(sink)), mode="w",
                                   format=tarfile.PAX_FORMAT, copybufsize=CHUNK)
        self._links: dict[tuple[int, int], str] = {}

    def add(self, arcname: str, name: str, dir_fd: int | None = None) -> None:
        """Add the file `name` (relative to dir_fd) as `arcname`. A file that vanished or
        changed kind meanwhile (the container may be running) or a socket is skipped, as
        go-archive logs and skips it."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return
        kind = _TAR_KINDS.get(stat.S_IFMT(st.st_mode))
        if kind is None:
            return  # sockets cannot be archived; Go's tar refuses them too
        info = tarfile.TarInfo(arcname)
        info.type, info.mode = kind, stat.S_IMODE(st.st_mode)
        info.uid, info.gid, info.uname, info.gname = st.st_uid, st.st_gid, "", ""
        info.mtime = int(st.st_mtime)
        if kind != tarfile.DIRTYPE and st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), arcname)
            if first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self.tar.addfile(info)
                return
        if kind == tarfile.SYMTYPE:
            try:
                info.linkname = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                return
        elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        if kind != tarfile.REGTYPE:
            self.tar.addfile(info)
            return
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return  # gone, or replaced by a symlink, meanwhile
        try:
            info.size = os.fstat(fd).st_size
            cap = _capability(fd)
            if cap is not None:
                info.pax_headers = {"SCHILY.xattr." + _CAPABILITY:
                                    cap.decode("utf-8", "surrogateescape")}
            self.tar.addfile(info, cast(BinaryIO, _Exactly(fd, info.size)))
        finally:
            os.close(fd)

    def close(self) -> None:
        self.tar.close()


def _xattr(target: int | str, name: str) -> bytes | None:
    """An xattr of an open file, or of a path without following its last symlink."""
    try:
        if isinstance(target, int):
            return os.getxattr(target, name)
        return os.getxattr(target, name, follow_symlinks=False)
    except OSError:
        return None


def _capability(target: int | str) -> bytes | None:
    value = _xattr(target, _CAPABILITY)
    if value is None:
        return None
    if len(value) > 3 and value[3] == 3:  # VFS_CAP_REVISION_3 -> 2, as go-archive
        value = value[:3] + b"\x02" + value[4:20]
    return value


def _walk(top: str) -> Iterator[tuple[str, str]]:
    """(relative name, path) below top, depth first, names in byte order (filepath.WalkDir);
    directories are entered, symlinks to them are not."""
    try:
        names = sorted(os.listdir(top), key=os.fsencode)
    except OSError:
        return  # gone, or not a directory any more
    for name in names:
        path = posixpath.join(top, name)
        yield name, path
        with contextlib.suppress(OSError):
            if stat.S_ISDIR(os.lstat(path).st_mode):
                for rel, sub in _walk(path):
                    yield f"{name}/{rel}", sub


def _tar_resource(abs_path: str, w: ThreadWriter) -> None:
    """In the view: the tar `docker cp` reads, its root entry named after the basename."""
    out = _TarOut(w)
    rebase = go_base(abs_path)
    prefix = "" if rebase == "/" else rebase
    out.add(prefix, abs_path)
    if stat.S_ISDIR(os.lstat(abs_path).st_mode):
        for rel, path in _walk(abs_path):
            out.add(f"{prefix}/{rel}", path)
    out.close()


def _tar_root(w: ThreadWriter) -> None:
    """In the view: the whole root filesystem, as `docker export` writes it."""
    out = _TarOut(w)
    for rel, path in _walk("/"):
        out.add(rel, path)
    out.close()


# -- docker cp ----------------------------------------------------------------------------------


def _not_found(path: str, ref: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {ref}")


def _stat(path: str, shown: str, ref: str) -> dict[str, Any]:
    """In the view: the PathStat of path (not following a final symlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _not_found(shown, ref) from None
    except OSError as e:
        raise InternalError(_go_error("lstat", path, e)) from None
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)  # as far as it resolves, inside the root
    return {"name": go_base(path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339_ns(st.st_mtime_ns), "linkTarget": target}


def _check_ref(ref: str) -> None:
    if not ref:
        raise InvalidParameter('invalid name or ID supplied: ""')


async def stat_path(service: Any, ref: str, path: str) -> dict[str, Any]:
    """HEAD /containers/{ref}/archive?path= : what the X-Docker-Container-Path-Stat
    header carries."""
    _check_ref(ref)
    c = service.get(ref)
    async with _view(service, c, mounts=True) as view:
        return await view.run(_stat, path, path, ref)


@contextlib.asynccontextmanager
async def archive_path(service: Any, ref: str, path: str
                       ) -> AsyncIterator[tuple[dict[str, Any], AsyncIterator[bytes]]]:
    """GET /containers/{ref}/archive?path= : (path stat, tar chunks). Errors come before
    the first chunk; the chunks must be read inside the context."""
    _check_ref(ref)
    c = service.get(ref)
    async with _view(service, c, mounts=True) as view:
        abs_path = preserve_trailing(absolute(path), path)
        found = await view.run(_stat, abs_path, path, ref)
        chunks = _stream(view, lambda w: _tar_resource(abs_path, w))
        _event(service, c, "archive-path")
        try:
            yield found, chunks
        finally:
            await chunks.aclose()


def _writable(c: Container, abs_path: str) -> None:
    """dockerd's checkWritablePath: the innermost volume or bind holding the path decides,
    else the rootfs's read-only flag."""
    holder = None
    for p in c.mounts:
        if p.get("Type") == "tmpfs":
            continue
        dest = absolute(p["Destination"])
        if (abs_path == dest or abs_path.startswith(dest.rstrip("/") + "/")) and (
                holder is None or len(dest) > len(absolute(holder["Destination"]))):
            holder = p
    if holder is not None:
        if not holder.get("RW", True):
            raise InvalidParameter("mounted volume is marked read-only")
        return
    if c.host_config.get("ReadonlyRootfs"):
        raise InvalidParameter("container rootfs is marked read-only")


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def _extraction_point(path: str, shown: str, ref: str, c: Container
                      ) -> tuple[str, str | None, str | None]:
    """In the view: the resolved directory to extract into (every symlink followed, the
    last one too), checked as dockerd does; plus /etc/passwd and /etc/group."""
    try:
        resolved = os.path.realpath(absolute(path), strict=True)
    except FileNotFoundError:
        raise _not_found(shown, ref) from None
    except OSError as e:
        raise InternalError(_go_error("lstat", absolute(path), e)) from None
    resolved = preserve_trailing(resolved, path)
    if not stat.S_ISDIR(os.lstat(resolved).st_mode):
        raise InvalidParameter("extraction point is not a directory")
    _writable(c, posixpath.normpath(resolved))
    return resolved, _read_text("/etc/passwd"), _read_text("/etc/group")


async def extract_to_dir(service: Any, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                         copy_uid_gid: bool = False,
                         allow_overwrite_dir_with_file: bool = True) -> None:
    """PUT /containers/{ref}/archive?path= : extract a tar (any compression) into the
    directory at path."""
    _check_ref(ref)
    c = service.get(ref)
    async with _view(service, c, mounts=True) as view:
        dest, passwd, group = await view.run(_extraction_point, path, path, ref, c)
        owner = None
        user = c.config.get("User") or ""
        if copy_uid_gid and user:
            resolved = resolve_user(user, passwd, group, ())
            owner = (resolved.uid, resolved.gid)
        reader = ThreadReader(chunks, asyncio.get_running_loop())
        unpacker = _Unpacker(dest, owner=owner, no_overwrite_dir_non_dir=not
                             allow_overwrite_dir_with_file)
        try:
            await view.run(unpacker.run, reader)
        except FileNotFoundError:  # dockerd maps any "not exist" of the untar so
            raise _not_found(path, ref) from None
    _event(service, c, "extract-to-dir")


class _Unpacker:
    """go-archive's Unpack, run in the view. Every entry lands below `dest`: names are
    cleaned ("../" refused), parents resolve with RESOLVE_IN_ROOT at dest (a symlink to
    "/" means dest), and the last component is created without following anything.
    ".wh." files are plain files here: docker cp does not interpret whiteouts."""

    def __init__(self, dest: str, *, owner: tuple[int, int] | None,
                 no_overwrite_dir_non_dir: bool) -> None:
        self.dest = dest
        self.owner = owner
        self.strict = no_overwrite_dir_non_dir
        self.privileged = os.geteuid() == 0
        self.root_fd = -1
        self.dirs: list[tuple[str, int]] = []

    def run(self, source: BinaryIO) -> None:
        self.root_fd = os.open(self.dest, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                tar = tarfile.open(fileobj=archive.decompressed(source), mode="r|")
            except tarfile.ReadError as e:
                if str(e) == "empty file":
                    return  # no entries: nothing to do, as Go's tar reader sees it
                raise
            while (m := tar.next()) is not None:
                tar.members.clear()  # type: ignore[attr-defined]  # no need to keep them
                self.entry(tar, m)
            for rel, mtime in self.dirs:  # last, so that children do not bump them
                parent, base = posixpath.split(rel)
                with contextlib.suppress(OSError):  # replaced by a later entry: no matter
                    with _closing(self.parent(parent, create=False)) as fd:
                        os.utime(base, ns=(mtime, mtime), dir_fd=fd, follow_symlinks=False)
        except tarfile.TarError as e:
            raise InternalError(f"archive/tar: {e}") from None
        except ValueError as e:  # e.g. a NUL in a name
            raise InternalError(str(e)) from None
        except FileNotFoundError:
            raise  # the caller words it as dockerd does
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise InternalError(f"{where}{e.strerror or e}") from None
        finally:
            os.close(self.root_fd)
            if isinstance(source, ThreadReader):
                with contextlib.suppress(Exception):
                    source.drain()  # an early error must not leave the client mid-body

    def parent(self, rel: str, *, create: bool = True) -> int:
        """An O_PATH fd of the directory rel (below dest), creating missing ones (0755)."""
        try:
            return _open_in_root(self.root_fd, rel)
        except FileNotFoundError:
            if not create:
                raise
        fd = os.dup(self.root_fd)
        prefix = ""
        for part in rel.split("/"):
            prefix = posixpath.join(prefix, part)
            try:
                nfd = _open_in_root(self.root_fd, prefix)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    os.chown(part, 0, 0, dir_fd=fd, follow_symlinks=False)
                    nfd = _open_in_root(self.root_fd, prefix)
                except BaseException:
                    os.close(fd)
                    raise
            os.close(fd)
            fd = nfd
        return fd

    def entry(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = posixpath.normpath(m.name.lstrip("/")) if m.name.lstrip("/") else "."
        if name == ".":
            return
        if name == ".." or name.startswith("../"):
            raise InternalError(f"invalid entry name {json.dumps(m.name)}")
        parent, base = posixpath.split(name)
        with _closing(self.parent(parent)) as fd:
            self.replace(fd, name, base, m)
            self.create(tar, m, fd, name, base)

    def replace(self, fd: int, name: str, base: str, m: tarfile.TarInfo) -> None:
        try:
            st = os.stat(base, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        is_dir = stat.S_ISDIR(st.st_mode)
        if self.strict and is_dir and not m.isdir():
            raise InternalError(f"cannot overwrite directory {json.dumps(name)} with "
                                f"non-directory {json.dumps(self.dest)}")
        if self.strict and not is_dir and m.isdir():
            raise InternalError(f"cannot overwrite non-directory {json.dumps(name)} with "
                                f"directory {json.dumps(self.dest)}")
        if is_dir and not m.isdir():
            shutil.rmtree(base, dir_fd=fd)
        elif not is_dir:
            os.unlink(base, dir_fd=fd)

    def create(self, tar: tarfile.TarFile, m: tarfile.TarInfo, fd: int, name: str,
               base: str) -> None:
        uid, gid = self.owner or (m.uid, m.gid)
        mtime = int(m.mtime) * 10**9
        if m.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(base, m.mode & 0o777, dir_fd=fd)
            os.chown(base, uid, gid, dir_fd=fd, follow_symlinks=False)
            dfd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=fd)
            try:
                self.xattrs(m, dfd)
                os.fchmod(dfd, m.mode & 0o7777)
            finally:
                os.close(dfd)
            self.dirs.append((name, mtime))
            return
        if m.isreg():
            ffd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                          | os.O_CLOEXEC, m.mode & 0o777, dir_fd=fd)
            try:
                src = tar.extractfile(m)
                while src is not None and (data := src.read(CHUNK)):
                    view = memoryview(data)
                    while view:
                        view = view[os.write(ffd, view):]
                os.fchown(ffd, uid, gid)
                self.xattrs(m, ffd)
                os.fchmod(ffd, m.mode & 0o7777)  # after chown, which clears setuid
                os.utime(ffd, ns=(mtime, mtime))
            finally:
                os.close(ffd)
            return
        if m.issym():
            os.symlink(m.linkname, base, dir_fd=fd)
        elif m.islnk():
            self.hardlink(m, fd, base)
            return
        elif m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=fd)
        elif m.ischr() or m.isblk():
            if not self.privileged:
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=fd)
        else:
            raise InternalError(f"unhandled tar header type {ord(m.type)}")
        os.chown(base, uid, gid, dir_fd=fd, follow_symlinks=False)
        if not m.issym():
            os.chmod(base, m.mode & 0o7777, dir_fd=fd)  # a node just made: no link to follow
        os.utime(base, ns=(mtime, mtime), dir_fd=fd, follow_symlinks=False)

    def hardlink(self, m: tarfile.TarInfo, fd: int, base: str) -> None:
        target = posixpath.normpath(m.linkname.lstrip("/")) if m.linkname.lstrip("/") else "."
        if target in (".", "..") or target.startswith("../"):
            raise InternalError(f"invalid hardlink target {json.dumps(m.linkname)}")
        tparent, tbase = posixpath.split(target)
        with _closing(self.parent(tparent, create=False)) as tfd:
            os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=fd, follow_symlinks=False)

    def xattrs(self, m: tarfile.TarInfo, fd: int) -> None:
        for key, text in m.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            try:
                os.setxattr(fd, key[len("SCHILY.xattr."):],
                            text.encode("utf-8", "surrogateescape"))
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP):
                    raise


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# -- docker export -------------------------------------------------------------------------------


def _check_exportable(c: Container, verb: str) -> None:
    if c.state.status == "dead":
        raise Conflict(f"You cannot {verb} container {c.id} which is Dead")
    if c.state.status == "removing":
        raise Conflict(f"You cannot {verb} container {c.id} which is being removed")


@contextlib.asynccontextmanager
async def export(service: Any, ref: str) -> AsyncIterator[AsyncIterator[bytes]]:
    """GET /containers/{ref}/export: the root filesystem as a tar (no volumes). The
    `export` event is sent once the last chunk went out."""
    _check_ref(ref)
    c = service.get(ref)
    _check_exportable(c, "export")
    try:
        async with _view(service, c, mounts=False) as view:
            chunks = _stream(view, _tar_root)
            try:
                yield chunks
            finally:
                await chunks.aclose()
    except InternalError as e:
        raise InternalError(f"Error exporting container {ref}: {e}") from None
    _event(service, c, "export")


# -- docker diff ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Change:
    path: str
    kind: int  # MODIFIED, ADDED, DELETED

    def to_api(self) -> dict[str, Any]:
        return {"Path": self.path, "Kind": self.kind}


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(target: int | str) -> bool:
    return _xattr(target, _OPAQUE) == b"y"


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
            self._opaque[path] = _is_opaque(path)
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
                    _capability(old[0]) != _capability(f"/proc/self/fd/{fd}/{name}")))
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
            if old_dir and _is_opaque(sub):  # the image's entries are hidden here
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


async def _layers_of(service: Any, cid: str) -> tuple[str, list[str]]:
    """The container's upper dir and its image's layer dirs, top first."""
    chain = await service.snapshots.chain(cid)
    return (service.snapshots.fs_dir(chain[0]),
            [service.snapshots.fs_dir(info) for info in chain[1:]])


async def changes(service: Any, ref: str) -> list[Change]:
    """GET /containers/{ref}/changes."""
    _check_ref(ref)
    c = service.get(ref)
    try:
        upper, lowers = await _layers_of(service, c.id)
    except NotFound:
        raise InternalError(f"container {c.id} has no root filesystem") from None
    return await asyncio.to_thread(diff_dirs, upper, lowers)


# -- docker commit ---------------------------------------------------------------------------------


def write_changes(upper: str, found: Sequence[Change], fileobj: Any) -> None:
    """go-archive's ExportChanges, from the upper dir: entries in path order, a ".wh."
    file per deletion. Files are opened below upper without following any symlink."""
    out = _TarOut(fileobj)
    root = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    now = int(time.time())
    try:
        for change in sorted(found, key=lambda ch: ch.path):
            rel = change.path.lstrip("/")
            parent, base = posixpath.split(rel)
            if change.kind == DELETED:
                info = tarfile.TarInfo(posixpath.join(parent, archive.WHITEOUT_PREFIX + base))
                info.mode, info.mtime, info.uname, info.gname = 0, now, "", ""
                out.tar.addfile(info)
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


_IMAGE_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                      "WorkingDir", "Labels", "StopSignal", "ArgsEscaped", "Healthcheck",
                      "OnBuild", "Shell")


def merge_commit_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """daemon/commit.go merge(): the container's config fills what the new one leaves unset."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User", "")
    ports = dict(out.get("ExposedPorts") or {})
    for port in container.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Env"] = env or None
    labels = dict(container.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    health = container.get("Healthcheck")
    if health is not None:
        mine = dict(out.get("Healthcheck") or {})
        if not out.get("Healthcheck"):
            mine = dict(health)
        else:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval",
                        "Retries"):
                if not mine.get(key):
                    mine[key] = health.get(key)
        out["Healthcheck"] = {k: v for k, v in mine.items() if v is not None}
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir", "")
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal"):
        out["StopSignal"] = container.get("StopSignal", "")
    return out


def image_config(config: dict[str, Any]) -> dict[str, Any]:
    """The runtime part of an image config (containerConfigToDockerOCIImageConfig);
    empty values left out, as Go's omitempty does."""
    out = {}
    for key in _IMAGE_CONFIG_KEYS:
        value = config.get(key)
        if value not in (None, "", [], {}, False):
            out[key] = value
    return out


def _commit_ref(repo: str, tag: str) -> str | None:
    """httputils.RepoTagReference: the fully qualified reference to tag, if any."""
    if not repo:
        return None
    ref = parse_ref(repo)
    if ref.digest:
        raise InvalidParameter("cannot import digest reference")
    try:
        ref = with_tag(ref, tag) if tag else with_default_tag(ref)
    except InvalidReference as e:
        raise InvalidParameter(str(e)) from None
    return ref.string()


async def commit(service: Any, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                 author: str = "", pause: bool = True, changes: Sequence[str] = (),
                 config: dict[str, Any] | None = None) -> str:
    """POST /commit: a new image = the container's image + one layer of its changes.
    Returns the image ID."""
    _check_ref(ref)
    target = _commit_ref(repo, tag)
    c = service.get(ref)
    _check_exportable(c, "commit")
    new_config = apply_changes(dict(config) if config is not None else dict(c.config),
                               changes)
    new_config = merge_commit_config(new_config, c.config)
    paused = False
    if pause and c.state.status == "running":
        with contextlib.suppress(DaemonError):
            await service.pause(c.id)
            paused = True
    try:
        image_id = await _commit_image(service, c, new_config, target, comment, author)
    finally:
        if paused:
            with contextlib.suppress(DaemonError):
                await service.unpause(c.id)
    imgs = service.images
    image = await imgs.get(image_id)
    familiar = parse_ref(target).familiar() if target else ""
    if target and image is not None:
        imgs.image_event(image, "tag", familiar)
    with contextlib.suppress(NotFound):  # removed meanwhile: the event keeps the old record
        c = service.get(c.id)
    _event(service, c, "commit", comment=comment, imageID=image_id, imageRef=familiar)
    return image_id


async def _commit_image(service: Any, c: Container, new_config: dict[str, Any],
                        target: str | None, comment: str, author: str) -> str:
    imgs = service.images
    base = await imgs.get(c.image_id)
    if base is None:
        raise NotFound(f"No such image: {c.image_id}")
    base_config: dict[str, Any] = dict(base.config)
    base_layers = list(base.layers)
    try:
        upper, lowers = await _layers_of(service, c.id)
    except NotFound:
        raise InternalError(f"container {c.id} has no root filesystem") from None
    async with imgs.leases.lease():
        found = await asyncio.to_thread(diff_dirs, upper, lowers)
        blobs = [LayerBlob(layer.blob_digest, layer.media_type, layer.blob_size)
                 for layer in base_layers]
        diff_ids = [layer.diff_id for layer in base_layers]
        empty = not found
        if not empty:
            blob = await asyncio.to_thread(_store_layer, imgs.content, upper, found)
            blobs.append(blob)
            diff_ids.append(blob.digest)  # uncompressed: the diff ID is the digest
        layers = await unpack(imgs.snapshots, imgs.content, blobs, diff_ids)
        created = now_rfc3339()
        author = author or base_config.get("author", "")
        cmd = c.config.get("Cmd") or []
        entry: dict[str, Any] = {"created": created,  # the container's Cmd, as dockerd has it
                                 "created_by": " ".join([cmd] if isinstance(cmd, str) else cmd)}
        if author:
            entry["author"] = author
        if comment:
            entry["comment"] = comment
        if empty:
            entry["empty_layer"] = True
        doc: dict[str, Any] = {"created": created}
        if author:
            doc["author"] = author
        doc.update({
            "architecture": base_config.get("architecture") or ARCH,
            "os": base_config.get("os") or OS,
            "config": image_config(new_config),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": list(base_config.get("history") or []) + [entry],
        })
        image, _ = await imgs.record(json.dumps(doc, separators=(",", ":")).encode(), layers,
                                     tags=[target] if target else [], parent=c.image_id)
    return str(image.id)


def _store_layer(content: Any, upper: str, found: Sequence[Change]) -> LayerBlob:
    with content.writer() as w:
        write_changes(upper, found, w)
        digest = w.commit()
        return LayerBlob(digest, OCI_LAYER, w.size)
