"""Build docker-archive tars (what `docker save` writes and `docker load` reads) with tarfile.

Layout, as Docker 20.10 writes it: `<layer-hex>/layer.tar` (uncompressed),
`<config-hex>.json`, `manifest.json` and `repositories`. The content is
deterministic (seeded pseudo-random bytes, fixed mtimes and owners), so every
run - and both daemons - load byte-identical archives with the same image IDs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import random
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

MTIME = 1704067200  # 2024-01-01T00:00:00Z
CHUNK = 1 << 20

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}


class RandomReader:
    """`size` incompressible bytes from a seeded PRNG, as a readable file object."""

    def __init__(self, size: int, seed: int) -> None:
        self._left = size
        self._rng = random.Random(seed)

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        self._left -= n
        return self._rng.randbytes(n)


@dataclass
class File:
    name: str
    data: bytes = b""
    random_size: int = 0        # > 0: that many seeded random bytes instead of data
    seed: int = 0
    mode: int = 0o644


@dataclass
class Image:
    tag: str                    # e.g. "bench/big:latest"
    files: list[File]
    label: str = ""


@dataclass
class Built:
    tag: str
    id: str                     # sha256:<config digest> - the image ID on both daemons
    layer_size: int


def _write_layer(files: Iterable[File], out: io.BufferedWriter) -> None:
    dirs: set[str] = set()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for f in files:
            parts = f.name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d + "/")
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
                    tf.addfile(info)
            info = tarfile.TarInfo(f.name)
            info.mode, info.mtime = f.mode, MTIME
            if f.random_size:
                info.size = f.random_size
                tf.addfile(info, RandomReader(f.random_size, f.seed))  # type: ignore[arg-type]
            else:
                info.size = len(f.data)
                tf.addfile(info, io.BytesIO(f.data))


def _sha256_file(path: str) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, MTIME
    tf.addfile(info, io.BytesIO(data))


def build(path: str, images: list[Image]) -> list[Built]:
    """Write a docker-archive holding `images` (one layer each) to path."""
    arch = _ARCH.get(platform.machine(), platform.machine())
    built: list[Built] = []
    manifest, repositories = [], {}
    tmpdir = os.path.dirname(os.path.abspath(path))
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as outer:
        for n, image in enumerate(images):
            with tempfile.NamedTemporaryFile(dir=tmpdir, prefix=".layer-", delete=True) as tmp:
                with open(tmp.name, "wb") as lf:
                    _write_layer(image.files, lf)  # type: ignore[arg-type]
                layer_hex, layer_size = _sha256_file(tmp.name)
                created = f"2024-01-01T00:00:{n:02d}Z"
                config = {
                    "architecture": arch, "os": "linux", "created": created,
                    "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/bin:/bin"],
                               "Labels": {"bench": image.label or image.tag}},
                    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hex}"]},
                    "history": [{"created": created, "created_by": "bench/archives.py"}],
                }
                config_bytes = json.dumps(config, separators=(",", ":")).encode()
                config_hex = hashlib.sha256(config_bytes).hexdigest()
                info = tarfile.TarInfo(f"{layer_hex}/")
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
                outer.addfile(info)
                info = tarfile.TarInfo(f"{layer_hex}/layer.tar")
                info.size, info.mode, info.mtime = layer_size, 0o644, MTIME
                with open(tmp.name, "rb") as lf:
                    outer.addfile(info, lf)
                _add_bytes(outer, f"{config_hex}.json", config_bytes)
            repo, _, tag = image.tag.rpartition(":")
            manifest.append({"Config": f"{config_hex}.json", "RepoTags": [image.tag],
                             "Layers": [f"{layer_hex}/layer.tar"]})
            repositories.setdefault(repo, {})[tag] = layer_hex
            built.append(Built(image.tag, f"sha256:{config_hex}", layer_size))
        _add_bytes(outer, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(outer, "repositories", json.dumps(repositories).encode())
    return built


def big_image(tag: str, size: int) -> Image:
    """One layer: `size` random bytes in one file, plus a few small files."""
    return Image(tag, [
        File("data/random.bin", random_size=size, seed=1),
        File("etc/bench-release", b"NAME=dockerd-py-bench\nVERSION=1\n"),
        File("etc/motd", b"benchmark image: one big incompressible file\n"),
        File("usr/share/doc/bench/README", b"See bench/run.py in dockerd-py.\n"),
        File("bin/hello", b"#!/bin/sh\necho hello\n", mode=0o755),
    ], label="big")


def small_images(repo: str, count: int) -> list[Image]:
    return [Image(f"{repo}:{i}", [
        File("etc/bench-small", f"small image {i}\n".encode()),
        File("data/blob.bin", random_size=4096, seed=100 + i),
    ], label=f"small-{i}") for i in range(count)]
