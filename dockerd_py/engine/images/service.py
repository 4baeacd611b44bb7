"""The image service: the engine's one entry point for everything about images.

Verbs that move bytes live in their own modules (import_, load, save, delete);
this module resolves references, records images, and answers queries.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ...errors import InvalidParameter, no_such_image
from .. import gc
from ..content.contract import Store
from ..events import EventBus
from ..leases import LeaseManager
from ..metadata.db import Database
from ..reference import InvalidReference, Reference, parse_normalized, with_default_tag
from ..snapshots.contract import Snapshotter
from ..types import ImageRecord, Layer
from . import store
from .contract import ImageUsers
from .mediatypes import now_rfc3339

log = logging.getLogger(__name__)
T = TypeVar("T")

_HEX = re.compile(r"[a-f0-9]{1,64}")           # both fullmatch: `$` passes a final "\n"
_IMAGE_ID = re.compile(r"sha256:[a-f0-9]{64}")



def parse_ref(ref: str) -> Reference:
    try:
        return parse_normalized(ref)
    except InvalidReference as e:
        raise InvalidParameter(str(e)) from None


class ImageService:
    def __init__(self, db: Database, content: Store, snapshots: Snapshotter,
                 leases: LeaseManager, events: EventBus, users: ImageUsers) -> None:
        self.db = db
        self.content = content
        self.snapshots = snapshots
        self.leases = leases
        self.events = events
        self.users = users
        self._listing: list[ImageRecord] | None = None
        self._generation = 0
        self._gc_task: asyncio.Task[Any] | None = None

    # -- lookups ---------------------------------------------------------

    async def resolve(self, ref_or_id: str) -> ImageRecord:
        """Find an image by full ID, reference (default tag latest), or unique ID prefix."""
        return (await self.lookup(ref_or_id))[0]

    async def lookup(self, ref_or_id: str) -> tuple[ImageRecord, bool]:
        """resolve(), also telling whether the image was named by its ID."""
        def find(conn: sqlite3.Connection) -> tuple[ImageRecord | None, bool]:
            image_id, by_id = _resolve_id(conn, ref_or_id)
            return (store.get(conn, image_id) if image_id else None), by_id

        image, by_id = await self.db.run(find)
        if image is None:
            raise no_such_image(_display(ref_or_id))
        return image, by_id

    async def get(self, image_id: str) -> ImageRecord | None:
        return await self.db.run(lambda c: store.get(c, image_id))

    def containers_using(self, image_id: str) -> tuple[builtins.list[str], builtins.list[str]]:
        """(running, stopped) IDs of the containers made from the image."""
        return self.users.image_users(image_id)

    async def layer_dirs(self, image: ImageRecord) -> builtins.list[str]:
        """The unpacked layer directories of an image, top first."""
        if not image.top_chain:
            return []
        return [self.snapshots.fs_dir(i) for i in await self.snapshots.chain(image.top_chain)]

    async def list(self) -> list[ImageRecord]:
        """All images; served from memory until the next write (listing is hot)."""
        if self._listing is None:
            generation = self._generation
            images = await self.db.run(store.all_images)
            if generation != self._generation:  # a write landed meanwhile: don't keep it
                return images
            self._listing = images
        return list(self._listing)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a transaction that changes image records; every such change goes here."""
        try:
            return await self.db.run(fn)
        finally:
            self._generation += 1
            self._listing = None

    # -- recording ---------------------------------------------------------

    async def record(self, config: bytes, layers: Sequence[Layer], *, tags: Sequence[str] = (),
                     manifest_digest: str = "", parent: str = ""
                     ) -> tuple[ImageRecord, builtins.list[tuple[str, str | None]]]:
        """Store the config blob and record the image and its tags in one
        transaction. The layers' blobs and snapshots must already exist (under
        the caller's lease). Returns the image and, for each ref that moved to
        it, the image it pointed at before (None if it was new)."""
        config_digest = await asyncio.to_thread(self.content.write_bytes, config)
        doc = json.loads(config)
        now = now_rfc3339()
        image = ImageRecord(
            id=config_digest, config=doc, layers=tuple(layers),
            size=sum(layer.size for layer in layers), created=doc.get("created") or "",
            added_seq=0, manifest_digest=manifest_digest, parent=parent,
            top_chain=layers[-1].chain_id if layers else "")

        def txn(conn: sqlite3.Connection) -> tuple[ImageRecord, list[tuple[str, str | None]]]:
            store.insert(conn, image)
            moved = []
            for ref in tags:
                if store.by_ref(conn, ref) != image.id:
                    moved.append((ref, store.set_tag(conn, ref, image.id, now)))
            return store.get(conn, image.id), moved  # type: ignore[return-value]

        return await self._write(txn)

    async def by_ref(self, ref: str) -> str | None:
        """The image ID a full reference (name:tag or name@digest) points at."""
        return await self.db.run(lambda c: store.by_ref(c, ref))

    async def layer_blobs(self, diff_id: str) -> builtins.list[tuple[str, str, int]]:
        """(blob digest, media type, size) of the recorded layers with this diff ID."""
        return await self.db.run(lambda c: store.layer_blobs(c, diff_id))

    async def set_tag(self, image: ImageRecord, ref: str) -> None:
        """Point a full reference (name:tag) at the image; emits its "tag" event."""
        now = now_rfc3339()
        await self._write(lambda c: store.set_tag(c, ref, image.id, now))
        self.image_event(image, "tag", parse_normalized(ref).familiar())

    async def add_digest(self, image: ImageRecord, ref: str) -> None:
        """Record a RepoDigest ("repo@sha256:...") without moving the tag time (a push)."""
        await self._write(lambda c: store.add_digest_ref(c, ref, image.id))

    async def untag(self, image: ImageRecord, refs: Sequence[str]) -> None:
        """Remove references (tags, digests) of an image; one "untag" event each."""
        def txn(conn: sqlite3.Connection) -> None:
            for ref in refs:
                store.remove_ref(conn, ref)
        if refs:
            await self._write(txn)
        for _ in refs:
            self.image_event(image, "untag")

    async def remove(self, image: ImageRecord, *, parents: bool
                     ) -> builtins.list[tuple[ImageRecord, builtins.list[Layer]]]:
        """Delete an image (and, with parents, the untagged parents only it kept), emit
        their "delete" events and collect their storage; returns each image deleted
        with the layers it freed."""
        removed = await self._write(
            lambda c: store.remove_with_parents(c, image, parents=parents))
        for gone, _ in removed:
            # As dockerd: the image is gone by now, so its labels are not attributes.
            self.events.publish("image", "delete", gone.id, {"name": gone.id})
        await self.collect_garbage()
        return removed

    async def forget(self, image_id: str) -> None:
        """Drop an image record; what only it used goes at the next collection."""
        await self._write(lambda c: store.remove(c, image_id))

    async def tag(self, source: str, repo: str, tag: str) -> ImageRecord:
        image = await self.resolve(source)
        ref = parse_ref(repo)
        if ref.tag or ref.digest:
            if tag:
                raise InvalidParameter("refusing to create an ambiguous tag using digest reference")
        else:
            if tag:
                ref = parse_ref(f"{repo}:{tag}")
            ref = with_default_tag(ref)
        if ref.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        await self.set_tag(image, ref.string())
        return image

    # -- events and garbage collection -------------------------------------

    def image_event(self, image: ImageRecord, action: str, name: str | None = None) -> None:
        attrs = dict(image.labels)
        attrs["name"] = name or image.id
        self.events.publish("image", action, image.id, attrs)

    async def collect_garbage(self, *, startup: bool = False) -> gc.Stats:
        return await gc.collect(self.db, self.content, self.snapshots, self.leases,
                                startup=startup)

    def schedule_gc(self) -> None:
        if self._gc_task is None or self._gc_task.done():
            self._gc_task = asyncio.get_running_loop().create_task(self._gc_soon())

    async def _gc_soon(self) -> None:
        try:
            await self.collect_garbage()
        except Exception:
            log.exception("garbage collection failed")

    async def wait_gc(self) -> None:
        if self._gc_task is not None:
            await asyncio.shield(self._gc_task)


