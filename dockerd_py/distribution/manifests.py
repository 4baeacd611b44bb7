"""Manifests and indexes: parsing, platform selection, building (pure, no I/O).

Docker schema 2 and OCI manifests name a config and layers by descriptor;
Docker manifest lists and OCI indexes name per-platform manifests. Schema 1
is refused with dockerd's message.
"""

from __future__ import annotations

import json
import platform as _platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..dockerfile.golang import go_quote
from ..engine.content.contract import sha256_bytes
from ..engine.images.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEXES,
    MANIFESTS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from ..engine.images.platform import ARCH, OS
from ..errors import InvalidParameter, NotFound

SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST, *SCHEMA1))

_GZIP_LAYERS = (DOCKER_LAYER_GZIP, DOCKER_FOREIGN_LAYER, OCI_LAYER_GZIP,
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
_LAYERS = _GZIP_LAYERS + (OCI_LAYER, OCI_LAYER_ZSTD,
                          "application/vnd.oci.image.layer.nondistributable.v1.tar",
                          "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
                          "application/vnd.docker.image.rootfs.diff.tar")


class ManifestError(InvalidParameter):
    status = 500  # a registry sent something we cannot use: not the client's fault


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm",
                 "armel": "arm", "i386": "386"}


def normalize(p: Platform) -> Platform:
    """containerd's platforms.Normalize: arch aliases, arm64 v8 and arm v7 defaults."""
    os_ = p.os.lower()
    arch = _ARCH_ALIASES.get(p.architecture.lower(), p.architecture.lower())
    variant = p.variant.lower()
    if p.architecture.lower() == "armhf":
        variant = variant or "v7"
    elif p.architecture.lower() == "armel":
        variant = variant or "v6"
    if arch == "arm64" and variant in ("8", "v8"):
        variant = ""
    if arch == "arm" and variant in ("", "7"):
        variant = "v7"
    if arch == "amd64" and variant == "v1":
        variant = ""
    return Platform(os_, arch, variant)


# containerd's platforms package: the names it knows, and what a component may hold.
_KNOWN_OS = frozenset({"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos",
                       "ios", "js", "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris",
                       "windows", "zos"})
_KNOWN_ARCH = frozenset({"386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be",
                         "ppc64", "ppc64le", "loong64", "mips", "mipsle", "mips64", "mips64le",
                         "mips64p32", "mips64p32le", "ppc", "riscv", "riscv64", "s390", "s390x",
                         "sparc", "sparc64", "wasm"})
_COMPONENT = re.compile(r"[A-Za-z0-9_-]+")


def parse_platform(text: str) -> Platform:
    """``os[/arch[/variant]]`` or a bare os or arch, as containerd's platforms.Parse reads
    `--platform`, with its errors."""
    parts = text.split("/")
    if len(parts) > 3:
        raise InvalidParameter(f"{go_quote(text)}: cannot parse platform specifier: "
                               "invalid argument")
    for part in parts:
        if not _COMPONENT.fullmatch(part):
            raise InvalidParameter(
                f"{go_quote(part)} is an invalid component of {go_quote(text)}: platform "
                'specifier component must match "^[A-Za-z0-9_-]+$": invalid argument')
    if len(parts) == 1:
        name = parts[0].lower()
        if name in _KNOWN_OS:
            return normalize(Platform(name, ARCH))
        arch = normalize(Platform(OS, name))
        if arch.architecture not in _KNOWN_ARCH:
            raise InvalidParameter(f"{go_quote(text)}: unknown operating system or "
                                   "architecture: invalid argument")
        return arch
    return normalize(Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else ""))


def host_platform() -> Platform:
    variant = "v7" if ARCH == "arm" else ""
    if ARCH == "arm" and _platform.machine().startswith("armv6"):
        variant = "v6"
    return Platform(OS, ARCH, variant)


def matches(want: Platform, have: Platform) -> bool:
    want, have = normalize(want), normalize(have)
    if want.os != have.os or want.architecture != have.architecture:
        return False
    return not want.variant or want.variant == have.variant


def _descriptor(doc: Any, what: str) -> Descriptor:
    if not isinstance(doc, dict):
        raise ManifestError(f"invalid manifest: {what} is not an object")
    media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        raise ManifestError(f"invalid manifest: {what} has an unsupported digest {digest!r}")
    if not isinstance(size, int) or size < 0:
        raise ManifestError(f"invalid manifest: {what} has an invalid size")
    plat = doc.get("platform")
    platform = None
    if isinstance(plat, dict):
        platform = Platform(str(plat.get("os") or ""), str(plat.get("architecture") or ""),
                            str(plat.get("variant") or ""))
    return Descriptor(media_type if isinstance(media_type, str) else "", digest, size, platform)


def schema1_error(ref: str) -> ManifestError:
    return ManifestError(
        "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been "
        f"removed. Suggest the author of {ref} to upgrade the image to the OCI Format or Docker "
        "Image manifest v2, schema 2. More information at "
        "https://docs.docker.com/go/deprecated-image-specs/")


def parse(body: bytes, content_type: str, ref: str) -> Manifest | Index:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ManifestError(f"invalid manifest for {ref}: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"invalid manifest for {ref}: not an object")
    media_type = doc.get("mediaType") or content_type
    if media_type in SCHEMA1 or doc.get("schemaVersion") == 1:
        raise schema1_error(ref)
    if media_type not in MANIFESTS + INDEXES:
        # OCI documents may omit mediaType: tell them apart by their fields.
        if "manifests" in doc:
            media_type = OCI_INDEX
        elif "config" in doc and "layers" in doc:
            media_type = OCI_MANIFEST
        else:
            raise ManifestError(f"unsupported manifest media type {media_type!r} for {ref}")
    if media_type in INDEXES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError(f"invalid index for {ref}: no manifests")
        return Index(media_type, tuple(_descriptor(m, "manifest") for m in items))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise ManifestError(f"invalid manifest for {ref}: no layers")
    parsed = tuple(_descriptor(layer, "layer") for layer in layers)
    for layer in parsed:
        if layer.media_type not in _LAYERS:
            raise ManifestError(f"unsupported layer media type {layer.media_type!r} in {ref}")
    return Manifest(media_type, _descriptor(doc.get("config"), "config"), parsed)


def select(index: Index, want: Platform) -> Descriptor:
    """The first manifest for the wanted platform (attestations and the like skipped)."""
    for desc in index.manifests:
        if desc.media_type in INDEXES or desc.platform is None:
            continue
        if desc.media_type and desc.media_type not in MANIFESTS:
            continue
        if matches(want, desc.platform):
            return desc
    raise NotFound(f"no matching manifest for {want} in the manifest list entries")


def config_platform(config: dict[str, Any]) -> Platform:
    return normalize(Platform(str(config.get("os") or ""), str(config.get("architecture") or ""),
                              str(config.get("variant") or "")))


def build(config: bytes, layers: Sequence[tuple[str, str, int]]) -> tuple[bytes, str]:
    """A manifest for a local image: (body, media type). Docker schema 2 when every
    layer is gzip (what dockerd pushes), OCI otherwise; Go's 3-space indent, as dockerd."""
    docker = all(media in _GZIP_LAYERS for media, _, _ in layers)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                   "size": len(config), "digest": sha256_bytes(config)},
        "layers": [{"mediaType": (DOCKER_LAYER_GZIP if docker else
                                  {DOCKER_LAYER_GZIP: OCI_LAYER_GZIP}.get(media, media)),
                    "size": size, "digest": digest} for media, digest, size in layers],
    }
    return json.dumps(doc, indent=3).encode(), media_type
