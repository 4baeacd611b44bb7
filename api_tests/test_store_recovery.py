"""The store on disk: deduplication, garbage collection, crash recovery, restarts.

DESIGN.md (Storage): content is deduplicated by digest on disk and unpacked;
removal is garbage-collected; a crash at any moment leaves a store the next
start can use (no half-written blob under its final name, no record pointing
at missing content). These tests run their own daemon (the harness's Daemon
class on a private directory), so killing it disturbs no other test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DOCKER_CLI, Daemon

BIG_TAG = "big:latest"
BIG_MB = 150
MB = 1 << 20


# --------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def store_daemon() -> Iterator[Daemon]:
    tmp = Path(tempfile.mkdtemp(prefix="dps-", dir="/tmp"))
    d = Daemon(tmp)
    d.start()
    yield d
    d.stop()
    if not os.environ.get("DPY_KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)


def cli(d: Daemon, *args: Any, input: bytes | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    __tracebackhide__ = True
    raw = subprocess.run([DOCKER_CLI, *map(str, args)], input=input, capture_output=True,
                         env=d.cli_env(), timeout=timeout)
    r = subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(errors="replace"),
                                    raw.stderr.decode(errors="replace"))
    if check and r.returncode != 0:
        raise AssertionError(f"docker {args} exited {r.returncode}\n{r.stdout}\n{r.stderr}\n"
                             f"--- daemon log ---\n{d.log_tail()}")
    return r


def query(d: Daemon, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A read-only look at metadata.db (WAL: sees what the daemon committed)."""
    conn = sqlite3.connect(f"file:{d.data_root / 'metadata.db'}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def blob_files(d: Daemon) -> set[str]:
    return {"sha256:" + n for n in os.listdir(d.data_root / "content" / "blobs" / "sha256")}


def blob_path(d: Daemon, digest: str) -> Path:
    return d.data_root / "content" / "blobs" / "sha256" / digest[7:]


def snapshot_entries(d: Daemon) -> set[str]:
    return set(os.listdir(d.data_root / "snapshots"))


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[0])


