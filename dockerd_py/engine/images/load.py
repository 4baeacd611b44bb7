"""`docker load`: Docker archives (manifest.json) and OCI image layouts (index.json).

The archive is read once, as a stream: every regular file goes straight into
the content store under its digest, so layers are never copied twice and
members may come in any order. Paths named by the archive's own manifests are
only ever looked up in that in-memory table, never used on the filesystem.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from ...errors import InvalidParameter
from ..aio import ThreadReader
from ..archive import ArchiveError, decompressed
from ..archive.format import TarFormatError
from ..archive.stream import TarStream, members
from ..content.contract import Store
from ..leases import protect_digest
from ..reference import InvalidReference, parse_normalized, with_default_tag
from .contract import Images
from .mediatypes import INDEXES, MANIFESTS, layer_media_type
from .platform import ARCH, OS
from .unpack import LayerBlob, unpack

_MAX_JSON = 16 << 20  # manifests and configs are small; refuse absurd ones


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageToLoad:
    config_digest: str
    layers: list[LayerBlob]
    refs: list[str]            # normalized references to tag
    manifest_digest: str = ""


def _clean(name: str) -> str | None:
    path = posixpath.normpath("/" + name).lstrip("/")
    return path or None


def read_archive(content: Store, fileobj: Any) -> dict[str, Blob]:
    """Ingest every regular file of the archive; returns path -> blob."""
    files: dict[str, Blob] = {}
    links: dict[str, str] = {}
    try:
        # The one bounded tar reader (archive/stream.py): headers cannot balloon.
        stream = TarStream(decompressed(fileobj), hashing=False)
        for tf, member in members(stream):
            name = _clean(member.name)
            if name is None:
                continue
            if member.isreg():
                with content.writer() as w:
                    if member.sparse is not None and (src := tf.extractfile(member)):
                        w.copy_from(cast(BinaryIO, src))
                    else:
                        for view in stream.data(member.size):
                            w.write(view)
                    files[name] = Blob(w.commit(sync_name=False), w.size)
            elif member.issym():
                links[name] = _clean(posixpath.join(posixpath.dirname(name),
                                                    member.linkname)) or ""
            elif member.islnk():
                links[name] = _clean(member.linkname) or ""
    except TarFormatError as e:
        raise InvalidParameter(f"invalid tar archive: {e.detail}") from None
    except (tarfile.TarError, EOFError, OSError, ArchiveError) as e:
        raise InvalidParameter(f"invalid tar archive: {e}") from None
    content.sync_names()  # one fsync for every blob of the archive
    for name, target in links.items():
        for _ in range(8):  # links to links, bounded
            if target in links:
                target = links[target]
        if target in files:
            files[name] = files[target]
    return files


def _json(content: Store, blob: Blob | None, what: str) -> Any:
    if blob is None:
        raise InvalidParameter(f"invalid archive: {what} not found")
    if blob.size > _MAX_JSON:
        raise InvalidParameter(f"invalid archive: {what} is too large")
    try:
        return json.loads(content.read_bytes(blob.digest))
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidParameter(f"invalid archive: {what}: {e}") from None


def _normalized(name: str) -> str | None:
    try:
        return with_default_tag(parse_normalized(name)).string()
    except InvalidReference:
        return None


# The archive's JSON documents are typed before use: a field of the wrong JSON type is
# a 400 naming it, never a Python error on a list where a dict was expected.

def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"invalid archive: {what} is not a JSON object")
    return value


def _array(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameter(f"invalid archive: {what} is not a JSON array")
    return value


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidParameter(f"invalid archive: {what} is not a string")
    return value


def docker_archive(content: Store, files: dict[str, Blob]) -> list[ImageToLoad]:
    manifest = _json(content, files.get("manifest.json"), "manifest.json")
    if not isinstance(manifest, list):
        raise InvalidParameter("invalid archive: manifest.json is not a list")
    images = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidParameter("invalid archive: bad manifest.json entry")
        config = files.get(_clean(entry["Config"]) or "")
        if config is None:
            raise InvalidParameter(f"invalid archive: {entry['Config']} not found")
        layers = []
        for item in _array(entry.get("Layers"), "manifest.json Layers"):
            path = _string(item, "a manifest.json layer")
            blob = files.get(_clean(path) or "")
            if blob is None:
                raise InvalidParameter(f"invalid archive: layer {path} not found")
            layers.append(LayerBlob(blob.digest, _media_type(content, blob.digest), blob.size))
        refs = []
        for item in _array(entry.get("RepoTags"), "manifest.json RepoTags"):
            tag = _string(item, "a manifest.json tag")
            ref = _normalized(tag)
            if ref is None:
                raise InvalidParameter(f"invalid reference format: {tag}")
            refs.append(ref)
        images.append(ImageToLoad(config.digest, layers, refs))
    return images


def _media_type(content: Store, digest: str) -> str:
    with content.open(digest) as f:
        return layer_media_type(f.read(8))


def oci_layout(content: Store, files: dict[str, Blob]) -> list[ImageToLoad]:
    index = _json(content, files.get("index.json"), "index.json")
    images: list[ImageToLoad] = []
    for desc in _descriptors(index):
        images.append(_from_manifest(content, desc, depth=0))
    return images


def _descriptors(index: Any) -> list[dict[str, Any]]:
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidParameter("invalid archive: index.json has no manifests")
    return [d for d in index["manifests"] if isinstance(d, dict)]


def _present(content: Store, digest: Any) -> bool:
    """An OCI layout may name a blob the store already has rather than carry it:
    into the lease first, then look (leases.py), so a collection keeps it."""
    if not isinstance(digest, str):
        return False
    protect_digest(digest)
    return content.exists(digest)


def _blob_json(content: Store, desc: dict[str, Any], what: str) -> dict[str, Any]:
    digest = desc.get("digest")
    if not isinstance(digest, str) or not _present(content, digest):
        raise InvalidParameter(f"invalid archive: {what} {digest} not found")
    doc = _json(content, Blob(digest, content.size(digest)), f"{what} {digest}")
    return _object(doc, f"{what} {digest}")


def _matches_platform(desc: dict[str, Any]) -> bool:
    p = _object(desc.get("platform") or {}, "a descriptor's platform")
    os_name = _string(p.get("os", OS), "a platform's os")
    arch = _string(p.get("architecture", ARCH), "a platform's architecture")
    return os_name == OS and arch == ARCH


def _from_manifest(content: Store, desc: dict[str, Any], depth: int) -> ImageToLoad:
    doc = _blob_json(content, desc, "manifest")
    media_type = (_string(desc.get("mediaType"), "a descriptor's mediaType")
                  or _string(doc.get("mediaType"), "a manifest's mediaType"))
    if media_type in INDEXES or "manifests" in doc:
        if depth > 2:
            raise InvalidParameter("invalid archive: index nesting too deep")
        children = _descriptors(doc)
        chosen = next((d for d in children if _matches_platform(d)), None)
        if chosen is None:
            raise InvalidParameter(f"no image for platform {OS}/{ARCH} in the archive")
        image = _from_manifest(content, chosen, depth + 1)
        return ImageToLoad(image.config_digest, image.layers, _names(desc), image.manifest_digest)
    if media_type not in MANIFESTS and "config" not in doc:
        raise InvalidParameter(f"invalid archive: unsupported media type {media_type}")
    config = _object(doc.get("config") or {}, "a manifest's config")
    if not _present(content, config.get("digest")):
        raise InvalidParameter("invalid archive: image config not found")
    layers = []
    for layer in _array(doc.get("layers"), "a manifest's layers"):
        digest = layer.get("digest") if isinstance(layer, dict) else None
        if not isinstance(digest, str) or not _present(content, digest):
            raise InvalidParameter(f"invalid archive: layer {digest} not found")
        layers.append(LayerBlob(digest, _media_type(content, digest), content.size(digest)))
    return ImageToLoad(config["digest"], layers, _names(desc), desc["digest"])


def _names(desc: dict[str, Any]) -> list[str]:
    notes = _object(desc.get("annotations") or {}, "a descriptor's annotations")
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        name = notes.get(key)
        # A bare tag ("latest") in ref.name names no repository: load untagged.
        if isinstance(name, str) and ("/" in name or ":" in name):
            ref = _normalized(name)
            if ref is not None:
                return [ref]
    return []


async def load(svc: Images, chunks: AsyncIterator[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Load every image of the archive; yields JSON progress messages."""
    loop = asyncio.get_running_loop()
    async with svc.leases.lease():
        reader = ThreadReader(chunks, loop)
        files = await asyncio.to_thread(read_archive, svc.content, reader)
        if "manifest.json" in files:
            images = await asyncio.to_thread(docker_archive, svc.content, files)
        elif "index.json" in files:
            images = await asyncio.to_thread(oci_layout, svc.content, files)
        else:
            raise InvalidParameter("invalid archive: no manifest.json or index.json "
                                   "(is this a docker save archive or an OCI layout?)")
        for item in images:
            if svc.content.size(item.config_digest) > _MAX_JSON:
                raise InvalidParameter("invalid archive: image config is too large")
            config = await asyncio.to_thread(svc.content.read_bytes, item.config_digest)
            diff_ids = checked_diff_ids(config)
            for blob in item.layers:
                yield {"status": "Loading layer", "id": blob.digest[7:19],
                       "progressDetail": {"current": blob.size, "total": blob.size}}
            layers = await unpack(svc.snapshots, svc.content, item.layers, diff_ids)
            image, moved = await svc.record(config, layers, tags=item.refs,
                                            manifest_digest=item.manifest_digest)
            for ref, previous in moved:
                if previous:
                    familiar = parse_normalized(ref).familiar()
                    yield {"stream": f"The image {familiar} already exists, renaming the old "
                                     f"one with ID {previous} to empty string\n"}
            svc.image_event(image, "load")
            if item.refs:
                for ref in item.refs:
                    yield {"stream": f"Loaded image: {parse_normalized(ref).familiar()}\n"}
            else:
                yield {"stream": f"Loaded image ID: {image.id}\n"}
    svc.schedule_gc()  # archive members no image references (legacy json files) go


