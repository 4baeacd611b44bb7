"""Read-only image queries: `docker images` filtering and `docker history`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..filters import Filters
from ..reference import familiar_match, parse_normalized
from ..timestamps import parse_time, parse_timestamp
from ..types import ImageRecord
from .contract import Images

LIST_FILTERS = ("before", "dangling", "label", "reference", "since", "until")


async def list_images(svc: Images, filters: Filters, *, all: bool = False
                      ) -> list[ImageRecord]:
    filters.validate(LIST_FILTERS)
    images = await svc.list()
    dangling = filters.bool_value("dangling")
    before = [await svc.resolve(r) for r in filters.get("before")]
    since = [await svc.resolve(r) for r in filters.get("since")]
    until = [parse_timestamp(v) for v in filters.get("until")]
    out = []
    for image in images:
        # Intermediate images (untagged parents of other images) only with -a.
        if not all and image.dangling and image.children:
            continue
        if dangling is not None and image.dangling != dangling:
            continue
        if not filters.match_labels(image.labels):
            continue
        created = parse_time(image.created)
        if any(created >= parse_time(b.created) for b in before):
            continue
        if any(created <= parse_time(s.created) for s in since):
            continue
        if any(created >= u for u in until):
            continue
        if filters.contains("reference"):
            matching = _only_matching_refs(image, filters.get("reference"))
            if matching is None:
                continue
            image = matching
        out.append(image)
    out.sort(key=lambda i: (parse_time(i.created), i.added_seq), reverse=True)
    return out


def _only_matching_refs(image: ImageRecord, patterns: frozenset[str]) -> ImageRecord | None:
    """Keep the image if a reference matches, listing only matching references (as dockerd)."""
    def keep(refs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(r for r in refs
                     if any(familiar_match(p, parse_normalized(r)) for p in patterns))
    tags, digests = keep(image.tags), keep(image.digests)
    if not tags and not digests:
        return None
    return replace(image, tags=tags, digests=digests)


@dataclass(frozen=True)
class HistoryEntry:
    id: str
    created: float
    created_by: str
    tags: tuple[str, ...]
    size: int
    comment: str


async def history(svc: Images, name: str) -> list[HistoryEntry]:
    image = await svc.resolve(name)
    entries = image.config.get("history") or []
    layers = list(image.layers)
    rows: list[HistoryEntry] = []
    layer_index = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer"):
            if layer_index < len(layers):
                size = layers[layer_index].size
            layer_index += 1
        rows.append(HistoryEntry("<missing>", parse_time(entry.get("created", "")),
                                 entry.get("created_by", ""), (), size, entry.get("comment", "")))
    if not rows:  # an image without history still has its layers
        rows = [HistoryEntry("<missing>", parse_time(image.created), "", (), layer.size, "")
                for layer in layers]
    rows.reverse()
    # Name the entries that correspond to local images: this one and its parents.
    current: ImageRecord | None = image
    while current is not None and rows:
        depth = len(current.config.get("history") or []) or len(current.layers)
        idx = len(rows) - depth
        if 0 <= idx < len(rows):
            r = rows[idx]
            rows[idx] = HistoryEntry(current.id, r.created, r.created_by,
                                     tuple(parse_normalized(t).familiar() for t in current.tags),
                                     r.size, r.comment)
        current = await svc.get(current.parent) if current.parent else None
    return rows
