"""`docker push`: upload what the registry lacks, then the manifest.

For each layer: a HEAD tells whether the registry has the blob already; if
not, and another repository on the same registry is known locally to hold it
(a tag or digest of an image with that layer), a cross-repository mount is
asked for first; otherwise the blob is uploaded (POST, then one streaming
PUT with its digest). Layers go up in parallel (max-concurrent-uploads).
An image pulled from a registry is pushed with the manifest it came with,
so its digest survives the round trip; others get a schema 2 manifest built
here, as dockerd builds one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..engine.content.contract import sha256_bytes
from ..engine.images.contract import Images
from ..engine.images.mediatypes import MANIFESTS, OCI_MANIFEST
from ..engine.reference import InvalidReference, Reference, parse_normalized, with_tag
from ..engine.types import ImageRecord, Layer
from ..errors import DaemonError, NotFound
from . import blobs, manifests, progress
from .compress import Pushable, PushedBlobs
from .errors import TransportError
from .registries import Registries
from .registry import Registry

_MOUNT_CANDIDATES = 3


@dataclass(frozen=True)
class Pusher:
    """What a push uses: the images, the registries, and which blobs went where."""
    images: Images
    registries: Registries
    pushed: PushedBlobs


async def images_to_push(svc: Pusher, ref: Reference
                         ) -> list[tuple[str, ImageRecord]]:
    """(tag, image) pairs: the one tag asked for, or every tag of the repository."""
    listing = await svc.images.list()
    found: list[tuple[str, ImageRecord]] = []
    for image in listing:
        for tag_ref in image.tags:
            parsed = parse_normalized(tag_ref)
            if parsed.name == ref.name and (ref.tag is None or parsed.tag == ref.tag):
                found.append((parsed.tag or "latest", image))
    if not found:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
    return sorted(found, key=lambda item: item[0])


def _mount_sources(svc: Pusher, listing: Sequence[ImageRecord], ref: Reference,
                   digest: str) -> list[str]:
    """Repositories on ref's registry that hold blob `digest`, as far as we know: those
    it was pushed to, and those of images that have it."""
    out: list[str] = []
    for repo in svc.pushed.repos(digest):
        domain, _, path = repo.partition("/")
        if domain == ref.domain and path != ref.path and path not in out:
            out.append(path)
    for image in listing:
        if not any(layer.blob_digest == digest for layer in image.layers):
            continue
        for name in image.tags + image.digests:
            try:
                other = parse_normalized(name)
            except InvalidReference:
                continue
            if other.domain == ref.domain and other.path != ref.path and other.path not in out:
                out.append(other.path)
    return out[:_MOUNT_CANDIDATES]


async def _push_blob(svc: Pusher, registry: Registry, ref: Reference,
                     digest: str, size: int, counter: blobs.Counter | None,
                     sources: Sequence[str]) -> str:
    """Make sure the registry has a blob; returns the status moby shows for it."""
    if await registry.has_blob(ref.path, digest):
        return "Layer already exists"
    location = ""
    for source in sources:
        mounted, location = await registry.start_upload(ref.path, mount=digest, source=source)
        if mounted:
            return f"Mounted from {source}"  # moby names the repository by its path
        break  # a 202 opened an ordinary upload: use it
    if not location:
        _, location = await registry.start_upload(ref.path)
    body = blobs.read_file_chunks(svc.images.content, digest, counter, size)
    try:
        await registry.finish_upload(ref.path, location, digest, size, body)
    except BaseException:
        await registry.cancel_upload(ref.path, location)
        raise
    return "Pushed"


def _stored_manifest(content_bytes: bytes | None, image: ImageRecord) -> tuple[bytes, str] | None:
    """The manifest the image was pulled with, if it still describes exactly this image."""
    if content_bytes is None:
        return None
    try:
        doc = manifests.parse(content_bytes, "", image.id)
    except DaemonError:
        return None
    if not isinstance(doc, manifests.Manifest) or doc.config.digest != image.id:
        return None
    if [d.digest for d in doc.layers] != [layer.blob_digest for layer in image.layers]:
        return None
    media_type = json.loads(content_bytes).get("mediaType") or OCI_MANIFEST
    if media_type not in MANIFESTS:
        return None
    return content_bytes, media_type


def _read_manifest(svc: Pusher, image: ImageRecord) -> bytes | None:
    if not image.manifest_digest or not svc.images.content.exists(image.manifest_digest):
        return None
    return svc.images.content.read_bytes(image.manifest_digest)


async def push_tag(svc: Pusher, registry: Registry, ref: Reference, tag: str,
                   image: ImageRecord, emit: progress.Emit) -> None:
    content = svc.images.content
    unique: dict[str, Layer] = {}
    for layer in image.layers:
        unique.setdefault(layer.blob_digest, layer)
    for layer in unique.values():
        await emit(progress.layer("Preparing", progress.short(layer.diff_id)))
    slots = max(1, svc.registries.settings.max_concurrent_uploads)
    for layer in list(unique.values())[slots:]:
        await emit(progress.layer("Waiting", progress.short(layer.diff_id)))
    limit = asyncio.Semaphore(slots)
    listing = await svc.images.list()

    sent: dict[str, Pushable] = {}

    async def one(layer: Layer) -> None:
        ident = progress.short(layer.diff_id)
        if not await asyncio.to_thread(content.exists, layer.blob_digest):
            raise NotFound(f"layer {layer.blob_digest} of {ref.familiar()} is missing from "
                           "the content store")
        async with limit:
            blob = sent[layer.blob_digest] = await svc.pushed.pushable(content, layer)
            counter = blobs.Counter(ident, blob.size, emit)
            result = await _push_blob(svc, registry, ref, blob.digest, blob.size, counter,
                                      _mount_sources(svc, listing, ref, blob.digest))
        svc.pushed.pushed(blob.digest, ref.name)
        await emit(progress.layer(result, ident))

    results = await asyncio.gather(*(one(layer) for layer in unique.values()),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    config = await asyncio.to_thread(content.read_bytes, image.id)
    await _push_blob(svc, registry, ref, image.id, len(config), None, ())
    stored = _stored_manifest(await asyncio.to_thread(_read_manifest, svc, image), image)
    if stored is None:
        body, media_type = manifests.build(config, [
            (sent[layer.blob_digest].media_type, sent[layer.blob_digest].digest,
             sent[layer.blob_digest].size) for layer in image.layers])
    else:
        body, media_type = stored
    await registry.put_manifest(ref.path, tag, body, media_type)
    digest = sha256_bytes(body)
    await emit(progress.status(f"{tag}: digest: {digest} size: {len(body)}"))
    await emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})
    await svc.images.add_digest(image, f"{ref.name}@{digest}")
    svc.images.image_event(image, "push", f"{ref.familiar_name}:{tag}")


async def push(svc: Pusher, session: aiohttp.ClientSession, name: str, tag: str,
               creds: Any, emit: progress.Emit) -> None:
    ref = parse_normalized(name)
    if tag:
        ref = with_tag(ref, tag)
    await emit(progress.status(f"The push refers to repository [{ref.name}]"))
    targets = await images_to_push(svc, ref)
    endpoints = [e for e in await svc.registries.endpoints(ref.domain) if not e.mirror]
    last: TransportError | None = None
    for endpoint in endpoints:
        registry = Registry(session, endpoint, svc.registries.authorizer(endpoint, creds))
        try:
            await registry.ping()
        except TransportError as e:
            last = e
            continue
        async with svc.images.leases.lease():  # gzip copies made for the push stay meanwhile
            for push_as, image in targets:
                await push_tag(svc, registry, with_tag(ref, push_as), push_as, image, emit)
        return
    assert last is not None
    raise last
