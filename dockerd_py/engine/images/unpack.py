"""Unpack image layers into committed snapshots named by chain ID.

Chain IDs come from the config's diff IDs (chain_0 = diff_0, chain_i =
sha256(chain_{i-1} + " " + diff_i)), so a layer already unpacked for another
image is reused, not extracted again (protected by the caller's lease before
it is looked up). Each overlay layer directory is independent of its parents,
so missing layers are extracted in parallel.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ...errors import InvalidParameter
from .. import archive
from ..content.contract import Store
from ..leases import protect_digest, protect_snapshot
from ..snapshots.contract import Snapshotter
from ..types import Layer

# Extraction is mostly I/O and syscalls; two workers keep a 2-core machine busy.
_PARALLEL_EXTRACTS = 2


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


@dataclass(frozen=True)
class LayerBlob:
    digest: str
    media_type: str
    size: int


async def unpack(snapshots: Snapshotter, content: Store,
                 blobs: Sequence[LayerBlob], diff_ids: Sequence[str]) -> list[Layer]:
    """Make sure a committed snapshot exists for every layer; returns the layers.
    Each blob's uncompressed digest must equal its diff ID."""
    if len(blobs) != len(diff_ids):
        raise InvalidParameter(f"image config lists {len(diff_ids)} layers "
                               f"but the manifest has {len(blobs)}")
    chains = chain_ids(diff_ids)
    sizes: list[int] = [0] * len(blobs)
    limit = asyncio.Semaphore(_PARALLEL_EXTRACTS)
    prepared: list[str] = []

    async def one(i: int) -> None:
        # Into the lease before looking (leases.py): a snapshot reused here, and the blob
        # recorded with it, stay until the image row references them.
        protect_digest(blobs[i].digest)
        protect_snapshot(chains[i])
        existing = await snapshots.stat(chains[i])
        if existing is not None and existing.kind == "committed":
            sizes[i] = existing.size
            return
        async with limit:
            key = f"extract-{uuid.uuid4().hex}"
            info = await snapshots.prepare(key, chains[i - 1] if i else "")
            prepared.append(key)
            stats = await asyncio.to_thread(_apply, content, blobs[i].digest,
                                            snapshots.fs_dir(info))
        if stats.diff_id != diff_ids[i]:
            raise InvalidParameter(f"layer {blobs[i].digest}: content does not match its diff ID "
                                   f"(expected {diff_ids[i]}, got {stats.diff_id})")
        sizes[i] = stats.size
        await snapshots.commit(chains[i], key, stats.size)
        prepared.remove(key)

    results = await asyncio.gather(*(one(i) for i in range(len(blobs))), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        for key in prepared:  # explicit rollback, whatever failed (ENOSPC included)
            await snapshots.abort(key)
        raise errors[0]
    return [Layer(diff_ids[i], chains[i], b.digest, b.media_type, b.size, sizes[i])
            for i, b in enumerate(blobs)]


def _apply(content: Store, digest: str, root: str) -> archive.LayerStats:
    with content.open(digest) as f:
        return archive.apply_layer(f, root)


async def unpack_base(snapshots: Snapshotter, content: Store,
                      blob: LayerBlob) -> Layer:
    """Unpack a base layer whose diff ID is not known yet (`docker import`):
    its chain ID is its diff ID, learnt by extracting it."""
    key = f"extract-{uuid.uuid4().hex}"
    info = await snapshots.prepare(key)
    try:
        stats = await asyncio.to_thread(_apply, content, blob.digest, snapshots.fs_dir(info))
        await snapshots.commit(stats.diff_id, key, stats.size)
    except BaseException:
        await snapshots.abort(key)
        raise
    return Layer(stats.diff_id, stats.diff_id, blob.digest, blob.media_type, blob.size, stats.size)
