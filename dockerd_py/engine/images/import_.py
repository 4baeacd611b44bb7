"""`docker import`: a root filesystem tarball becomes a one-layer image."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

from ..reference import with_default_tag
from ..types import ImageRecord
from .changes import apply_changes
from .contract import Images
from .ingest import ingest_stream
from .mediatypes import now_rfc3339
from .platform import ARCH, OS
from .service import parse_ref
from .unpack import unpack_base


async def import_image(svc: Images, chunks: AsyncIterator[bytes], *, repo: str = "",
                       message: str = "", changes: Sequence[str] = (),
                       source: str = "-") -> ImageRecord:
    # Validate everything the client gave before reading the body.
    refs = [with_default_tag(parse_ref(repo)).string()] if repo else []
    runtime_config = apply_changes({}, changes)

    async with svc.leases.lease():
        blob = await ingest_stream(svc.content, chunks)
        layer = await unpack_base(svc.snapshots, svc.content, blob)
        created = now_rfc3339()
        comment = message or f"Imported from {source}"
        config = {
            "architecture": ARCH,
            "os": OS,
            "created": created,
            "comment": comment,
            "config": runtime_config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": created, "comment": comment}],
        }
        image, _ = await svc.record(json.dumps(config, separators=(",", ":")).encode(), [layer],
                                    tags=refs)
    for ref in refs:
        svc.image_event(image, "tag", parse_ref(ref).familiar())
    svc.image_event(image, "import")
    return image
