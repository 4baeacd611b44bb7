"""`docker save`: a Docker archive with an OCI image layout alongside (as Docker 25+).

The archive holds blobs/sha256/<hex> (configs, layers as stored, manifests),
index.json + oci-layout (OCI), and manifest.json + repositories (Docker's
format, which dockerd 20.10 and older read). Written by a worker thread into
the response stream; blobs shared by several images are written once.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from ...errors import InvalidParameter, NotFound
from ..aio import produce
from ..content.contract import Provider, sha256_bytes
from ..reference import parse_normalized
from ..types import ImageRecord
from .contract import Images
from .mediatypes import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from .service import parse_ref


@dataclass(frozen=True)
class SaveItem:
    image: ImageRecord
    refs: tuple[str, ...]   # normalized tagged references to name it by


async def plan(svc: Images, names: Sequence[str]) -> list[SaveItem]:
    """Resolve names as dockerd does: a repository name saves all its tags, a
    tagged name that tag, an ID no tag. Fails before any byte is sent."""
    items: dict[str, list[str]] = {}
    images: dict[str, ImageRecord] = {}
    for name in names:
        tagged = await _repository_tags(svc, name)
        for other, tag in tagged:  # a repository name: all its tags, with or without latest
            images[other.id] = other
            items.setdefault(other.id, []).append(tag)
        if tagged:
            continue
        image, by_id = await svc.lookup(name)
        images[image.id] = image
        refs = items.setdefault(image.id, [])
        if not by_id and (ref := parse_ref(name)).tag is not None:
            refs.append(ref.string())
    return [SaveItem(images[i], tuple(dict.fromkeys(refs))) for i, refs in items.items()]


async def _repository_tags(svc: Images, name: str) -> list[tuple[ImageRecord, str]]:
    """For a name without tag or digest, every tagged reference of that repository."""
    try:
        ref = parse_ref(name)
    except InvalidParameter:
        return []  # an ID
    if ref.tag is not None or ref.digest is not None:
        return []
    return [(image, tag) for image in await svc.list() for tag in image.tags
            if parse_normalized(tag).name == ref.name]


def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, *,
         src: BinaryIO | None = None, size: int = 0) -> None:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    if data is not None:
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    else:
        info.size = size
        tf.addfile(info, src)


def _dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tf.addfile(info)


def _manifest(content: Provider, image: ImageRecord) -> bytes:
    if image.manifest_digest and content.exists(image.manifest_digest):
        return content.read_bytes(image.manifest_digest)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": image.id,
                   "size": content.size(image.id)},
        "layers": [{"mediaType": layer.media_type, "digest": layer.blob_digest,
                    "size": layer.blob_size} for layer in image.layers],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class _BlobTar(tarfile.TarFile):
    """Copies each blob in 1 MiB reads (tarfile's own: 16 KiB). Set in the constructor,
    which tarfile.open() calls, as typeshed's open() does not list copybufsize."""

    def __init__(self, name: str | None, mode: Literal["w"], fileobj: BinaryIO, *,
                 format: int) -> None:
        super().__init__(name, mode, fileobj, format=format, copybufsize=1 << 20)


def write_archive(content: Provider, items: Sequence[SaveItem], out: Any) -> None:
    written: set[str] = set()
    index: list[dict[str, Any]] = []
    docker_manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    with _BlobTar.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _dir(tf, "blobs")
        _dir(tf, "blobs/sha256")

        def blob(digest: str, data: bytes | None = None) -> str:
            path = "blobs/sha256/" + digest[7:]
            if digest not in written:
                written.add(digest)
                if data is not None:
                    _add(tf, path, data)
                else:
                    try:
                        f = content.open(digest)
                    except NotFound:
                        raise NotFound(f"content {digest} missing from the store") from None
                    with f:
                        _add(tf, path, src=f, size=content.size(digest))
            return path

        for item in items:
            image = item.image
            config_path = blob(image.id)
            layer_paths = [blob(layer.blob_digest) for layer in image.layers]
            manifest = _manifest(content, image)
            manifest_digest = sha256_bytes(manifest)
            blob(manifest_digest, manifest)
            desc = {"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest)}
            familiar = [parse_normalized(r).familiar() for r in item.refs]
            for ref, short in zip(item.refs, familiar, strict=True):
                tag = parse_normalized(ref).tag or "latest"
                index.append({**desc, "annotations": {"io.containerd.image.name": ref,
                                                      "org.opencontainers.image.ref.name": tag}})
                repo, _, _ = short.rpartition(":")
                if image.layers:
                    repositories.setdefault(repo, {})[tag] = image.layers[-1].chain_id[7:]
            if not item.refs:
                index.append(desc)
            docker_manifest.append({"Config": config_path, "RepoTags": familiar or None,
                                    "Layers": layer_paths})

        _add(tf, "index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                           "manifests": index}).encode())
        _add(tf, "manifest.json", json.dumps(docker_manifest).encode())
        _add(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            _add(tf, "repositories", json.dumps(repositories).encode())


async def save(svc: Images, items: Sequence[SaveItem]) -> AsyncIterator[bytes]:
    async with svc.leases.lease() as lease:
        for item in items:  # keep what we stream from being collected mid-way
            lease.digests.add(item.image.id)
            lease.digests.update(layer.blob_digest for layer in item.image.layers)
        async for chunk in produce(lambda out: write_archive(svc.content, items, out)):
            yield chunk
    for item in items:
        svc.image_event(item.image, "save")
