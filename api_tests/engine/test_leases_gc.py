"""Leases against the garbage collector, on the real stores (sqlite, the content
store, the overlay snapshotter's directories) in a temporary directory.

The protocol (engine/leases.py): whoever reuses a blob or a snapshot protects it
in its lease first and looks after; the collector asks the leases at the moment
it deletes. These tests run a collection at the worst moment, deterministically:
right after the reuse was decided, before anything durable references it.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockerd_py.engine import gc
from dockerd_py.engine.content.local import ContentStore
from dockerd_py.engine.images.hold import hold
from dockerd_py.engine.images.unpack import LayerBlob, chain_ids, unpack
from dockerd_py.engine.leases import LeaseManager, protect_digest
from dockerd_py.engine.metadata.db import Database
from dockerd_py.engine.snapshots.overlay import OverlaySnapshotter
from dockerd_py.engine.types import ImageRecord, Layer

TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Stores:
    db: Database
    content: ContentStore
    snapshots: OverlaySnapshotter
    leases: LeaseManager

    async def collect(self) -> gc.Stats:
        return await gc.collect(self.db, self.content, self.snapshots, self.leases)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    db = Database(str(tmp_path / "metadata.db"))
    try:
        yield Stores(db, ContentStore(str(tmp_path / "content")),
                     OverlaySnapshotter(str(tmp_path / "snapshots"), db), LeaseManager())
    finally:
        db.close()


def layer_tar(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(name), 0o644
        tf.addfile(info, io.BytesIO(name.encode()))
    return out.getvalue()


async def two_layers(s: Stores) -> tuple[list[LayerBlob], list[str]]:
    """Two layers unpacked and committed, then left to nobody (no image, no lease)."""
    blobs, diff_ids = [], []
    async with s.leases.lease():
        for name in ("one", "two"):
            data = layer_tar(name)
            digest = s.content.write_bytes(data)
            blobs.append(LayerBlob(digest, TAR, len(data)))
            diff_ids.append(digest)
        await unpack(s.snapshots, s.content, blobs, diff_ids)
    return blobs, diff_ids


async def test_unpack_keeps_the_committed_snapshots_it_reuses(stores: Stores) -> None:
    """An image whose layers are all unpacked already (a load of an image sharing them):
    a collection between the unpack and the record keeps them."""
    blobs, diff_ids = await two_layers(stores)
    top = chain_ids(diff_ids)[-1]
    async with stores.leases.lease():
        layers = await unpack(stores.snapshots, stores.content, blobs, diff_ids)
        assert layers[-1].chain_id == top
        await stores.collect()  # an rmi elsewhere, or a prune, right now
        assert [i.kind for i in await stores.snapshots.chain(top)] == ["committed"] * 2
        assert all(stores.content.exists(b.digest) for b in blobs)
    stats = await stores.collect()  # the lease is over and no image took them: they go
    assert (stats.snapshots, stats.blobs) == (2, 2)


async def test_hold_protects_then_looks(stores: Stores) -> None:
    blobs, diff_ids = await two_layers(stores)
    chains = chain_ids(diff_ids)
    async with stores.leases.lease():
        config = stores.content.write_bytes(b"{}")
    layers = tuple(Layer(d, c, b.digest, b.media_type, b.size, 0)
                   for d, c, b in zip(diff_ids, chains, blobs, strict=True))
    image = ImageRecord(id=config, config={}, layers=layers, size=0, created="", added_seq=0,
                        top_chain=chains[-1])
    async with stores.leases.lease():
        assert await hold(stores.content, stores.snapshots, image)
        await stores.collect()
        assert await hold(stores.content, stores.snapshots, image)  # all of it stayed
    await stores.collect()
    async with stores.leases.lease():
        assert not await hold(stores.content, stores.snapshots, image)  # collected: gone


async def test_sweep_asks_the_leases_when_it_deletes(stores: Stores) -> None:
    """A snapshot protected after the mark stays, with its parents."""
    _, diff_ids = await two_layers(stores)
    first, top = chain_ids(diff_ids)
    gone = await stores.snapshots.sweep(set(), leased=lambda: {top})
    assert gone == []
    assert [i.name for i in await stores.snapshots.chain(top)] == [top, first]


async def test_a_blob_is_deleted_only_if_no_lease_holds_it(stores: Stores) -> None:
    async with stores.leases.lease():
        digest = stores.content.write_bytes(b"blob")
    async with stores.leases.lease():
        protect_digest(digest)
        assert not stores.leases.delete_unless_leased(digest, stores.content.delete)
        assert stores.content.exists(digest)
    assert stores.leases.delete_unless_leased(digest, stores.content.delete)
    assert not stores.content.exists(digest)
