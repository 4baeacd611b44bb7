"""A step's writable root filesystem, and the layer it leaves behind.

A step (RUN, COPY, ADD, WORKDIR) gets an active overlay snapshot on its parent
image's top chain ID, mounted at a private directory. When it is done the
mount goes away and the upper directory is diffed against the parent layers
with the same code `docker commit` uses: mount points the runtime made for
/proc, /etc/hosts and friends are no change, deletions become ".wh." entries,
entries are in path order. No change at all means no layer (the history entry
gets `empty_layer`, as dockerd's commit does for an empty diff). Otherwise the
tar is gzip-compressed (level 1: fast, and layers are compressed once; stored
plain when a sample of its largest files does not compress) into the content
store, and the upper directory itself becomes the committed snapshot named by
the layer's chain ID (no second extraction). The active snapshot is always
removed, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import gzip
import hashlib
import os
import shutil
import stat
import subprocess
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from dockerd_py.engine.archive import open_regular
from dockerd_py.engine.content.contract import Store
from dockerd_py.engine.diff import diff_dirs, write_changes
from dockerd_py.engine.images.mediatypes import OCI_LAYER, OCI_LAYER_GZIP
from dockerd_py.engine.images.unpack import LayerBlob, chain_ids
from dockerd_py.engine.mount import mount_all, unmount
from dockerd_py.engine.snapshots.contract import Mount, Snapshotter
from dockerd_py.engine.types import ImageRecord, Layer
from dockerd_py.errors import InternalError

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_MNT_DETACH = 0x2


@dataclass
class StepFS:
    key: str          # the active snapshot, also the build container's ID
    rootfs: str       # where it is mounted
    upper: str
    lowers: list[str]
    state_dir: str    # private directory of the step (bundle, /etc files)
    keep_times: set[str] = field(default_factory=set)  # rootfs paths with their own times


@contextlib.asynccontextmanager
async def step_fs(snapshots: Snapshotter, parent: ImageRecord | None,
                  state_root: str) -> AsyncIterator[StepFS]:
    key = uuid.uuid4().hex + uuid.uuid4().hex
    state_dir = os.path.join(state_root, key[:12])
    rootfs = os.path.join(state_dir, "rootfs")
    await snapshots.prepare(key, parent.top_chain if parent else "")
    try:
        chain = await snapshots.chain(key)
        mounts = await snapshots.mounts(key)
        await asyncio.to_thread(os.makedirs, rootfs, 0o700)
        await asyncio.to_thread(_mount_step, mounts, rootfs, snapshots.root)
        try:
            yield StepFS(key, rootfs, snapshots.fs_dir(chain[0]),
                         [snapshots.fs_dir(i) for i in chain[1:]], state_dir)
        finally:
            await asyncio.to_thread(_teardown, rootfs, state_dir)
    finally:
        with contextlib.suppress(Exception):
            await snapshots.remove(key)


# A step's overlay is mounted "volatile" (Linux 5.10+): its unmount then skips the sync of
# the whole upper filesystem that overlayfs otherwise does (40 ms and more for a step that
# wrote 50 MB, plus whatever else is dirty on that filesystem). The step's files end up as
# durable as those of a pulled layer's snapshot, which are never synced either; the layer
# blob (what export, push and save read) is fsynced by the content store as before. The
# work directory that volatile marks is removed when the snapshot is committed or removed.
_volatile = [True]


def _mount_step(mounts: list[Mount], rootfs: str, root: str) -> None:
    if _volatile[0] and any(m.type == "overlay" and any(o.startswith("upperdir=")
                                                         for o in m.options) for m in mounts):
        marked = [Mount(m.type, m.source, (*m.options, "volatile")) if m.type == "overlay"
                  else m for m in mounts]
        try:
            mount_all(marked, rootfs, cwd=root)
            return
        except (InternalError, subprocess.CalledProcessError):
            _volatile[0] = False  # a kernel without it: plain mounts from now on
    mount_all(mounts, rootfs, cwd=root)


def release(target: str) -> bool:
    """Unmount target, mounted or not; True when nothing is mounted there any more.
    (os.path.ismount cannot see a bind mount from the same filesystem, which is what a
    snapshot without parents mounts as: never rmtree a directory on its word alone.)"""
    unmount(target)  # overlays, and anything ismount does see
    while _libc.umount2(os.fsencode(target), _MNT_DETACH) == 0:
        pass
    err = ctypes.get_errno()
    return err in (errno.EINVAL, errno.ENOENT)


def _teardown(rootfs: str, state_dir: str) -> None:
    if release(rootfs):
        shutil.rmtree(state_dir, ignore_errors=True)


async def unmount_step(fs: StepFS) -> None:
    """Unmount the step's root filesystem (idempotent): its upper dir is then stable."""
    await asyncio.to_thread(_teardown, fs.rootfs, fs.state_dir)


