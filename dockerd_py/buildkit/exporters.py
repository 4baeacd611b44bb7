"""The file exporters: the built image's root filesystem back to the client, through
its session (FileSend): `--output type=local,dest=DIR` as a directory tree,
`--output type=tar,dest=FILE` as one tar stream. The tree is a read-only mount of the
image's layers under the builder's directory, unmounted whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO, cast

from builder.layer import release
from builder.service import BuildService
from dockerd_py.engine.aio import ThreadWriter, produce
from dockerd_py.engine.archive.write import tar_paths
from dockerd_py.engine.mount import mount_all
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import InvalidParameter

from . import session as sess
from .builds import Build
from .status import vertex_digest


@contextlib.asynccontextmanager
async def image_view(builder: BuildService, image: ImageRecord) -> AsyncIterator[Path]:
    target = await asyncio.to_thread(tempfile.mkdtemp, prefix="bk-export-", dir=builder.root)
    snapshots = builder.backend.snapshots
    try:
        if image.top_chain:
            mounts = await snapshots.mounts(image.top_chain)
            await asyncio.to_thread(mount_all, mounts, target, cwd=snapshots.root)
        yield Path(target)
    finally:
        await asyncio.to_thread(_remove_view, target)


def _remove_view(target: str) -> None:
    if release(target):     # never rmtree what is still mounted
        with contextlib.suppress(OSError):
            Path(target).rmdir()


async def export_files(builder: BuildService, image: ImageRecord, kind: str,
                       build: Build) -> None:
    """kind "local" or "tar"."""
    if build.session is None:
        raise InvalidParameter(f"the {kind} exporter needs the client's session")
    session = build.session.session
    step = vertex_digest(build.ref, "exporting to client")
    what = "directory" if kind == "local" else "tarball"
    await build.progress.started(step, f"exporting to client {what}")
    async with image_view(builder, image) as view:
        try:
            if kind == "local":
                await build.progress.status(step, "copying files")
                await sess.send_directory(session, view)
                await build.progress.status(step, "copying files", done=True)
            else:
                await build.progress.status(step, "sending tarball")
                root = str(view)

                def write(w: ThreadWriter) -> None:
                    tar_paths(root, cast(BinaryIO, w))
                await sess.send_tar(session, produce(write))
                await build.progress.status(step, "sending tarball", done=True)
        except sess.SessionError as e:
            await build.progress.completed(step, str(e))
            raise InvalidParameter(f"exporting to the client: {e}") from None
    await build.progress.completed(step)
