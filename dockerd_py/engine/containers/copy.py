"""`docker cp` (the archive API) and `docker export`: a container's files, both ways.

Reaching the files
------------------
`rootfs()` mounts the container's overlay at <state_dir>/rootfs for as long as someone uses
it; a running container has it mounted already. cp and export then work in a view
(rootview.py): a thread chrooted into the rootfs with the container's volumes, bind mounts
and daemon-managed /etc files bound over it (tmpfs mounts are not shown, as in dockerd),
so every path resolves as in the container.

Locking: the container's lock is held while the rootfs is mounted or released, not across
the streams (dockerd holds its container lock during cp; ours would also hold up stop and
exit handling). Users are counted; the last one unmounts unless the container runs, or
exists in the runtime, by then: the mount is then the container's own.

Tars out are written as go-archive writes them (archive.TarWriter), tars in are
extracted by the archive package's one extractor, with docker cp's rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import stat
import uuid
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

from ...errors import DaemonError, InternalError, InvalidParameter, NotFound
from .. import archive
from ..aio import ThreadReader, ThreadWriter
from ..runtime.users import Unreadable, resolve_user
from ..volumes import safepath
from . import bundle
from .fsverbs import FileAccess, check_exportable, check_ref
from .gopath import absolute, go_base, go_error, go_file_mode, preserve_trailing, rfc3339_ns
from .records import Container
from .rootview import Bind, View, stream

_ETC_FILES = (("/etc/resolv.conf", "resolv.conf"), ("/etc/hostname", "hostname"),
              ("/etc/hosts", "hosts"))


def _binds(fs: FileAccess, c: Container, pinned: dict[int, str]) -> list[Bind]:
    """Volumes and bind mounts (a volume's sub-path by its pin), then the /etc files a
    user mount does not replace; parents before children."""
    out, taken = [], set()
    for i, p in enumerate(c.mounts):
        source = pinned.get(i) or p.get("Source") or ""
        if p.get("Type") == "tmpfs" or not source or not os.path.exists(source):
            continue
        out.append(Bind(source, absolute(p["Destination"]), bool(p.get("RW", True))))
        taken.add(absolute(p["Destination"]))
    rw = not c.host_config.get("ReadonlyRootfs")
    for dest, name in _ETC_FILES:
        source = os.path.join(fs.store.state_dir(c.id), name)
        if dest not in taken and os.path.exists(source):
            out.append(Bind(source, dest, rw))
    return sorted(out, key=lambda b: b.destination.count("/") if b.destination != "/" else 0)


def _in_runtime(fs: FileAccess, c: Container) -> bool:
    """Does the container use its rootfs: running, or created in the runtime (attach
    before start does that)?"""
    if c.state.running:
        return True
    try:
        fs.monitor.load(c.id)
    except DaemonError:
        return False
    return True


@contextlib.asynccontextmanager
async def rootfs(fs: FileAccess, container: Container) -> AsyncIterator[str]:
    """The host path of the container's root filesystem (its overlay, no volumes), mounted
    for the duration if the container does not run."""
    users = fs.rootfs_users
    cid = container.id
    async with fs.store.lock(cid):
        c = fs.store.get(cid)
        mounts = await fs.snapshots.mounts(cid)
        path = await asyncio.to_thread(bundle.mount_rootfs, fs.store.state_dir(cid), mounts,
                                       fs.snapshots.root)
        users[cid] = users.get(cid, 0) + 1
    try:
        yield path
    finally:
        async with fs.store.lock(cid):
            users[cid] -= 1
            if not users[cid]:
                del users[cid]
                try:
                    c = fs.store.get(cid)
                except NotFound:
                    pass  # removed meanwhile: remove() unmounted it
                else:
                    if not _in_runtime(fs, c):
                        await asyncio.to_thread(bundle.teardown, fs.store.state_dir(cid))


@contextlib.asynccontextmanager
async def _view(fs: FileAccess, c: Container, *, mounts: bool) -> AsyncIterator[View]:
    """A view of the container's files; with mounts, its volumes and binds are in it."""
    held: list[tuple[str, str]] = []
    pins = os.path.join(fs.store.state_dir(c.id), f"cp-{uuid.uuid4().hex[:12]}")
    async with rootfs(fs, c) as path:
        try:
            volumes = fs.volumes
            pinned: dict[int, str] = {}
            if mounts:
                # Device-backed volumes must be mounted to be seen. A reference of our own
                # keeps the container's reference count (and its unmount at exit) intact.
                for i, p in enumerate(c.mounts):
                    if p.get("Type") == "volume" and p.get("Name"):
                        vol = await volumes.get(p["Name"])
                        if vol.needs_mount:
                            ref = f"{c.id}-fs-{uuid.uuid4().hex[:12]}"
                            await volumes.mount(vol.name, ref, destination=p["Destination"],
                                                rw=bool(p.get("RW", True)))
                            held.append((vol.name, ref))
                        if p.get("Subpath"):  # as dockerd, the sub-path the container sees
                            pinned[i] = await asyncio.to_thread(
                                safepath.pin, p["Source"], p["Subpath"],
                                os.path.join(pins, str(i)))
            view = View(path, _binds(fs, c, pinned) if mounts else [])
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
            await asyncio.to_thread(safepath.unpin_all, pins)
            for name, ref in held:
                with contextlib.suppress(DaemonError):
                    await volumes.unmount(name, ref)


def _tar_resource(abs_path: str, w: ThreadWriter) -> None:
    """In the view: the tar `docker cp` reads, its root entry named after the basename."""
    out = archive.TarWriter(w)
    rebase = go_base(abs_path)
    prefix = "" if rebase == "/" else rebase
    out.add(prefix, abs_path)
    if stat.S_ISDIR(os.lstat(abs_path).st_mode):
        for rel, path, st in archive.walk(abs_path, strict=False):
            out.add(f"{prefix}/{rel}", path, st=st)
    out.close()


def _tar_root(w: ThreadWriter) -> None:
    """In the view: the whole root filesystem, as `docker export` writes it."""
    out = archive.TarWriter(w)
    for rel, path, st in archive.walk("/", strict=False):
        out.add(rel, path, st=st)
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
        raise InternalError(go_error("lstat", path, e)) from None
    target = ""
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)  # as far as it resolves, inside the root
    return {"name": go_base(path), "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339_ns(st.st_mtime_ns), "linkTarget": target}


async def stat_path(fs: FileAccess, ref: str, path: str) -> dict[str, Any]:
    """HEAD /containers/{ref}/archive?path= : what the X-Docker-Container-Path-Stat
    header carries."""
    check_ref(ref)
    c = fs.store.get(ref)
    async with _view(fs, c, mounts=True) as view:
        return await view.run(_stat, path, path, ref)


@contextlib.asynccontextmanager
async def archive_path(fs: FileAccess, ref: str, path: str
                       ) -> AsyncIterator[tuple[dict[str, Any], AsyncIterator[bytes]]]:
    """GET /containers/{ref}/archive?path= : (path stat, tar chunks). Errors come before
    the first chunk; the chunks must be read inside the context."""
    check_ref(ref)
    c = fs.store.get(ref)
    async with _view(fs, c, mounts=True) as view:
        abs_path = preserve_trailing(absolute(path), path)
        found = await view.run(_stat, abs_path, path, ref)
        chunks = stream(view, lambda w: _tar_resource(abs_path, w))
        fs.store.event(c, "archive-path")
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


def _extraction_point(path: str, shown: str, ref: str, c: Container
                      ) -> tuple[str, str | Unreadable | None, str | Unreadable | None]:
    """In the view: the resolved directory to extract into (every symlink followed, the
    last one too), checked as dockerd does; plus /etc/passwd and /etc/group."""
    try:
        resolved = os.path.realpath(absolute(path), strict=True)
    except FileNotFoundError:
        raise _not_found(shown, ref) from None
    except OSError as e:
        raise InternalError(go_error("lstat", absolute(path), e)) from None
    resolved = preserve_trailing(resolved, path)
    if not stat.S_ISDIR(os.lstat(resolved).st_mode):
        raise InvalidParameter("extraction point is not a directory")
    _writable(c, posixpath.normpath(resolved))
    return (resolved, bundle.read_in_root("/", "/etc/passwd"),
            bundle.read_in_root("/", "/etc/group"))


async def extract_to_dir(fs: FileAccess, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                         copy_uid_gid: bool = False,
                         allow_overwrite_dir_with_file: bool = True) -> None:
    """PUT /containers/{ref}/archive?path= : extract a tar (any compression) into the
    directory at path."""
    check_ref(ref)
    c = fs.store.get(ref)
    async with _view(fs, c, mounts=True) as view:
        dest, passwd, group = await view.run(_extraction_point, path, path, ref, c)
        owner = None
        user = c.config.get("User") or ""
        if copy_uid_gid and user:
            resolved = resolve_user(user, passwd, group, ())
            owner = (resolved.uid, resolved.gid)
        reader = ThreadReader(chunks, asyncio.get_running_loop())
        try:
            await view.run(_unpack, reader, dest, owner, not allow_overwrite_dir_with_file)
        except FileNotFoundError:  # dockerd maps any "not exist" of the untar so
            raise _not_found(path, ref) from None
    fs.store.event(c, "extract-to-dir")


def _unpack(reader: ThreadReader, dest: str, owner: tuple[int, int] | None,
            strict: bool) -> None:
    """In the view: go-archive's Unpack of the request body into dest."""
    try:
        archive.unpack_to_dir(cast(BinaryIO, reader), dest, owner=owner,
                              no_overwrite_dir_non_dir=strict)
    finally:
        with contextlib.suppress(Exception):
            reader.drain()  # an early error must not leave the client mid-body


# -- docker export -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def export(fs: FileAccess, ref: str) -> AsyncIterator[AsyncIterator[bytes]]:
    """GET /containers/{ref}/export: the root filesystem as a tar (no volumes). The
    `export` event is sent once the last chunk went out."""
    check_ref(ref)
    c = fs.store.get(ref)
    check_exportable(c, "export")
    try:
        async with _view(fs, c, mounts=False) as view:
            chunks = stream(view, _tar_root)
            try:
                yield chunks
            finally:
                await chunks.aclose()
    except InternalError as e:
        raise InternalError(f"Error exporting container {ref}: {e}") from None
    fs.store.event(c, "export")

