"""`docker pull`: resolve a reference on a registry, fetch what is missing, record the image.

Endpoints are tried in order (mirrors, then the registry; https, then http for
an insecure one) until one answers with the manifest. Layers already unpacked
locally (same chain ID) with their blob in the store are not fetched again;
the others download in parallel (max-concurrent-downloads), each unpacked as
it arrives. Everything happens under a lease: a failure leaves nothing that
the garbage collector keeps, and it runs before the error is reported.
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
from ..engine.images.hold import hold
from ..engine.images.load import checked_diff_ids
from ..engine.images.mediatypes import OCI_CONFIG
from ..engine.images.unpack import chain_ids
from ..engine.leases import protect_digest, protect_snapshot
from ..engine.reference import Reference
from ..engine.types import ImageRecord, Layer
from ..errors import NotFound
from . import blobs, manifests, progress
from .manifests import DOCKER_CONFIG, Index, Manifest, Platform
from .registries import Registries
from .registry import Registry


@dataclass(frozen=True)
class Resolved:
    registry: Registry
    top_digest: str          # what the reference names: an index or a manifest
    manifest_digest: str     # the platform's manifest
    manifest_body: bytes
    manifest: Manifest


async def get_manifest(registry: Registry, ref: Reference, reference: str
                        ) -> tuple[bytes, str, str]:
    body, ctype, _ = await registry.get_manifest(ref.path, reference, manifests.ACCEPT)
    digest = sha256_bytes(body)
    if reference.startswith("sha256:") and digest != reference:
        raise blobs.VerificationError(f"manifest verification failed for digest {reference}")
    return body, ctype, digest


async def resolve(registry: Registry, ref: Reference, platform: Platform | None) -> Resolved:
    reference = ref.digest or ref.tag or "latest"
    body, ctype, top = await get_manifest(registry, ref, reference)
    doc = manifests.parse(body, ctype, ref.string())
    digest = top
    if isinstance(doc, Index):
        chosen = manifests.select(doc, platform or manifests.host_platform())
        body, ctype, digest = await get_manifest(registry, ref, chosen.digest)
        doc = manifests.parse(body, ctype or chosen.media_type, ref.string())
        if not isinstance(doc, Manifest):
            raise manifests.ManifestError(f"{ref.string()}: an index inside an index "
                                          "is not supported")
    return Resolved(registry, top, digest, body, doc)


def check_config(config: bytes, manifest: Manifest, ref: Reference,
                  platform: Platform | None, from_index: bool) -> list[str]:
    if manifest.config.media_type not in (DOCKER_CONFIG, OCI_CONFIG, ""):
        raise manifests.ManifestError(
            f'Encountered remote "{manifest.config.media_type}"(unknown) when fetching')
    diff_ids = checked_diff_ids(config)
    if len(diff_ids) != len(manifest.layers):
        raise manifests.ManifestError(
            f"{ref.string()}: the image config lists {len(diff_ids)} layers but the "
            f"manifest has {len(manifest.layers)}")
    if platform is not None and not from_index:
        actual = manifests.config_platform(json.loads(config))
        if not manifests.matches(platform, actual):
            raise NotFound(f"image with reference {ref.familiar()} was found but does not "
                           f"match the specified platform: wanted {platform}, actual: {actual}")
    return diff_ids


async def _fetch_layers(engine: Images, slots: int, resolved: Resolved,
                        diff_ids: Sequence[str], ref: Reference, emit: progress.Emit
                        ) -> list[Layer]:
    layers = resolved.manifest.layers
    chains = chain_ids(diff_ids)
    digests = [d.digest for d in layers]
    # Into the lease before looking (leases.py): what is found here stays until recorded.
    for digest in digests:
        protect_digest(digest)
    for chain in chains:
        protect_snapshot(chain)
    have_blob = await asyncio.to_thread(lambda: [engine.content.exists(d) for d in digests])
    have_snap = []
    for chain in chains:
        info = await engine.snapshots.stat(chain)
        have_snap.append(info is not None and info.kind == "committed")
    # A layer unpacked here from another blob (a plain tar from `docker import`, say)
    # is already here: keep that blob for it rather than fetch the registry's.
    local: dict[int, Layer] = {}
    for i in range(len(layers)):
        if have_snap[i] and not have_blob[i]:
            found = await _local_blob(engine, diff_ids[i])
            if found is not None:
                local[i] = found
                have_blob[i] = True
    for i, desc in enumerate(layers):
        ident = progress.short(desc.digest)
        if have_blob[i] and have_snap[i]:
            await emit(progress.layer("Already exists", ident))
        else:
            await emit(progress.layer("Pulling fs layer", ident))
    slots = max(1, slots)
    limit = asyncio.Semaphore(slots)
    sizes = [0] * len(layers)
    waiting = [i for i in range(len(layers)) if not (have_blob[i] and have_snap[i])]
    if len(waiting) > slots:
        for i in waiting[slots:]:
            await emit(progress.layer("Waiting", progress.short(layers[i].digest)))

    async def one(i: int) -> None:
        desc = layers[i]
        counter = blobs.Counter(progress.short(desc.digest), desc.size, emit)
        parent = chains[i - 1] if i else ""
        if have_snap[i]:
            info = await engine.snapshots.stat(chains[i])
            sizes[i] = info.size if info else 0
            if have_blob[i]:
                return
            async with limit:  # the snapshot stayed, the blob went: fetch the blob only
                await blobs.fetch_blob(resolved.registry, ref.path, desc.digest, desc.size,
                                       engine.content, counter)
            await emit(progress.layer("Download complete", counter.ident))
        elif have_blob[i]:
            unpacked = await blobs.unpack_stored(engine.content, engine.snapshots, desc.digest,
                                                 diff_ids[i], chains[i], parent)
            sizes[i] = unpacked.size
        else:
            async with limit:
                unpacked = await blobs.fetch_and_unpack(
                    resolved.registry, ref.path, desc.digest, desc.size, diff_ids[i], chains[i],
                    parent, engine.content, engine.snapshots, counter)
            sizes[i] = unpacked.size
            await emit(progress.transfer("Extracting", counter.ident, desc.size, desc.size))
        await emit(progress.layer("Pull complete", counter.ident))

    results = await asyncio.gather(*(one(i) for i in waiting), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    for i in range(len(layers)):
        if have_blob[i] and have_snap[i]:
            info = await engine.snapshots.stat(chains[i])
            sizes[i] = info.size if info else 0
    return [Layer(diff_ids[i], chains[i], local[i].blob_digest, local[i].media_type,
                  local[i].blob_size, sizes[i]) if i in local else
            Layer(diff_ids[i], chains[i], d.digest, d.media_type, d.size, sizes[i])
            for i, d in enumerate(layers)]


async def _local_blob(engine: Images, diff_id: str) -> Layer | None:
    """A stored blob of some local image's layer with this diff ID (protected by the lease)."""
    for row in await engine.layer_blobs(diff_id):
        protect_digest(row[0])  # before the check: the collector re-checks leases
        if await asyncio.to_thread(engine.content.exists, row[0]):
            return Layer(diff_id, "", row[0], row[1], row[2], 0)
    return None