def _display(ref_or_id: str) -> str:
    """How dockerd names a missing image: the familiar reference with its tag."""
    if _HEX.fullmatch(ref_or_id) or ref_or_id.startswith("sha256:"):
        return ref_or_id
    try:
        return with_default_tag(parse_normalized(ref_or_id)).familiar()
    except InvalidReference:
        return ref_or_id


def _resolve_id(conn: sqlite3.Connection, ref_or_id: str) -> tuple[str | None, bool]:
    """(image id or None, whether ref_or_id named the image by ID)."""
    if _IMAGE_ID.fullmatch(ref_or_id):
        return (ref_or_id if store.get(conn, ref_or_id) else None), True
    if ref_or_id.startswith("sha256:") and _HEX.fullmatch(ref_or_id[7:]):
        return _unique_prefix(conn, ref_or_id[7:]), True
    if len(ref_or_id) == 64 and _HEX.fullmatch(ref_or_id):
        return _resolve_id(conn, "sha256:" + ref_or_id)
    try:
        ref = parse_normalized(ref_or_id)
    except InvalidReference as e:
        if _HEX.fullmatch(ref_or_id):
            return _unique_prefix(conn, ref_or_id), True
        raise InvalidParameter(str(e)) from None
    image_id = store.by_ref(conn, with_default_tag(ref).string())
    if image_id is None and _HEX.fullmatch(ref_or_id):
        return _unique_prefix(conn, ref_or_id), True
    return image_id, False


def _unique_prefix(conn: sqlite3.Connection, hex_prefix: str) -> str | None:
    found = store.by_prefix(conn, hex_prefix)
    return found[0] if len(found) == 1 else None