def checked_diff_ids(config: bytes) -> list[str]:
    try:
        doc = json.loads(config)
        diff_ids = doc["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParameter("invalid image config: missing rootfs.diff_ids") from None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidParameter("invalid image config: bad rootfs.diff_ids")
    _check_types(doc)
    return diff_ids


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", re.ASCII)


def _is_strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_strslice(v: Any) -> bool:
    return isinstance(v, str) or _is_strs(v)


def _is_map(v: Any, values: type) -> bool:
    return isinstance(v, dict) and all(isinstance(x, values) for x in v.values())


_RUNTIME_TYPES: dict[str, Any] = {
    "User": lambda v: isinstance(v, str), "WorkingDir": lambda v: isinstance(v, str),
    "StopSignal": lambda v: isinstance(v, str), "ArgsEscaped": lambda v: isinstance(v, bool),
    # Cmd, Entrypoint and Shell are Docker "strslice"s: a lone string means a one-item list.
    "Env": _is_strs, "Cmd": _is_strslice, "Entrypoint": _is_strslice, "Shell": _is_strslice,
    "OnBuild": _is_strs, "Labels": lambda v: _is_map(v, str),
    "ExposedPorts": lambda v: _is_map(v, dict), "Volumes": lambda v: _is_map(v, dict),
    "Healthcheck": lambda v: isinstance(v, dict),
}


def _check_types(doc: dict[str, Any]) -> None:
    """Refuse what dockerd's typed decoding of the config refuses (a number where a string
    goes, history that is not a list of objects, ...), before anything is recorded: the
    rest of the daemon relies on these types. null stands for "unset", as in Go."""
    def bad(field: str) -> InvalidParameter:
        return InvalidParameter(f"invalid image config: {field} has the wrong type")

    for key in ("architecture", "os", "variant", "author", "comment", "docker_version",
                "container", "parent", "os.version"):
        if doc.get(key) is not None and not isinstance(doc[key], str):
            raise bad(key)
    if doc.get("created") is not None and not (isinstance(doc["created"], str)
                                               and _TIME.fullmatch(doc["created"])):
        raise bad("created")
    for key in ("config", "container_config"):
        cfg = doc.get(key)
        if cfg is None:
            continue
        if not isinstance(cfg, dict):
            raise bad(key)
        for field, ok in _RUNTIME_TYPES.items():
            if cfg.get(field) is not None and not ok(cfg[field]):
                raise bad(f"{key}.{field}")
    history = doc.get("history")
    if history is None:
        return
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise bad("history")
    for h in history:
        for field in ("created_by", "author", "comment"):
            if h.get(field) is not None and not isinstance(h[field], str):
                raise bad(f"history.{field}")
        if h.get("created") is not None and not (isinstance(h["created"], str)
                                                 and _TIME.fullmatch(h["created"])):
            raise bad("history.created")
        if h.get("empty_layer") is not None and not isinstance(h["empty_layer"], bool):
            raise bad("history.empty_layer")
