"""Keeping what an image stands on while a pull, build or create reuses it.

An image found by a lookup can be removed (`rmi`, a prune) and collected
before the work that found it records anything that references it. `hold`
puts the image's blobs and snapshots into the caller's lease first and only
then checks that they are all still there (leases.py: protect, then look):
True means they stay until the lease ends; False means a collection took some
of it, and the caller treats the image as absent.
"""

from __future__ import annotations

import asyncio

from ...errors import NotFound
from ..content.contract import Store
from ..leases import protect_digest, protect_snapshot
from ..snapshots.contract import Snapshotter
from ..types import ImageRecord


async def hold(content: Store, snapshots: Snapshotter, image: ImageRecord) -> bool:
    digests = [image.id] + [layer.blob_digest for layer in image.layers]
    for digest in digests:
        protect_digest(digest)
    if image.manifest_digest:
        protect_digest(image.manifest_digest)  # optional: kept if still there
    for layer in image.layers:
        protect_snapshot(layer.chain_id)
    if not await asyncio.to_thread(lambda: all(content.exists(d) for d in digests)):
        return False
    if image.top_chain:
        try:
            chain = await snapshots.chain(image.top_chain)
        except NotFound:
            return False
        if any(info.kind != "committed" for info in chain):
            return False
    return True
