"""What a layer travels as on push: gzip, as dockerd pushes layers.

`docker import` and `docker commit` keep layers as plain tars. dockerd
compresses such a layer when it pushes it, and so do we: once per layer, into
the content store (level 1, mtime 0: the same tar always gives the same blob,
so a later push finds it in the registry by digest). The blob belongs to no
image, so the garbage collector may take it after the push; the next push
makes it again, identically. Which repositories got which blob is remembered
so that a push to another repository of the same registry can mount it.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import OrderedDict
from dataclasses import dataclass

from ..engine.content.contract import Store
from ..engine.images.mediatypes import OCI_LAYER
from ..engine.leases import protect_digest
from ..engine.types import Layer
from .manifests import DOCKER_LAYER_GZIP

UNCOMPRESSED = (OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar")
_REMEMBERED = 4096


@dataclass(frozen=True)
class Pushable:
    digest: str
    size: int
    media_type: str


def _gzip_blob(content: Store, digest: str) -> tuple[str, int]:
    with content.open(digest) as src, content.writer() as writer:
        with gzip.GzipFile(fileobj=writer, mode="wb", compresslevel=1,  # type: ignore[call-overload]
                           mtime=0) as gz:
            while chunk := src.read(1 << 20):
                gz.write(chunk)
        return writer.commit(), writer.size


class PushedBlobs:
    """Gzip copies of plain layers, and the repositories each blob was pushed to."""

    def __init__(self) -> None:
        self._gzipped: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self._repos: OrderedDict[str, list[str]] = OrderedDict()

    async def pushable(self, content: Store, layer: Layer) -> Pushable:
        """The blob to push for a layer (call under a lease: it may write one)."""
        if layer.media_type not in UNCOMPRESSED:
            return Pushable(layer.blob_digest, layer.blob_size, layer.media_type)
        known = self._gzipped.get(layer.blob_digest)
        if known is not None:
            protect_digest(known[0])  # before the check: the collector re-checks leases
            if await asyncio.to_thread(content.exists, known[0]):
                return Pushable(known[0], known[1], DOCKER_LAYER_GZIP)
        digest, size = await asyncio.to_thread(_gzip_blob, content, layer.blob_digest)
        self._gzipped[layer.blob_digest] = (digest, size)
        while len(self._gzipped) > _REMEMBERED:
            self._gzipped.popitem(last=False)
        return Pushable(digest, size, DOCKER_LAYER_GZIP)

    def pushed(self, digest: str, repo: str) -> None:
        """Record that `repo` ("domain/path") has blob `digest`."""
        repos = self._repos.setdefault(digest, [])
        if repo not in repos:
            repos.append(repo)
        self._repos.move_to_end(digest)
        while len(self._repos) > _REMEMBERED:
            self._repos.popitem(last=False)

    def repos(self, digest: str) -> list[str]:
        return list(self._repos.get(digest, ()))