def images(d: Daemon) -> dict[str, str]:
    """'repo:tag' (or '<none>:<none>@id') -> full image ID, from `docker images -a`."""
    out = cli(d, "images", "-a", "--no-trunc", "--format",
              "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    result = {}
    for line in out.splitlines():
        ref, image_id = line.split()
        result[ref if ref != "<none>:<none>" else f"{ref}@{image_id}"] = image_id
    return result


def assert_store_consistent(d: Daemon) -> None:
    """What any start must leave: no partial ingest, no active snapshot (no containers
    exist here), directories exactly for the rows, every referenced blob present,
    no blob that nothing references."""
    __tracebackhide__ = True
    ingest = os.listdir(d.data_root / "content" / "ingest")
    assert ingest == [], f"partial writes left in content/ingest: {ingest}"

    rows = query(d, "SELECT id, name, kind, parent FROM snapshots")
    assert [r for r in rows if r[2] != "committed"] == [], "active snapshots survived"
    entries = snapshot_entries(d)
    assert all(e.isdigit() for e in entries), f"staging/orphan entries: {sorted(entries)}"
    assert {int(e) for e in entries} == {r[0] for r in rows}, (sorted(entries), rows)
    for r in rows:
        assert (d.data_root / "snapshots" / str(r[0]) / "fs").is_dir()
    names = {r[1] for r in rows}
    assert all(not r[3] or r[3] in names for r in rows), "a snapshot's parent is missing"

    referenced = {r[0] for r in query(d, "SELECT id FROM images")}
    referenced |= {r[0] for r in query(d, "SELECT manifest_digest FROM images") if r[0]}
    referenced |= {r[0] for r in query(d, "SELECT blob_digest FROM image_layers")}
    on_disk = blob_files(d)
    assert referenced <= on_disk, f"records point at missing blobs: {referenced - on_disk}"
    assert on_disk <= referenced, f"unreferenced blobs left: {on_disk - referenced}"
    for (top,) in query(d, "SELECT top_chain FROM images WHERE top_chain != ''"):
        assert top in names, f"an image's top snapshot {top} is missing"
    for (image_id, config) in query(d, "SELECT id, config FROM images"):
        stored = blob_path(d, image_id).read_bytes()
        assert json.loads(stored) == json.loads(config), f"config of {image_id} differs"
    # every blob under its final name is complete: its content hashes to its name
    for digest in on_disk:
        h = hashlib.sha256()
        with open(blob_path(d, digest), "rb") as f:
            while chunk := f.read(4 * MB):
                h.update(chunk)
        assert "sha256:" + h.hexdigest() == digest, f"blob {digest} is corrupt"


# --------------------------------------------------------------------------- dedupe and GC

def _import(d: Daemon, tar: Path, tag: str, change: str) -> str:
    out = cli(d, "import", "-c", change, tar, tag).stdout.strip().splitlines()[-1]
    assert out.startswith("sha256:")
    return out


def _layers(d: Daemon, ref: str) -> list[str]:
    return json.loads(cli(d, "image", "inspect", "--format", "{{json .RootFS.Layers}}",
                          ref).stdout)


def test_shared_layer_stored_once_and_collected(store_daemon: Daemon, busybox_tar: Path) -> None:
    d = store_daemon
    a = _import(d, busybox_tar, "dedupe:a", "LABEL variant=a")
    [diff_id] = _layers(d, "dedupe:a")
    layer_blobs = [r[0] for r in query(d, "SELECT blob_digest FROM image_layers WHERE image_id=?",
                                       a)]
    assert len(layer_blobs) == 1
    layer_blob = layer_blobs[0]
    layer_size = blob_path(d, layer_blob).stat().st_size
    assert layer_size > 1 * MB  # the busybox rootfs; makes the du comparison meaningful
    [(snap_id,)] = query(d, "SELECT id FROM snapshots WHERE name=?", diff_id)

    blobs_before, snaps_before = blob_files(d), snapshot_entries(d)
    du_before = du(d.data_root)
    stores_before = du(d.data_root / "content") + du(d.data_root / "snapshots")

    b = _import(d, busybox_tar, "dedupe:b", 'CMD ["echo", "b"]')
    assert b != a
    assert _layers(d, "dedupe:b") == [diff_id]

    # one blob for the layer, one snapshot row and directory for it
    assert query(d, "SELECT DISTINCT blob_digest FROM image_layers WHERE image_id IN (?, ?)",
                 a, b) == [(layer_blob,)]
    assert query(d, "SELECT id FROM snapshots WHERE name=?", diff_id) == [(snap_id,)]
    assert snapshot_entries(d) == snaps_before
    new_blobs = blob_files(d) - blobs_before
    assert new_blobs == {b}, "only B's config is new content"
    assert blob_path(d, b).stat().st_size < 64 << 10
    assert os.listdir(d.data_root / "content" / "ingest") == []
    # on disk: far less than another copy of the layer (packed and unpacked)
    stores_after = du(d.data_root / "content") + du(d.data_root / "snapshots")
    assert stores_after - stores_before < 64 << 10
    assert du(d.data_root) - du_before < layer_size // 4

    # remove A: the shared layer stays for B
    cli(d, "rmi", "dedupe:a")
    assert blob_path(d, layer_blob).exists()
    assert (d.data_root / "snapshots" / str(snap_id) / "fs" / "bin" / "busybox").exists()
    assert not blob_path(d, a).exists()
    # remove B: layer blob, config and snapshot directory are gone at once
    cli(d, "rmi", "dedupe:b")
    assert not blob_path(d, layer_blob).exists()
    assert not blob_path(d, b).exists()
    assert not (d.data_root / "snapshots" / str(snap_id)).exists()
    assert query(d, "SELECT id FROM snapshots WHERE name=?", diff_id) == []
    assert_store_consistent(d)


# --------------------------------------------------------------------------- kill -9 during load

def _tar_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def big_archive() -> Iterator[Path]:
    """A docker-archive of one ~150 MB layer of random data (layer first, manifest last),
    made of 1 MB files so that unpacking it takes a visible moment."""
    tmp = Path(tempfile.mkdtemp(prefix="dpsa-", dir="/tmp"))
    layer_path = tmp / "layer.tar"
    h = hashlib.sha256()

    class Hashing(io.RawIOBase):
        def __init__(self, f: Any) -> None:
            self.f = f

        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            h.update(b)
            return self.f.write(b)

    with open(layer_path, "wb") as raw, \
            tarfile.open(fileobj=Hashing(raw), mode="w|", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo("data")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        for i in range(BIG_MB):
            _tar_member(tf, f"data/f{i:04d}.bin", os.urandom(MB))
    diff_id = "sha256:" + h.hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "random data"}],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [BIG_TAG],
                            "Layers": [f"{diff_id[7:]}/layer.tar"]}]).encode()
    archive = tmp / "big.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        tf.add(layer_path, arcname=f"{diff_id[7:]}/layer.tar")
        _tar_member(tf, config_name, config)
        _tar_member(tf, "manifest.json", manifest)
    layer_path.unlink()
    yield archive
    shutil.rmtree(tmp, ignore_errors=True)