def normalize_times(upper: str, keep: set[str], when: float) -> None:
    """Give every entry of the upper dir except `keep` (paths relative to the root that
    were copied with their source's times) the time `when`: directories the step made or
    added to, inline files. A COPY or WORKDIR of the same inputs onto the same parent then
    gives the same layer digest. (RUN's layers keep real times: its commands write them.)"""
    stamp = (when, when)
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.relpath(path, upper) not in keep:
                os.utime(path, stamp, follow_symlinks=False)
    os.utime(upper, stamp)


async def commit_layer(snapshots: Snapshotter, content: Store,
                       parent: ImageRecord | None, fs: StepFS) -> Layer | None:
    """The step's changes as a new layer on the parent's, or None when nothing changed.
    Call after `unmount_step`, inside `step_fs`, under a lease.

    The upper dir itself becomes the layer's snapshot (no extraction of the tar just
    written): what the diff leaves out (mount points the runtime made) is removed from
    it first, so the snapshot holds exactly what the layer holds."""
    found = await asyncio.to_thread(diff_dirs, fs.upper, fs.lowers)
    if not found:
        return None
    blob, diff_id = await asyncio.to_thread(_store_gzip_layer, content, fs.upper, found)
    chain = chain_ids([x.diff_id for x in (parent.layers if parent else ())] + [diff_id])[-1]
    size = await asyncio.to_thread(_keep_only, fs.upper, {c.path for c in found})
    await snapshots.commit(chain, fs.key, size)
    return Layer(diff_id, chain, blob.digest, blob.media_type, blob.size, size)


def _keep_only(upper: str, paths: set[str]) -> int:
    """Remove from upper what is not in the layer (keeping directory times); returns the
    layer's size as dockerd counts it (regular files and symlink targets)."""
    size = 0
    for dirpath, dirnames, filenames in os.walk(upper, topdown=True):
        rel_dir = "/" + os.path.relpath(dirpath, upper) if dirpath != upper else ""
        times = os.lstat(dirpath)
        removed = False
        for name in list(dirnames):
            if f"{rel_dir}/{name}" not in paths:
                shutil.rmtree(os.path.join(dirpath, name))
                dirnames.remove(name)
                removed = True
        for name in filenames:
            path = os.path.join(dirpath, name)
            if f"{rel_dir}/{name}" not in paths:
                os.unlink(path)
                removed = True
                continue
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                size += st.st_size
            elif stat.S_ISLNK(st.st_mode):
                size += len(os.fsencode(os.readlink(path)))
        if removed:
            os.utime(dirpath, ns=(times.st_atime_ns, times.st_mtime_ns))
    return size


class _DiffIdWriter:
    """Hashes the uncompressed tar on its way into the compressor."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink, self.sha = sink, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self._sink.write(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return 0


# Compression is skipped for layers whose content does not compress (media, archives,
# random data): deflating them costs more CPU than the whole rest of the step and saves
# nothing. Judged on a sample of the largest files.
_SAMPLE_FILES = 8
_SAMPLE_BYTES = 64 * 1024   # per file: deflating the sample costs ~25 ms per MiB
_SMALL_LAYER = 256 * 1024   # largest files smaller than this in all: always compressed
_WORTH_COMPRESSING = 0.9


def _compressible(upper: str, found: Any) -> bool:
    sizes = []
    for change in found:
        path = os.path.join(upper, change.path.lstrip("/"))
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                sizes.append((st.st_size, path))
    sizes.sort(reverse=True)
    if sum(size for size, _ in sizes[:_SAMPLE_FILES]) < _SMALL_LAYER:
        return True
    raw = packed = 0
    for _, path in sizes[:_SAMPLE_FILES]:
        with contextlib.suppress(OSError), os.fdopen(open_regular(path, live=False), "rb") as f:
            data = f.read(_SAMPLE_BYTES)
            raw += len(data)
            packed += len(zlib.compress(data, 1))
    return raw == 0 or packed < raw * _WORTH_COMPRESSING


def _store_gzip_layer(content: Store, upper: str, found: Any) -> tuple[LayerBlob, str]:
    with content.writer() as w:
        if not _compressible(upper, found):
            # stored plain, the blob is the tar: its digest is the diff ID (one hash pass)
            write_changes(upper, found, cast(BinaryIO, w), live=False)
            digest = w.commit()
            return LayerBlob(digest, OCI_LAYER, w.size), digest
        # mtime=0: the gzip header carries no timestamp, so equal tars give equal blobs.
        with gzip.GzipFile(fileobj=cast(BinaryIO, w), mode="wb", compresslevel=1,
                           mtime=0) as gz:
            tee = _DiffIdWriter(cast(BinaryIO, gz))
            write_changes(upper, found, tee, live=False)
        digest = w.commit()
        return LayerBlob(digest, OCI_LAYER_GZIP, w.size), "sha256:" + tee.sha.hexdigest()
