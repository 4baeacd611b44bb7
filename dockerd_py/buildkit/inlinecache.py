"""Inline build cache (`--cache-to type=inline`, `--cache-from REF`), in BuildKit's format.

BuildKit's inline cache is a key of the image config, "moby.buildkit.cache.v0":
the base64 of a JSON array of cache records (cache/remotecache/v1's CacheRecord:
"digest", "layers" [{"layer": index into the image's layers, "createdAt"}],
"inputs" [[{"link": record index}]]). Our records' digests are our builder's
step cache keys (builder/cache.py), so a record matches exactly the step that
would give the same image; BuildKit's own keys never collide with them (and
BuildKit skips records it cannot match).

Export: the records of the final image's chain of steps (its build cache entries,
parent by parent), as BuildKit's inline exporter gives only the result's chain.
Import: a hit on record K over parent image P rebuilds the step's image from the
cached image itself: P's history must be a prefix of the cached image's history
(and P's layers of its layers), so the step's history entry is the next one (its
time, whether it added a layer) and its layer the next layer, which is fetched
and unpacked only now. The builder then records exactly the image a warm daemon
has, so the steps above it hit too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from builder.request import ImportedStep
from dockerd_py.distribution.remote import RemoteImage
from dockerd_py.engine.content.contract import Store
from dockerd_py.engine.images.buildcache import Entry
from dockerd_py.engine.reference import parse_normalized
from dockerd_py.engine.snapshots.contract import Snapshotter
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import NotFound

from .status import Progress, vertex_digest

log = logging.getLogger(__name__)

CACHE_KEY = "moby.buildkit.cache.v0"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MAX_RECORDS = 10000
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


def chain_records(final: ImageRecord, entries: Sequence[Entry],
                  images: dict[str, ImageRecord], since: float) -> list[dict[str, Any]]:
    """The cache records of the steps that made `final`, bottom step first: only entries
    this build made or hit (used since it started), never an older build's entry that
    happens to name one of its base images."""
    newest: dict[str, tuple[float, Entry]] = {}
    for entry in entries:                       # the most recently used wins
        # as times: Go's RFC 3339 text drops a fraction's trailing zeros, so it does not sort
        used = parse_time(entry.last_used)
        if used < since:
            continue
        seen = newest.get(entry.image_id)
        if seen is None or used >= seen[0]:
            newest[entry.image_id] = (used, entry)
    by_image = {image_id: entry for image_id, (_, entry) in newest.items()}
    chain: list[tuple[Entry, ImageRecord]] = []
    # BuildKit's --label makes a config-only child of the last step, which has no entry
    current = final.id if final.id in by_image else final.parent
    visited: set[str] = set()
    while current in by_image and current not in visited and current in images:
        visited.add(current)
        entry = by_image[current]
        chain.append((entry, images[current]))
        current = entry.parent
    chain.reverse()
    records: list[dict[str, Any]] = []
    for i, (entry, image) in enumerate(chain):
        record: dict[str, Any] = {"digest": entry.key}
        if image.layers:
            record["layers"] = [{"layer": len(image.layers) - 1,
                                 "createdAt": image.config.get("created") or ""}]
        if i:
            record["inputs"] = [[{"link": i - 1}]]
        records.append(record)
    return records


def encode(records: list[dict[str, Any]]) -> str:
    return base64.b64encode(json.dumps(records, separators=(",", ":")).encode()).decode()


def parse(config: bytes) -> set[str]:
    """The record digests (our step keys) of an image config's inline cache; empty when
    it has none. Raises ValueError when it is there but malformed."""
    doc = json.loads(config)
    raw = doc.get(CACHE_KEY) if isinstance(doc, dict) else None
    if raw is None:
        return set()
    if not isinstance(raw, str):
        raise ValueError(f"invalid {CACHE_KEY}: not a string")
    try:
        records = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"invalid {CACHE_KEY}: {e}") from None
    if not isinstance(records, list) or len(records) > _MAX_RECORDS:
        raise ValueError(f"invalid {CACHE_KEY}: not a list of records")
    return {r["digest"] for r in records
            if isinstance(r, dict) and isinstance(r.get("digest"), str)
            and _DIGEST.fullmatch(r["digest"])}


class InlineCacheSource:
    """One --cache-from image: builder/request.py's CacheSource."""

    def __init__(self, remote: RemoteImage, keys: set[str], content: Store,
                 snapshots: Snapshotter) -> None:
        self.remote = remote
        self.keys = keys
        self._content = content
        self._snapshots = snapshots
        doc = json.loads(remote.config)
        self._history: list[dict[str, Any]] = [h for h in doc.get("history") or []
                                               if isinstance(h, dict)]

    async def lookup(self, key: str, parent: ImageRecord | None) -> ImportedStep | None:
        if key not in self.keys:
            return None
        parent_history = list((parent.config.get("history") or []) if parent else [])
        parent_layers = [x.diff_id for x in parent.layers] if parent else []
        n = len(parent_history)
        if n >= len(self._history) or self._history[:n] != parent_history \
                or self.remote.diff_ids[:len(parent_layers)] != parent_layers:
            return None                 # the key matched, the chain did not: a miss
        entry = self._history[n]
        created = entry.get("created")
        if not isinstance(created, str) or not _RFC3339.fullmatch(created):
            return None
        if entry.get("empty_layer"):
            return ImportedStep(created, None)
        index = len(parent_layers)
        if index >= len(self.remote.diff_ids):
            return None
        try:
            layer = await self.remote.layer(index, self._content, self._snapshots)
        except Exception as e:          # a cache that cannot deliver is a miss
            log.warning("cache from %s: layer %d: %s", self.remote.name, index, e)
            return None
        return ImportedStep(created, layer)


class RemoteOpener(Protocol):
    """DistributionService.remote."""

    def __call__(self, name: str, *, auth: dict[str, Any] | None = None
                 ) -> AbstractAsyncContextManager[RemoteImage]: ...


class Credentials(Protocol):
    async def credentials(self, host: str) -> dict[str, Any] | None: ...


@contextlib.asynccontextmanager
async def open_sources(opener: RemoteOpener, refs: Sequence[str], auth: Credentials,
                       progress: Progress, build_ref: str, content: Store,
                       snapshots: Snapshotter) -> AsyncIterator[list[InlineCacheSource]]:
    """The --cache-from images that can be read, open for the build. One that cannot (not
    there, no inline cache, a registry error) is an error of its own progress vertex, as
    BuildKit shows it, and the build goes on without it."""
    async with contextlib.AsyncExitStack() as stack:
        sources = []
        for ref in refs:
            name = f"importing cache manifest from {ref}"
            digest = vertex_digest(build_ref, name)
            await progress.started(digest, name)
            try:
                creds = await auth.credentials(parse_normalized(ref).domain)
                image = await stack.enter_async_context(opener(ref, auth=creds))
                keys = parse(image.config)
                if not keys:
                    raise ValueError(f"{ref}: the image has no inline build cache (build it "
                                     "with --cache-to type=inline)")
            except asyncio.CancelledError:
                raise
            except NotFound:                # BuildKit's words
                await progress.completed(digest, f"{ref}: not found")
                continue
            except Exception as e:
                log.info("cache from %s: %s", ref, e)
                await progress.completed(digest, str(e) or type(e).__name__)
                continue
            await progress.completed(digest)
            sources.append(InlineCacheSource(image, keys, content, snapshots))
        yield sources
