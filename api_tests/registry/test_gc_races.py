"""The garbage collector against work that reuses what it finds (issue 14, item 8).

A pull (or load) looks for layers it already has, and reuses them. If an `rmi`
of the image that had them, and the collection it triggers, land between the
look and the moment the new image is recorded, the new image points at a blob
or snapshot that is gone. The daemon protects first and looks after
(engine/leases.py), so whatever the interleaving, every image it reports is
whole: it runs, and it saves.

The interleavings come from racing the real commands, `docker rmi` and
`docker image prune` / `docker system prune` started at staggered points of a
`docker pull` or `docker load` of an image sharing layers with the removed one,
for a bounded number of rounds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .fixtures import Registry

Docker = Callable[..., Any]

ROUNDS = 40          # per scenario
STAGGER = 0.005      # seconds between the start points of the removal, round after round


SHARED = 40          # layers p and q share: the more, the longer a look at them takes


@dataclass
class Images:
    p: str            # on the registry: SHARED layers + one with /p
    q: str            # local only: SHARED layers + one with /q (from q_tar)
    q_tar: Path
    copy_of_p: str    # a local name for p's image


def _tar(files: dict[str, bytes], base: Path | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        if base is not None:
            with tarfile.open(base) as src:
                for member in src:
                    tf.addfile(member, src.extractfile(member) if member.isreg() else None)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _archive(path: Path, tag: str, layers: list[bytes]) -> Path:
    """A docker-save archive of an image made of these layer tars."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    with tarfile.open(path, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for i, layer in enumerate(layers):
            add(f"{i}.tar", layer)
        add("config.json", config)
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": [tag],
                                          "Layers": [f"{i}.tar" for i in range(len(layers))]}
                                         ]).encode())
    return path


@pytest.fixture
def images(docker: Docker, plain_registry: Registry, busybox_tar: Path, tmp_path: Path,
           unique_name: Callable[..., str]) -> Iterator[Images]:
    """p and q share SHARED layers that nothing else in the daemon has: busybox with a
    random file, then one small file per layer."""
    shared = [_tar({"base-noise": os.urandom(64 << 10)}, base=busybox_tar)]
    shared += [_tar({f"layer-{i}": os.urandom(1024)}) for i in range(1, SHARED)]
    p = f"{plain_registry.host}/gc/{unique_name('p')}:latest"
    q = f"{unique_name('q')}:latest"
    docker("load", "-i", _archive(tmp_path / "p.tar", p, shared + [_tar({"p": b"p\n"})]))
    docker("push", p)
    docker("rmi", p)
    q_tar = _archive(tmp_path / "q.tar", q, shared + [_tar({"q": b"q\n"})])
    made = Images(p, q, q_tar, f"{unique_name('copy')}:latest")
    yield made
    docker("rmi", "-f", p, q, made.copy_of_p, check=False)


def _race(daemon: Any, main: list[str], removal: list[list[str]], delay: float
          ) -> subprocess.CompletedProcess[str]:
    """Run `docker main...` while, `delay` seconds after it starts, the removal commands
    run one after the other; returns the main command's result."""
    env = daemon.cli_env()

    def remove() -> None:
        time.sleep(delay)
        for argv in removal:
            subprocess.run(["docker", *argv], env=env, capture_output=True, timeout=120)

    remover = threading.Thread(target=remove)
    proc = subprocess.Popen(["docker", *main], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    remover.start()
    try:
        out, err = proc.communicate(timeout=180)
    finally:
        remover.join(180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _whole(docker: Docker, ref: str, marker: str, tmp_path: Path, round_: int) -> None:
    """The image's layers are all there: a container of it reads its top layer's file
    (through every snapshot below) and the image saves (every blob)."""
    ran = docker("run", "--rm", "--network", "none", ref, "cat", f"/{marker}", check=False)
    assert ran.stdout == f"{marker}\n", f"round {round_}: {ref}: cannot run: {ran.stderr}"
    saved = docker("save", "-o", tmp_path / "saved.tar", ref, check=False)
    assert saved.returncode == 0, f"round {round_}: {ref}: cannot save: {saved.stderr}"


def _prune(round_: int) -> list[str]:
    return ["system", "prune", "-f"] if round_ % 3 == 2 else ["image", "prune", "-f"]


def test_pull_sharing_a_base_with_an_image_being_removed(docker: Docker, daemon: Any,
                                                         images: Images, tmp_path: Path) -> None:
    """Pull p while q (same base layer, loaded) is removed and pruned: p's base is reused."""
    for n in range(ROUNDS):
        docker("load", "-i", images.q_tar)
        pulled = _race(daemon, ["pull", images.p], [["rmi", images.q], _prune(n)], n * STAGGER)
        assert pulled.returncode == 0, f"round {n}: {pulled.stderr}"
        _whole(docker, images.p, "p", tmp_path, n)
        docker("rmi", images.p)
        docker("rmi", images.q, check=False)


def test_pull_of_an_image_present_under_a_name_being_removed(docker: Docker, daemon: Any,
                                                             images: Images,
                                                             tmp_path: Path) -> None:
    """Pull p while its own image, under another name only, is removed and pruned: the
    pull finds the image and reuses its layers whole."""
    docker("pull", images.p)
    for n in range(ROUNDS):
        docker("tag", images.p, images.copy_of_p)
        docker("rmi", images.p)
        pulled = _race(daemon, ["pull", images.p], [["rmi", images.copy_of_p], _prune(n)],
                       n * STAGGER)
        assert pulled.returncode == 0, f"round {n}: {pulled.stderr}"
        _whole(docker, images.p, "p", tmp_path, n)
    docker("rmi", images.p)


def test_load_sharing_a_base_with_an_image_being_removed(docker: Docker, daemon: Any,
                                                         images: Images, tmp_path: Path) -> None:
    """Load q while p (same base layer, pulled) is removed and pruned: q's base snapshot is
    reused by the load."""
    for n in range(ROUNDS):
        docker("pull", images.p)
        loaded = _race(daemon, ["load", "-i", str(images.q_tar)],
                       [["rmi", images.p], _prune(n)], n * STAGGER)
        assert loaded.returncode == 0, f"round {n}: {loaded.stderr}"
        _whole(docker, images.q, "q", tmp_path, n)
        docker("rmi", images.q)
        docker("rmi", images.p, check=False)
