"""A container's layers as inspect and `docker ps -s` show them: its overlay
directories, and the bytes it wrote on top of its image."""

from __future__ import annotations

import asyncio
import contextlib
import os

from ..images.contract import ImageReader
from ..snapshots.contract import Snapshotter
from .records import Container


async def overlay_dirs(snapshots: Snapshotter, state_dir: str, cid: str) -> dict[str, str]:
    """GraphDriver.Data: the container's upper, work and merged dirs, its image's lower."""
    chain = await snapshots.chain(cid)
    upper = snapshots.fs_dir(chain[0])
    return {"LowerDir": ":".join(snapshots.fs_dir(i) for i in chain[1:]),
            "MergedDir": os.path.join(state_dir, "rootfs"),
            "UpperDir": upper, "WorkDir": os.path.join(os.path.dirname(upper), "work")}


async def sizes(snapshots: Snapshotter, images: ImageReader, c: Container) -> tuple[int, int]:
    """(SizeRw, SizeRootFs): bytes the container wrote, and that plus its image."""
    info = await snapshots.stat(c.id)
    rw = await asyncio.to_thread(_tree_size, snapshots.fs_dir(info)) if info else 0
    image = await images.get(c.image_id)
    return rw, rw + (image.size if image else 0)


def _tree_size(root: str) -> int:
    """Bytes of regular files and symlinks under root (what dockerd counts)."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
