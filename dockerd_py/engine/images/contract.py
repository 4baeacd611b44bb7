"""The image service contract (after containerd's core/images and moby's image service).

An image is a config document (its ID is the config's digest, as dockerd's) and
an ordered list of layers, each a blob in the content store unpacked into a
committed snapshot named by its chain ID. References (``name:tag``) and
RepoDigests (``name@sha256:...``) point at images; an image with neither is
dangling. Records live in the metadata database; bytes in the content store
and the snapshotter, which the service exposes for the verbs that move bytes
(load, save, import, pull, push, build).

Lifecycle of an image:
  * Its blobs are written and its layers unpacked under a lease (``leases``), so
    nothing is collected before the record exists; ``record(config, layers,
    tags=...)`` then stores the config and records the image and its references
    in one transaction, and reports which references moved to it.
  * It is found by ``resolve``: a full ID, a reference (default tag "latest"), or
    a unique ID prefix; an unknown one is NotFound with dockerd's wording.
  * ``set_tag``/``tag`` point a reference at it, ``untag`` removes references,
    ``add_digest`` records a RepoDigest after a push; each change emits the image
    event dockerd emits.
  * ``remove`` deletes its record (refused by the callers while a container uses
    it: ``containers_using``), ``forget`` drops an intermediate build image;
    blobs and snapshots no record reaches go at the next ``collect_garbage``
    (``schedule_gc`` asks for one soon, off the caller's time).

The verbs (delete.py, load.py, save.py, import_.py, query.py, and the pull,
push and build front ends) are functions over this contract.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Protocol

from ..content.contract import Store
from ..gc import Stats
from ..leases import LeaseManager
from ..snapshots.contract import Snapshotter
from ..types import ImageRecord, Layer


class ImageUsers(Protocol):
    """Who uses an image: the containers made from it (the container store)."""

    def image_users(self, image_id: str) -> tuple[list[str], list[str]]:
        """(running, stopped) IDs of the containers made from the image."""


class ImageReader(Protocol):
    async def resolve(self, ref_or_id: str) -> ImageRecord: ...

    async def lookup(self, ref_or_id: str) -> tuple[ImageRecord, bool]:
        """resolve(), also telling whether the image was named by its ID."""

    async def get(self, image_id: str) -> ImageRecord | None: ...

    async def list(self) -> builtins.list[ImageRecord]: ...

    async def by_ref(self, ref: str) -> str | None:
        """The image ID a full reference (name:tag or name@digest) points at."""

    async def layer_blobs(self, diff_id: str) -> builtins.list[tuple[str, str, int]]:
        """(blob digest, media type, size) of the recorded layers with this diff ID."""

    async def layer_dirs(self, image: ImageRecord) -> builtins.list[str]:
        """The unpacked layer directories of an image, top first."""

    def containers_using(self, image_id: str) -> tuple[builtins.list[str],
                                                        builtins.list[str]]:
        """(running, stopped) IDs of the containers made from the image."""


class ImageWriter(Protocol):
    async def record(self, config: bytes, layers: Sequence[Layer], *, tags: Sequence[str] = (),
                     manifest_digest: str = "", parent: str = ""
                     ) -> tuple[ImageRecord, builtins.list[tuple[str, str | None]]]: ...

    async def set_tag(self, image: ImageRecord, ref: str) -> None: ...

    async def tag(self, source: str, repo: str, tag: str) -> ImageRecord:
        """`docker tag`: validate repo and tag as dockerd does, then set_tag."""

    async def untag(self, image: ImageRecord, refs: Sequence[str]) -> None: ...

    async def add_digest(self, image: ImageRecord, ref: str) -> None: ...

    async def remove(self, image: ImageRecord, *, parents: bool
                     ) -> builtins.list[tuple[ImageRecord, builtins.list[Layer]]]: ...

    async def forget(self, image_id: str) -> None: ...


class Images(ImageReader, ImageWriter, Protocol):
    """The whole image service, with the stores its verbs move bytes through."""

    @property
    def content(self) -> Store: ...

    @property
    def snapshots(self) -> Snapshotter: ...

    @property
    def leases(self) -> LeaseManager: ...

    def image_event(self, image: ImageRecord, action: str, name: str | None = None) -> None:
        """Emit an image event with the image's labels (name: the ID when not given)."""

    async def collect_garbage(self, *, startup: bool = False) -> Stats: ...

    def schedule_gc(self) -> None: ...

    async def wait_gc(self) -> None: ...
