"""`docker diff` and `docker commit`: what a container changed, and an image made of it.

Both read the container's overlay upper dir (its snapshot directory) against its image's
layer directories, without mounting (engine/diff.py). A commit's layer holds exactly the
changes, stored uncompressed (its digest is its diff ID), on top of the image's layers;
its config is the container's merged as dockerd's daemon/commit.go merges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from ...errors import DaemonError, InternalError, InvalidParameter, NotFound
from ..content.contract import Store
from ..diff import Change, diff_dirs, write_changes
from ..images.changes import apply_changes
from ..images.mediatypes import OCI_LAYER, now_rfc3339
from ..images.platform import ARCH, OS
from ..images.service import parse_ref
from ..images.unpack import LayerBlob, unpack
from ..reference import InvalidReference, with_default_tag, with_tag
from .fsverbs import FileAccess, check_exportable, check_ref
from .records import Container


async def _layers_of(fs: FileAccess, cid: str) -> tuple[str, list[str]]:
    """The container's upper dir and its image's layer dirs, top first."""
    chain = await fs.snapshots.chain(cid)
    return (fs.snapshots.fs_dir(chain[0]),
            [fs.snapshots.fs_dir(info) for info in chain[1:]])


async def changes(fs: FileAccess, ref: str) -> list[Change]:
    """GET /containers/{ref}/changes."""
    check_ref(ref)
    c = fs.store.get(ref)
    try:
        upper, lowers = await _layers_of(fs, c.id)
    except NotFound:
        raise InternalError(f"container {c.id} has no root filesystem") from None
    return await asyncio.to_thread(diff_dirs, upper, lowers)


# -- docker commit ---------------------------------------------------------------------------------

_IMAGE_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes",
                      "WorkingDir", "Labels", "StopSignal", "ArgsEscaped", "Healthcheck",
                      "OnBuild", "Shell")


def merge_commit_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """daemon/commit.go merge(): the container's config fills what the new one leaves unset."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User", "")
    ports = dict(out.get("ExposedPorts") or {})
    for port in container.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Env"] = env or None
    labels = dict(container.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    health = container.get("Healthcheck")
    if health is not None:
        mine = dict(out.get("Healthcheck") or {})
        if not out.get("Healthcheck"):
            mine = dict(health)
        else:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval",
                        "Retries"):
                if not mine.get(key):
                    mine[key] = health.get(key)
        out["Healthcheck"] = {k: v for k, v in mine.items() if v is not None}
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir", "")
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal"):
        out["StopSignal"] = container.get("StopSignal", "")
    return out


def image_config(config: dict[str, Any]) -> dict[str, Any]:
    """The runtime part of an image config (containerConfigToDockerOCIImageConfig);
    empty values left out, as Go's omitempty does."""
    out = {}
    for key in _IMAGE_CONFIG_KEYS:
        value = config.get(key)
        if value not in (None, "", [], {}, False):
            out[key] = value
    return out


def _commit_ref(repo: str, tag: str) -> str | None:
    """httputils.RepoTagReference: the fully qualified reference to tag, if any."""
    if not repo:
        return None
    ref = parse_ref(repo)
    if ref.digest:
        raise InvalidParameter("cannot import digest reference")
    try:
        ref = with_tag(ref, tag) if tag else with_default_tag(ref)
    except InvalidReference as e:
        raise InvalidParameter(str(e)) from None
    return ref.string()


async def commit(fs: FileAccess, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                 author: str = "", pause: bool = True, changes: Sequence[str] = (),
                 config: dict[str, Any] | None = None) -> str:
    """POST /commit: a new image = the container's image + one layer of its changes.
    Returns the image ID."""
    check_ref(ref)
    target = _commit_ref(repo, tag)
    c = fs.store.get(ref)
    check_exportable(c, "commit")
    new_config = apply_changes(dict(config) if config is not None else dict(c.config),
                               changes)
    new_config = merge_commit_config(new_config, c.config)
    paused = False
    if pause and c.state.status == "running":
        with contextlib.suppress(DaemonError):
            await fs.lifecycle.pause(c.id)
            paused = True
    try:
        image_id = await _commit_image(fs, c, new_config, target, comment, author)
    finally:
        if paused:
            with contextlib.suppress(DaemonError):
                await fs.lifecycle.unpause(c.id)
    imgs = fs.images
    image = await imgs.get(image_id)
    familiar = parse_ref(target).familiar() if target else ""
    if target and image is not None:
        imgs.image_event(image, "tag", familiar)
    with contextlib.suppress(NotFound):  # removed meanwhile: the event keeps the old record
        c = fs.store.get(c.id)
    fs.store.event(c, "commit", comment=comment, imageID=image_id, imageRef=familiar)
    return image_id


async def _commit_image(fs: FileAccess, c: Container, new_config: dict[str, Any],
                        target: str | None, comment: str, author: str) -> str:
    imgs = fs.images
    base = await imgs.get(c.image_id)
    if base is None:
        raise NotFound(f"No such image: {c.image_id}")
    base_config: dict[str, Any] = dict(base.config)
    base_layers = list(base.layers)
    try:
        upper, lowers = await _layers_of(fs, c.id)
    except NotFound:
        raise InternalError(f"container {c.id} has no root filesystem") from None
    async with imgs.leases.lease():
        found = await asyncio.to_thread(diff_dirs, upper, lowers)
        blobs = [LayerBlob(layer.blob_digest, layer.media_type, layer.blob_size)
                 for layer in base_layers]
        diff_ids = [layer.diff_id for layer in base_layers]
        empty = not found
        if not empty:
            blob = await asyncio.to_thread(_store_layer, imgs.content, upper, found)
            blobs.append(blob)
            diff_ids.append(blob.digest)  # uncompressed: the diff ID is the digest
        layers = await unpack(imgs.snapshots, imgs.content, blobs, diff_ids)
        created = now_rfc3339()
        author = author or base_config.get("author", "")
        cmd = c.config.get("Cmd") or []
        entry: dict[str, Any] = {"created": created,  # the container's Cmd, as dockerd has it
                                 "created_by": " ".join([cmd] if isinstance(cmd, str) else cmd)}
        if author:
            entry["author"] = author
        if comment:
            entry["comment"] = comment
        if empty:
            entry["empty_layer"] = True
        doc: dict[str, Any] = {"created": created}
        if author:
            doc["author"] = author
        doc.update({
            "architecture": base_config.get("architecture") or ARCH,
            "os": base_config.get("os") or OS,
            "config": image_config(new_config),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": list(base_config.get("history") or []) + [entry],
        })
        image, _ = await imgs.record(json.dumps(doc, separators=(",", ":")).encode(), layers,
                                     tags=[target] if target else [], parent=c.image_id)
    return str(image.id)


def _store_layer(content: Store, upper: str, found: Sequence[Change]) -> LayerBlob:
    with content.writer() as w:
        write_changes(upper, found, w)
        digest = w.commit()
        return LayerBlob(digest, OCI_LAYER, w.size)
