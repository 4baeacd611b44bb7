"""Image volumes (Mount.image): an image's file tree, read-only, mounted into a container.

Each is an overlay of the image's unpacked layers (a read-only bind for a one-layer
image) at <exec-root>/cri/imagevolumes/<token>, bound into the container like any
host path. They go when the container is removed through the CRI, and at start-up
any no CRI container refers to any more (one removed with `docker rm -f`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterable
from typing import Any

from ..engine.images.service import ImageService as Images
from ..engine.mount import mount_all, unmount
from ..engine.snapshots.contract import Mount
from ..errors import InvalidParameter, NotFound
from ..protos.cri import api_pb2 as pb


class ImageVolumes:
    def __init__(self, images: Images, run_dir: str) -> None:
        self.images = images
        self.root = os.path.join(run_dir, "imagevolumes")
        os.makedirs(self.root, mode=0o700, exist_ok=True)

    async def mount(self, m: pb.Mount) -> tuple[str, str, str]:
        """(the directory to bind, the mount point made, the image ID) for m."""
        if not m.readonly:
            raise InvalidParameter("image volumes must be read-only")
        sub = m.image_sub_path
        if sub and (sub.startswith("/") or ".." in sub.split("/") or "\0" in sub):
            raise InvalidParameter(f"invalid image_sub_path {sub!r}")
        try:
            image = await self.images.resolve(m.image.image)
        except NotFound:
            raise NotFound(f"image {m.image.image!r} of an image volume is not present") \
                from None
        dirs = await self.images.layer_dirs(image)
        point = os.path.join(self.root, secrets.token_hex(16))
        if len(dirs) == 1:
            mounts = [Mount("bind", dirs[0], ("rbind", "ro"))]
        else:
            mounts = [Mount("overlay", "overlay", ("lowerdir=" + ":".join(dirs),))]
        await asyncio.to_thread(os.mkdir, point, 0o755)
        try:
            await asyncio.to_thread(mount_all, mounts, point)
        except BaseException:
            await asyncio.to_thread(_remove, point)
            raise
        # The image's own links must not lead the bind out of its tree.
        source = os.path.realpath(os.path.join(point, sub)) if sub else point
        if source != point and not source.startswith(point + "/") \
                or not os.path.exists(source):
            await asyncio.to_thread(_remove, point)
            raise InvalidParameter(f"image_sub_path {sub!r} does not exist in image "
                                   f"{m.image.image!r}")
        return source, point, image.id

    async def release_of(self, extra: dict[str, Any]) -> None:
        """Those of a container, from its CRI metadata's mounts."""
        await self.release(str(x["point"]) for x in extra.get("mounts") or ()
                           if x.get("point"))

    async def release(self, points: Iterable[str]) -> None:
        for point in points:
            if os.path.dirname(point) == self.root:
                await asyncio.to_thread(_remove, point)

    async def sweep(self, keep: set[str]) -> None:
        """Unmount every image volume not in keep (their containers are gone)."""
        for name in await asyncio.to_thread(os.listdir, self.root):
            point = os.path.join(self.root, name)
            if point not in keep:
                await asyncio.to_thread(_remove, point)


def _remove(point: str) -> None:
    unmount(point)
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(point)