def _ingest_bytes(d: Daemon) -> int | None:
    """Bytes in partial writes, None while there is no partial write at all."""
    ingest = d.data_root / "content" / "ingest"
    sizes = []
    for name in os.listdir(ingest):
        try:
            sizes.append((ingest / name).stat().st_size)
        except FileNotFoundError:
            pass
    return sum(sizes) if sizes else None


def _unpacking(d: Daemon, known: set[str]) -> bool:
    """An active snapshot (work/ present) of a new id already has extracted files."""
    for entry in snapshot_entries(d) - known:
        if (d.data_root / "snapshots" / entry / "work").is_dir() and \
                (d.data_root / "snapshots" / entry / "fs" / "data").is_dir():
            return True
    return False


@pytest.mark.parametrize("kill_at", ["1MB", "40MB", "120MB", "unpack"])
def test_kill9_during_load(store_daemon: Daemon, big_archive: Path, kill_at: str) -> None:
    d = store_daemon
    assert BIG_TAG not in images(d)
    before = images(d)
    known_snapshots = snapshot_entries(d)
    total = big_archive.stat().st_size

    load = subprocess.Popen([DOCKER_CLI, "load"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=d.cli_env())
    assert load.stdin is not None
    missed = False
    try:
        with open(big_archive, "rb") as src:
            if kill_at == "unpack":
                shutil.copyfileobj(src, load.stdin, MB)
                load.stdin.close()
                # poll (hang guard only) until files are being extracted, then kill at once
                deadline = time.monotonic() + 60
                while not _unpacking(d, known_snapshots):
                    if load.poll() is not None:
                        missed = True  # the load finished between two looks
                        break
                    assert time.monotonic() < deadline, "unpacking never started"
                    time.sleep(0.002)
            else:
                sent_mb = int(kill_at.removesuffix("MB"))
                remaining = sent_mb * MB
                while remaining:
                    chunk = src.read(min(MB, remaining))
                    load.stdin.write(chunk)
                    remaining -= len(chunk)
                load.stdin.flush()
                # the pipe and sockets hold a few MB: wait until the daemon has the rest
                wanted = max(0, (sent_mb - 4) * MB)
                deadline = time.monotonic() + 60
                while (got := _ingest_bytes(d)) is None or got < wanted:
                    assert load.poll() is None, load.stderr.read()  # type: ignore[union-attr]
                    assert time.monotonic() < deadline, f"daemon received {got} of {wanted}"
                    time.sleep(0.01)
                assert (_ingest_bytes(d) or 0) < total  # mid-stream, for sure
            d.stop(signal.SIGKILL)
        # what the crash left (proves where the kill landed; the next start must clean it)
        if kill_at == "unpack" and not missed:
            active = query(d, "SELECT id FROM snapshots WHERE kind = 'active'")
            assert active, "the kill did not land during unpacking"
            assert all((d.data_root / "snapshots" / str(i)).is_dir() for (i,) in active)
        elif kill_at != "unpack":
            assert _ingest_bytes(d) is not None, "no partial write at the kill"
    finally:
        if not load.stdin.closed:
            try:
                load.stdin.close()
            except BrokenPipeError:
                pass
        try:
            load.wait(timeout=60)
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
    if not missed:
        assert load.returncode != 0, "docker load succeeded although the daemon was killed"

    d.start()
    after = images(d)
    if missed:
        # the kill came after the load had finished: the image must be whole
        assert after == {**before, BIG_TAG: after[BIG_TAG]}
    else:
        assert after == before, "a half-loaded image is listed"
        assert cli(d, "image", "inspect", BIG_TAG, check=False).returncode == 1
    assert_store_consistent(d)

    # the same archive loads fully now
    if not missed:
        out = cli(d, "load", "-i", big_archive, timeout=300).stdout
        assert f"Loaded image: {BIG_TAG}" in out
    layers = _layers(d, BIG_TAG)
    assert len(layers) == 1
    [(size,)] = query(d, "SELECT size FROM images WHERE id = ?",
                      cli(d, "image", "inspect", "--format", "{{.Id}}", BIG_TAG).stdout.strip())
    assert size >= BIG_MB * MB
    assert_store_consistent(d)
    cli(d, "rmi", BIG_TAG)
    assert images(d) == before
    assert_store_consistent(d)


# --------------------------------------------------------------------------- restarts keep state

def _state(d: Daemon) -> dict[str, Any]:
    listing = images(d)
    inspect = json.loads(cli(d, "image", "inspect", *sorted(set(listing.values()))).stdout)
    return {
        "images": listing,
        "inspect": sorted((i["Id"], sorted(i["RepoTags"]), i["Created"], i["RootFS"]["Layers"],
                           i["Config"]["Cmd"], i["Config"]["Labels"]) for i in inspect),
        "blobs": blob_files(d),
        "snapshots": sorted(query(d, "SELECT id, name, parent, kind, size FROM snapshots")),
    }


def test_restart_keeps_state(store_daemon: Daemon, busybox_tar: Path) -> None:
    d = store_daemon
    first = _import(d, busybox_tar, "keep:one", 'CMD ["sh"]')
    second = _import(d, busybox_tar, "keep/two:v1", "LABEL keep=two")
    cli(d, "tag", first, "keep:alias")
    cli(d, "tag", second, "localhost:5000/keep/two:v2")
    state = _state(d)
    assert {state["images"][r] for r in ("keep:one", "keep:alias")} == {first}
    assert {state["images"][r] for r in ("keep/two:v1", "localhost:5000/keep/two:v2")} == {second}

    d.restart()
    assert _state(d) == state
    assert_store_consistent(d)

    # written just before a crash: must survive it too (committed = durable)
    cli(d, "tag", first, "keep:late")
    state = _state(d)
    d.kill9_and_restart()
    assert _state(d) == state
    assert state["images"]["keep:late"] == first
    assert_store_consistent(d)

    # the unpacked layer is usable after both restarts: save and history still work
    saved = subprocess.run([DOCKER_CLI, "save", "keep:one"], env=d.cli_env(),
                           capture_output=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    with tarfile.open(fileobj=io.BytesIO(saved.stdout)) as tf:
        assert "manifest.json" in tf.getnames()
    for ref in ("keep:one", "keep:alias", "keep:late", "keep/two:v1",
                "localhost:5000/keep/two:v2"):
        cli(d, "rmi", ref)
    assert_store_consistent(d)
