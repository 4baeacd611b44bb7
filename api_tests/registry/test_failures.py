"""Pulls that go wrong: a wrong blob, a registry killed mid-transfer, schema 1.

Each must fail with a clear error and leave the store as it was: no image, no
new blob, no new snapshot (the garbage collector runs before the error is
reported); a retry after the registry is back must succeed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .fixtures import Registry
from .relay import Relay

Docker = Callable[..., Any]


def random_layer_tar(path: Path, size: int) -> Path:
    """A root filesystem with one file of random (incompressible) bytes."""
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(os.urandom(size)))
        for name in ("bin", "tmp"):
            d = tarfile.TarInfo(name)
            d.type = tarfile.DIRTYPE
            d.mode = 0o755
            tf.addfile(d)
    return path


def store_state(daemon: Any) -> tuple[set[str], set[str], set[str]]:
    root = Path(daemon.data_root)
    blobs = set(os.listdir(root / "content" / "blobs" / "sha256"))
    ingest = set(os.listdir(root / "content" / "ingest"))
    snapshots = {n for n in os.listdir(root / "snapshots") if n.isdigit()}
    return blobs, ingest, snapshots


def assert_store_unchanged(daemon: Any, before: tuple[set[str], set[str], set[str]]) -> None:
    blobs, ingest, snapshots = store_state(daemon)
    assert blobs - before[0] == set(), "blobs left behind"
    assert ingest - before[1] == set(), "partial ingests left behind"
    assert snapshots - before[2] == set(), "snapshots left behind"


def layer_digests(registry_url: str, repo: str, tag: str) -> list[str]:
    accept = ("application/vnd.docker.distribution.manifest.v2+json, "
              "application/vnd.oci.image.manifest.v1+json")
    doc = requests.get(f"{registry_url}/v2/{repo}/manifests/{tag}", headers={"Accept": accept},
                       timeout=30).json()
    return [layer["digest"] for layer in doc["layers"]]


@pytest.fixture
def random_image(docker: Docker, tmp_path: Path, unique_name: Callable[..., str]
                 ) -> Iterator[Callable[[int], str]]:
    """make(size) -> a local one-layer image whose layer nothing else shares."""
    made: list[str] = []

    def make(size: int) -> str:
        name = f"{unique_name('rand')}:latest"
        tar = random_layer_tar(tmp_path / f"{len(made)}.tar", size)
        docker("import", tar, name)
        made.append(name)
        return name

    yield make
    if made:
        docker("rmi", "-f", *made, check=False)


def test_wrong_blob_fails_the_pull_and_leaves_nothing(docker: Docker, daemon: Any,
                                                      plain_registry: Registry,
                                                      random_image: Callable[[int], str],
                                                      unique_name: Callable[..., str]) -> None:
    local = random_image(1 << 20)
    repo = f"bad/{unique_name('corrupt')}"
    docker("tag", local, f"{plain_registry.host}/{repo}:latest")
    docker("push", f"{plain_registry.host}/{repo}:latest")
    docker("rmi", local, f"{plain_registry.host}/{repo}:latest")
    (digest,) = layer_digests(plain_registry.url, repo, "latest")
    size = int(requests.head(f"{plain_registry.url}/v2/{repo}/blobs/{digest}",
                             timeout=30).headers["Content-Length"])
    before = store_state(daemon)
    with Relay(plain_registry.url) as relay:
        relay.corrupt[digest] = os.urandom(size)  # right size, wrong bytes
        result = docker("pull", f"{relay.host}/{repo}:latest", check=False)
        assert result.returncode == 1
        assert f"filesystem layer verification failed for digest {digest}" in \
            result.stdout + result.stderr
        assert docker("image", "inspect", f"{relay.host}/{repo}:latest",
                      check=False).returncode == 1
        assert_store_unchanged(daemon, before)

        del relay.corrupt[digest]
        retry = docker("pull", f"{relay.host}/{repo}:latest")
        assert "Pull complete" in retry.stdout
        docker("rmi", f"{relay.host}/{repo}:latest")


def test_registry_killed_mid_transfer_then_retry(docker: Docker, daemon: Any,
                                                 registry_root: Path,
                                                 random_image: Callable[[int], str],
                                                 busybox_tar: Path,
                                                 unique_name: Callable[..., str]) -> None:
    registry = Registry(registry_root / unique_name("killed"))
    registry.start()
    try:
        local = random_image(48 << 20)
        image_id = docker("image", "inspect", "-f", "{{.Id}}", local).stdout.strip()
        repo = f"big/{unique_name('big')}"
        docker("tag", local, f"{registry.host}/{repo}:latest")
        docker("push", f"{registry.host}/{repo}:latest")
        docker("rmi", local, f"{registry.host}/{repo}:latest")
        before = store_state(daemon)
        with Relay(registry.url) as relay:
            relay.stall_after = 1 << 20
            pull = subprocess.Popen(["docker", "pull", f"{relay.host}/{repo}:latest"],
                                    env=daemon.cli_env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                assert relay.stalled.wait(120), "the pull never reached the layer"
                registry.kill()
                relay.release.set()
                out, err = pull.communicate(timeout=120)
            finally:
                if pull.poll() is None:
                    pull.kill()
                    pull.wait()
            assert pull.returncode == 1, out + err
            assert "Downloading" in out or "Pulling fs layer" in out
            assert "unexpected EOF" in err, out + err
            assert docker("image", "inspect", f"{relay.host}/{repo}:latest",
                          check=False).returncode == 1
            assert_store_unchanged(daemon, before)

            registry.start()
            relay.stall_after = None
            again = docker("pull", f"{relay.host}/{repo}:latest")
            assert "Pull complete" in again.stdout
            assert docker("image", "inspect", "-f", "{{.Id}}",
                          f"{relay.host}/{repo}:latest").stdout.strip() == image_id
            docker("rmi", f"{relay.host}/{repo}:latest")
    finally:
        registry.stop()


def test_schema1_is_refused_with_dockers_message(docker: Docker, plain_registry: Registry,
                                                 unique_name: Callable[..., str]) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "x/old", "tag": "v1",
                          "architecture": "amd64", "fsLayers": [], "history": []}).encode()
    with Relay(plain_registry.url) as relay:
        relay.manifests["v1"] = (schema1,
                                 "application/vnd.docker.distribution.manifest.v1+prettyjws")
        result = docker("pull", f"{relay.host}/x/{unique_name('old')}:v1", check=False)
    assert result.returncode == 1
    assert "Docker Image manifest version 2, schema 1 support has been removed" in result.stderr


def test_concurrent_pulls_of_one_image(docker: Docker, daemon: Any, plain_registry: Registry,
                                       random_image: Callable[[int], str],
                                       unique_name: Callable[..., str]) -> None:
    """Two pulls racing over the same new layer: both succeed, one copy is kept."""
    local = random_image(8 << 20)
    image_id = docker("image", "inspect", "-f", "{{.Id}}", local).stdout.strip()
    remote = f"{plain_registry.host}/race/{unique_name('race')}:latest"
    docker("tag", local, remote)
    docker("push", remote)
    docker("rmi", local, remote)
    before = store_state(daemon)
    pulls = [subprocess.Popen(["docker", "pull", remote], env=daemon.cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for p in pulls:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, out + err
    assert docker("image", "inspect", "-f", "{{.Id}}", remote).stdout.strip() == image_id
    blobs, _, snapshots = store_state(daemon)
    # config, manifest and layer blobs; one snapshot for the one layer
    assert len(blobs - before[0]) == 3 and len(snapshots - before[2]) == 1
    docker("rmi", remote)
