"""`docker rmi` and `docker image prune`, with dockerd's untag/delete rules.

Naming an image by reference untags that reference (and the digests of the
same repository once no tag of it is left); the image itself goes when no
reference is left. Naming it by ID removes all its references if they are in
one repository (otherwise only with force). Deleting is refused while a
container uses the image (stopped ones: unless forced) or a child image
depends on it. Freed layers are reported and their storage collected at once.
"""

from __future__ import annotations

from typing import Any

from ...errors import Conflict
from ..filters import Filters
from ..reference import parse_normalized, with_default_tag
from ..timestamps import parse_time, parse_timestamp
from ..types import ImageRecord
from .contract import Images
from .service import parse_ref

Report = list[dict[str, str]]


def _repo(ref: str) -> str:
    return parse_normalized(ref).name


async def delete(svc: Images, name: str, *, force: bool = False,
                 prune: bool = True) -> Report:
    image, by_id = await svc.lookup(name)
    refs = list(image.tags) + list(image.digests)
    running, stopped = svc.containers_using(image.id)
    untagged: list[str] = []
    if not by_id:
        ref = with_default_tag(parse_ref(name)).string()
        if not force and len(refs) == 1 and (running or stopped):
            user = (running or stopped)[0]
            raise Conflict(f'conflict: unable to remove repository reference "{name}" (must force)'
                           f" - container {user[:12]} is using its referenced image "
                           f"{image.short_id}")
        untagged.append(ref)
        remaining = [r for r in refs if r != ref]
        if "@" not in ref and not any("@" not in r and _repo(r) == _repo(ref) for r in remaining):
            untagged += [r for r in remaining if "@" in r and _repo(r) == _repo(ref)]
        if len(untagged) < len(refs) or running or (stopped and not force):
            # Other references keep the image; a container using it keeps it quietly.
            return await _untag(svc, image, untagged)
    elif refs:
        if not force and not _single_reference(refs):
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                           "image is referenced in multiple repositories")
        untagged = refs
    _check_conflicts(image, running, stopped, force=force)
    report = await _untag(svc, image, untagged)
    removed, _ = await _remove(svc, image, prune=prune)
    return report + removed


def _single_reference(refs: list[str]) -> bool:
    """dockerd's isSingleReference: all references in one repository, at most one a tag.
    (Two tags of one repository still need force to be removed by ID.)"""
    return sum("@" not in r for r in refs) <= 1 and len({_repo(r) for r in refs}) == 1


def _check_conflicts(image: ImageRecord, running: list[str], stopped: list[str], *,
                     force: bool) -> None:
    if image.children:
        raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                       "image has dependent child images")
    if running:
        raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - "
                       f"image is being used by running container {running[0][:12]}")
    if stopped and not force:
        raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - "
                       f"image is being used by stopped container {stopped[0][:12]}")


async def _untag(svc: Images, image: ImageRecord, refs: list[str]) -> Report:
    await svc.untag(image, refs)
    return [{"Untagged": parse_normalized(r).familiar()} for r in refs]


async def _remove(svc: Images, image: ImageRecord, *, prune: bool) -> tuple[Report, int]:
    """Delete the image (and untagged parents when pruning); report freed layers.
    Returns the report and the unpacked bytes freed."""
    report: Report = []
    freed = 0
    for gone, layers in await svc.remove(image, parents=prune):
        report.append({"Deleted": gone.id})
        report += [{"Deleted": layer.chain_id} for layer in layers]
        freed += sum(layer.size for layer in layers)
    return report, freed


async def prune(svc: Images, filters: Filters) -> dict[str, Any]:
    filters.validate(("dangling", "label", "label!", "until"))
    dangling_only = filters.bool_value("dangling")
    dangling_only = True if dangling_only is None else dangling_only
    until = _until(filters)
    report: Report = []
    reclaimed = 0
    for image in await svc.list():
        if dangling_only and not image.dangling:
            continue
        if image.children or not _label_ok(filters, image.labels):
            continue
        if until is not None and parse_time(image.created) >= until:
            continue
        if any(svc.containers_using(image.id)):
            continue
        current = await svc.get(image.id)
        if current is None:
            continue
        untagged = list(current.tags) + list(current.digests)
        report += await _untag(svc, current, untagged)
        removed, freed = await _remove(svc, current, prune=True)
        report += removed
        reclaimed += freed
    return {"ImagesDeleted": report or None, "SpaceReclaimed": reclaimed}


def _label_ok(filters: Filters, labels: dict[str, str]) -> bool:
    if filters.contains("label") and not filters.match_labels(labels, "label"):
        return False
    if filters.contains("label!"):
        return not any(Filters.of({"label": [v]}).match_labels(labels, "label")
                       for v in filters.get("label!"))
    return True


def _until(filters: Filters) -> float | None:
    values = filters.get("until")
    if not values:
        return None
    return parse_timestamp(next(iter(values)))
