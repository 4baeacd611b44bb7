"""Records that cross the engine/API boundary (frozen; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Layer:
    diff_id: str        # sha256 of the uncompressed tar
    chain_id: str       # identity of this layer stacked on its parents (snapshot name)
    blob_digest: str    # the blob as stored (maybe compressed)
    media_type: str
    blob_size: int
    size: int           # unpacked size


@dataclass(frozen=True)
class ImageRecord:
    id: str                              # "sha256:<hex>" of the config
    config: dict[str, Any]               # the image config document
    layers: tuple[Layer, ...]
    size: int
    created: str
    added_seq: int
    manifest_digest: str = ""
    parent: str = ""
    top_chain: str = ""
    last_tag_time: str = ""
    tags: tuple[str, ...] = ()           # normalized "docker.io/library/x:tag"
    digests: tuple[str, ...] = ()        # normalized "docker.io/library/x@sha256:..."
    children: tuple[str, ...] = field(default=(), compare=False)

    @property
    def short_id(self) -> str:
        return self.id[7:19]

    @property
    def labels(self) -> dict[str, str]:
        return (self.config.get("config") or {}).get("Labels") or {}

    @property
    def dangling(self) -> bool:
        return not self.tags and not self.digests
