"""Builders of small tar archives for the image tests, well-formed or deliberately hostile.

Everything is built in memory with the standard library, deterministically (mtime 0,
uid/gid 0), so two calls with the same arguments give the same bytes and the same
digests:

  rootfs(marker)                 a tiny root filesystem tar whose layer is unique to marker
  tar_bytes(entries)             a tar from reg()/dir_()/sym()/hard() entries
  docker_archive(layers, ...)    a `docker save`-style archive (manifest.json + config)
  oci_archive(layers, ...)       an OCI image layout (index.json + blobs/sha256)
  sha256(data)                   "sha256:<hex>"
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import platform
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import zstandard

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}.get(platform.machine(), platform.machine())

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- tar entries -----------------------------------------------------------------------------


@dataclass
class Entry:
    info: tarfile.TarInfo
    data: bytes = b""


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def reg(name: str, data: bytes = b"", mode: int = 0o644, **pax: str) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    info.pax_headers = dict(pax)
    return Entry(info, data)


def dir_(name: str, mode: int = 0o755) -> Entry:
    return Entry(_info(name, tarfile.DIRTYPE, mode))


def sym(name: str, target: str) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return Entry(info)


def hard(name: str, target: str) -> Entry:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return Entry(info)


def tar_bytes(entries: Iterable[Entry], *, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of the entries, names taken literally (tarfile does not clean them)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for e in entries:
            tf.addfile(e.info, io.BytesIO(e.data) if e.info.isreg() else None)
    return buf.getvalue()


def rootfs(marker: str, *, extra: Sequence[Entry] = ()) -> bytes:
    """A tiny root filesystem: etc/, etc/marker (content unique to marker), tmp/."""
    data = f"layer for {marker}\n".encode()
    return tar_bytes([dir_("etc"), reg("etc/marker", data), dir_("tmp", 0o1777), *extra])


def marker_size(marker: str) -> int:
    """Bytes rootfs(marker) counts as the layer size (regular files + symlinks)."""
    return len(f"layer for {marker}\n".encode())


# --- compression -----------------------------------------------------------------------------


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def xz(data: bytes) -> bytes:
    return lzma.compress(data)


def bz(data: bytes) -> bytes:
    return bz2.compress(data)


def uncompressed(data: bytes) -> bytes:
    if data[:3] == b"\x1f\x8b\x08":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


# --- image archives --------------------------------------------------------------------------


def image_config(diff_ids: Sequence[str], *, config: dict[str, Any] | None = None,
                 history: list[dict[str, Any]] | None = None,
                 created: str = "2024-01-02T03:04:05Z", **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "architecture": GOARCH,
        "os": "linux",
        "created": created,
        "config": config if config is not None else {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    if history is not None:
        doc["history"] = history
    doc.update(extra)
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Archive:
    """An image archive and what a loader must make of it."""
    data: bytes
    config: bytes
    image_id: str                       # digest of the config
    diff_ids: list[str]
    members: dict[str, bytes] = field(default_factory=dict)


def _archive(members: Sequence[tuple[str, bytes] | Entry]) -> bytes:
    entries = []
    for m in members:
        entries.append(m if isinstance(m, Entry) else reg(m[0], m[1]))
    return tar_bytes(entries)


def docker_archive(layers: Sequence[bytes], repo_tags: Sequence[str] | None = None, *,
                   config: bytes | None = None, diff_ids: Sequence[str] | None = None,
                   manifest: Any = None, extra: Sequence[tuple[str, bytes] | Entry] = (),
                   config_kwargs: dict[str, Any] | None = None) -> Archive:
    """A Docker archive (the pre-25 `docker save` layout): <hex>.json config,
    <n>/layer.tar layers (as given, possibly compressed), manifest.json."""
    if diff_ids is None:
        diff_ids = [sha256(uncompressed(layer)) for layer in layers]
    if config is None:
        config = image_config(diff_ids, **(config_kwargs or {}))
    config_name = sha256(config)[7:] + ".json"
    layer_names = [f"{i:03d}/layer.tar" for i in range(len(layers))]
    if manifest is None:
        manifest = [{"Config": config_name, "RepoTags": list(repo_tags) if repo_tags else None,
                     "Layers": layer_names}]
    manifest_bytes = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    members: list[tuple[str, bytes] | Entry] = [(config_name, config)]
    members += list(zip(layer_names, layers, strict=True))
    members.append(("manifest.json", manifest_bytes))
    members += list(extra)
    return Archive(_archive(members), config, sha256(config), list(diff_ids))


def layer_media_type(layer: bytes) -> str:
    if layer[:3] == b"\x1f\x8b\x08":
        return OCI_LAYER + "+gzip"
    if layer[:4] == b"\x28\xb5\x2f\xfd":
        return OCI_LAYER + "+zstd"
    return OCI_LAYER


def oci_manifest(config: bytes, layers: Sequence[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": layer_media_type(b), "digest": sha256(b), "size": len(b)}
                   for b in layers],
    }, separators=(",", ":")).encode()


def oci_archive(layers: Sequence[bytes], ref_name: str | None = None, *,
                config: bytes | None = None, index: Any = None,
                blobs: Sequence[bytes] = (), omit: Sequence[str] = ()) -> Archive:
    """An OCI image layout as a tar: oci-layout, index.json, blobs/sha256/<hex>.
    `blobs` adds more blobs; `omit` leaves out the blobs with these digests."""
    diff_ids = [sha256(uncompressed(layer)) for layer in layers]
    if config is None:
        config = image_config(diff_ids)
    manifest = oci_manifest(config, layers)
    if index is None:
        desc: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": sha256(manifest),
                                "size": len(manifest)}
        if ref_name:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}
    index_bytes = index if isinstance(index, bytes) else json.dumps(index).encode()
    members: list[tuple[str, bytes] | Entry] = [
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index_bytes)]
    seen = set()
    for blob in [config, manifest, *layers, *blobs]:
        digest = sha256(blob)
        if digest in seen or digest in omit:
            continue
        seen.add(digest)
        members.append((f"blobs/sha256/{digest[7:]}", blob))
    return Archive(_archive(members), config, sha256(config), diff_ids)


def read_tar(data: bytes) -> dict[str, bytes]:
    """name -> content of the regular files of a tar (any compression tarfile knows)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf:
            if m.isreg():
                out[m.name] = tf.extractfile(m).read()  # type: ignore[union-attr]
    return out


# --- raw headers for archives tarfile will not write ------------------------------------------


def raw_header(name: str, size: int, typeflag: bytes = tarfile.REGTYPE) -> bytes:
    """One 512-byte ustar header with any declared size (base-256 past 8 GiB) and type."""
    info = tarfile.TarInfo(name)
    info.mtime = 0
    buf = bytearray(info.tobuf(format=tarfile.USTAR_FORMAT))
    if size < 8**11:
        buf[124:136] = b"%011o\0" % size
    else:
        buf[124:136] = b"\x80" + size.to_bytes(11, "big")
    buf[156:157] = typeflag
    buf[148:156] = b" " * 8
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)