async def pull_tag(registries: Registries, engine: Images,
                   session: aiohttp.ClientSession, ref: Reference, creds: Any,
                   platform: Platform | None, emit: progress.Emit
                   ) -> tuple[ImageRecord, bool]:
    """Pull one tag or digest; (image, whether the reference moved to a new image)."""
    resolved = await registries.first_answer(
        session, ref, creds, lambda registry: resolve(registry, ref, platform))
    await emit(progress.status(f"Pulling from {ref.path}", ref.tag or ref.digest or ""))
    registry, manifest = resolved.registry, resolved.manifest
    async with engine.leases.lease():
        await asyncio.to_thread(engine.content.write_bytes, resolved.manifest_body,
                                resolved.manifest_digest)
        config = await blobs.fetch_json_blob(registry, ref.path, manifest.config.digest,
                                             manifest.config.size, engine.content)
        diff_ids = check_config(config, manifest, ref, platform,
                                 resolved.top_digest != resolved.manifest_digest)
        existing = await engine.get(manifest.config.digest)
        if existing is not None and len(existing.layers) == len(diff_ids) \
                and await hold(engine.content, engine.snapshots, existing):
            layers = list(existing.layers)
        else:
            layers = await _fetch_layers(engine, registries.settings.max_concurrent_downloads,
                                         resolved, diff_ids, ref, emit)
        refs = [ref.string()] if ref.tag else []
        refs.append(f"{ref.name}@{resolved.top_digest}")
        before = await engine.by_ref(ref.string())
        image, _ = await engine.record(config, layers, tags=refs,
                                       manifest_digest=resolved.manifest_digest)
    await emit(progress.status(f"Digest: {resolved.top_digest}"))
    engine.image_event(image, "pull", ref.familiar())
    return image, before != image.id


def final_status(name: str, updated: bool) -> progress.Message:
    if updated:
        return progress.status(f"Status: Downloaded newer image for {name}")
    return progress.status(f"Status: Image is up to date for {name}")
