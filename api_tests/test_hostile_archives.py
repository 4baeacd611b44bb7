"""Hostile archives fed to `docker import` and `docker load`.

Every hostile layer goes through both commands (for load it is wrapped in an otherwise
valid Docker archive whose config's diff_id matches it); archive-level attacks (manifest
paths, broken JSON, OCI index tricks) go through load. Each case targets a sentinel
directory made under /tmp for the test, and /etc/passwd. After each attempt:

  * the CLI exited non-zero with the daemon's explanation (`Error response from daemon: …`
    or the in-band error of the load stream), matching the case's expectation;
  * nothing outside the data root changed (the sentinel tree is byte-for-byte the same,
    its files have their link count; /etc/passwd too);
  * no image appeared, no snapshot or blob is left behind once garbage collection ran,
    the ingest area is empty;
  * the daemon still works: a valid import succeeds.

A few inputs look hostile but are accepted by dockerd, which confines them (absolute
member names are taken relative to the root, a regular file replaces a symlink instead of
writing through it): those must succeed, land inside the layer, and leave the sentinel alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import archives as A

UP = "../" * 16  # more than any data root is deep


# --- sentinel ----------------------------------------------------------------------------------


@dataclass
class Sentinel:
    path: Path

    @property
    def rel(self) -> str:
        return str(self.path).lstrip("/")

    def state(self) -> dict[str, tuple]:
        out: dict[str, tuple] = {".": _stat(self.path)}
        for root, dirs, files in os.walk(self.path):
            for name in dirs + files:
                p = Path(root, name)
                out[str(p.relative_to(self.path))] = _stat(p)
        return out


def _stat(p: Path) -> tuple:
    st = p.lstat()
    digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() \
        else None
    xattrs = tuple(sorted(os.listxattr(p, follow_symlinks=False))) if not p.is_symlink() else ()
    return (st.st_mode, st.st_size, st.st_nlink, st.st_mtime_ns, st.st_uid, digest, xattrs)


@pytest.fixture
def sentinel() -> Iterator[Sentinel]:
    path = Path(tempfile.mkdtemp(prefix="dpy-sentinel-", dir="/tmp"))
    (path / "passwd").write_text("root:x:0:0:sentinel:/root:/bin/sh\n")
    (path / "sub").mkdir()
    (path / "sub" / "keep").write_text("keep\n")
    s = Sentinel(path)
    before = s.state()
    passwd = _stat(Path("/etc/passwd"))
    yield s
    try:
        assert s.state() == before, "the sentinel directory outside the data root changed"
        assert _stat(Path("/etc/passwd")) == passwd, "/etc/passwd changed"
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the daemon's state ------------------------------------------------------------------------


def _entries(daemon, sub: str) -> set[str]:
    p = Path(daemon.data_root) / sub
    return set(os.listdir(p)) if p.exists() else set()


@pytest.fixture
def untouched(docker, daemon, tmp_path) -> Iterator[None]:
    """Asserts after the test: no new image, nothing left in the store, daemon works."""
    ids = set(docker("images", "-a", "-q", "--no-trunc").stdout.split())
    snaps, blobs = _entries(daemon, "snapshots"), _entries(daemon, "content/blobs/sha256")
    yield
    assert set(docker("images", "-a", "-q", "--no-trunc").stdout.split()) == ids
    # A valid import still works; removing it runs the garbage collector.
    probe = A.rootfs(f"probe-{os.urandom(8).hex()}")
    probe_id = docker("import", "-", input=probe).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", probe_id)
    assert docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", probe_id).stdout == \
        json.dumps([A.sha256(probe)]) + "\n"
    docker("rmi", probe_id)
    assert _entries(daemon, "snapshots") == snaps, "snapshot directories left behind"
    left = _entries(daemon, "content/blobs/sha256") - blobs
    assert not left, f"blobs left behind: {sorted(left)}"
    assert not _entries(daemon, "content/ingest"), "ingest area not cleaned"


# --- hostile layers ----------------------------------------------------------------------------


def _truncated(s: Sentinel) -> bytes:
    full = A.tar_bytes([A.dir_("etc"), A.reg("etc/big", os.urandom(8192))])
    return full[: 512 * 2 + 3000]  # cut inside the file's data


def _corrupt_gzip(s: Sentinel) -> bytes:
    data = bytearray(A.gz(A.tar_bytes([A.reg("etc/big", os.urandom(16384))])))
    for i in range(40, 200):
        data[i] ^= 0x5A
    return bytes(data)


def _truncated_gzip(s: Sentinel) -> bytes:
    data = A.gz(A.tar_bytes([A.reg("etc/big", os.urandom(16384))]))
    return data[: len(data) // 2]


def _huge_pax_header(s: Sentinel) -> bytes:
    # a PAX extended header declaring 1 GiB of records, then a few bytes
    return A.raw_header("././@PaxHeader", 1 << 30, tarfile.XHDTYPE) + b"30 path=" + b"a" * 100


def _huge_file(s: Sentinel) -> bytes:
    # a regular file declaring 1 TiB (base-256 size field) and 4 KiB of data
    return A.raw_header("etc/huge", 1 << 40) + os.urandom(4096)


# name -> (builder, expected error regex). Every builder targets the sentinel.
REJECTED_LAYERS: dict[str, tuple[Callable[[Sentinel], bytes], str]] = {
    "dotdot-file": (
        lambda s: A.tar_bytes([A.reg(f"{UP}{s.rel}/pwned", b"pwned")]),
        r"escapes the layer root"),
    "dotdot-inside-then-out": (
        lambda s: A.tar_bytes([A.dir_("etc"), A.reg(f"etc/{UP}{s.rel}/pwned", b"pwned")]),
        r"escapes the layer root"),
    "dotdot-dir": (
        lambda s: A.tar_bytes([A.dir_(f"{UP}{s.rel}/newdir", 0o777)]),
        r"escapes the layer root"),
    "symlink-relative-write-through": (
        lambda s: A.tar_bytes([A.sym("evil", f"{UP}{s.rel}"), A.reg("evil/pwned", b"pwned")]),
        r"is a symlink"),
    "symlink-absolute-write-through": (
        lambda s: A.tar_bytes([A.sym("evil", str(s.path)), A.reg("evil/pwned", b"pwned")]),
        r"is a symlink"),
    "symlink-absolute-mkdir-through": (
        lambda s: A.tar_bytes([A.sym("evil", str(s.path)), A.dir_("evil/sub/deeper")]),
        r"is a symlink"),
    "symlink-chain-write-through": (
        lambda s: A.tar_bytes([A.sym("b", str(s.path)), A.sym("a", "b"),
                               A.reg("a/sub/keep", b"pwned")]),
        r"is a symlink"),
    "symlink-whiteout-through": (
        lambda s: A.tar_bytes([A.sym("evil", str(s.path)), A.reg("evil/.wh.passwd")]),
        r"is a symlink"),
    "symlink-opaque-through": (
        lambda s: A.tar_bytes([A.sym("evil", str(s.path)), A.reg("evil/.wh..wh..opq")]),
        r"is a symlink"),
    "hardlink-dotdot-sentinel-then-write": (
        lambda s: A.tar_bytes([A.hard("h", f"{UP}{s.rel}/passwd"), A.reg("h", b"pwned")]),
        r"hardlink target .* escapes the layer root"),
    "hardlink-absolute-sentinel": (
        lambda s: A.tar_bytes([A.hard("h", f"{s.path}/passwd")]),
        r"hardlink target .* is not an earlier entry"),
    "hardlink-dotdot-etc-passwd": (
        lambda s: A.tar_bytes([A.hard("h", "../../etc/passwd")]),
        r"hardlink target .* escapes the layer root"),
    "hardlink-absolute-etc-passwd": (
        lambda s: A.tar_bytes([A.hard("h", "/etc/passwd")]),
        r"hardlink target .* is not an earlier entry"),
    "hardlink-through-symlinked-dir": (
        lambda s: A.tar_bytes([A.sym("d", str(s.path)), A.hard("h", "d/passwd"),
                               A.reg("h", b"pwned")]),
        r"is a symlink"),
    "hardlink-through-relative-symlinked-dir": (
        lambda s: A.tar_bytes([A.sym("d", f"{UP}{s.rel}"), A.hard("h", "d/sub/keep")]),
        r"is a symlink"),
    "nul-in-name": (
        lambda s: A.tar_bytes([A.reg("etc/x", b"pwned", path=f"etc/pw\x00{UP}{s.rel}/pwned")]),
        r"NUL"),
    "nul-in-symlink-target": (
        lambda s: A.tar_bytes([_nul_symlink(s)]),
        r"NUL"),
    "truncated-tar": (_truncated, r"unexpected EOF"),
    "corrupt-gzip": (_corrupt_gzip, r"corrupt gzip stream|invalid"),
    "truncated-gzip": (_truncated_gzip, r"unexpected EOF"),
    "huge-pax-header": (_huge_pax_header, r"too large"),
    "huge-declared-file": (_huge_file, r"unexpected EOF"),
}


def _nul_symlink(s: Sentinel) -> A.Entry:
    e = A.sym("x", "placeholder")
    e.info.pax_headers = {"linkpath": f"{s.path}\x00/passwd"}
    return e


# Hostile-looking but confined, as dockerd does: they must import and stay inside.
CONFINED_LAYERS: dict[str, tuple[Callable[[Sentinel], bytes], Callable[[Sentinel], str]]] = {
    "absolute-path": (
        lambda s: A.tar_bytes([A.reg(f"{s.path}/pwned", b"pwned")]),
        lambda s: f"{s.rel}/pwned"),
    "absolute-path-climbing": (
        lambda s: A.tar_bytes([A.reg(f"/{UP}{s.rel}/pwned", b"pwned")]),
        lambda s: f"{s.rel}/pwned"),
    "file-replaces-symlink": (
        lambda s: A.tar_bytes([A.sym("passwd", f"{s.path}/passwd"), A.reg("passwd", b"pwned")]),
        lambda s: "passwd"),
    "dir-replaces-symlink": (
        lambda s: A.tar_bytes([A.sym("evil", str(s.path)), A.dir_("evil", 0o777),
                               A.reg("evil/pwned", b"pwned")]),
        lambda s: "evil/pwned"),
}


def _diff_id(layer: bytes) -> str:
    try:
        return A.sha256(A.uncompressed(layer))
    except Exception:  # corrupt compression: any digest will do, extraction fails first
        return A.sha256(layer)


def _assert_refused(r, pattern: str) -> None:
    assert r.returncode != 0, f"accepted: {r.stdout}"
    err = r.stderr.strip()
    assert err, "no error message"
    assert "Traceback" not in err and "Internal Server Error" not in err, err
    assert re.search(pattern, err), f"{err!r} does not match {pattern!r}"


@pytest.mark.parametrize("case", sorted(REJECTED_LAYERS))
def test_import_rejects(docker, sentinel, untouched, unique_name, case):
    build, pattern = REJECTED_LAYERS[case]
    r = docker("import", "-", unique_name("hostile"), input=build(sentinel), check=False)
    _assert_refused(r, pattern)
    assert r.stderr.startswith("Error response from daemon: "), r.stderr


@pytest.mark.parametrize("case", sorted(REJECTED_LAYERS))
def test_load_rejects_layer(docker, sentinel, untouched, unique_name, tmp_path, case):
    build, pattern = REJECTED_LAYERS[case]
    layer = build(sentinel)
    name = unique_name("hostile") + ":1"
    archive = A.docker_archive([layer], [name], diff_ids=[_diff_id(layer)])
    path = tmp_path / "hostile.tar"
    path.write_bytes(archive.data)
    r = docker("load", "-i", path, check=False)
    _assert_refused(r, pattern)
    assert "Loaded image" not in r.stdout


@pytest.mark.parametrize("case", sorted(CONFINED_LAYERS))
def test_import_confines(docker, daemon, sentinel, unique_name, tmp_path, case):
    build, inside = CONFINED_LAYERS[case]
    name = unique_name("confined")
    r = docker("import", "-", name, input=build(sentinel), check=False)
    try:
        assert r.returncode == 0, r.stderr
        # the entry is in the image's own layer (read back through docker save)
        saved = tmp_path / "c.tar"
        docker("save", "-o", saved, name)
        [layer_digest] = json.loads(A.read_tar(saved.read_bytes())["manifest.json"])[0]["Layers"]
        layer = A.read_tar(saved.read_bytes())[layer_digest]
        names = {n.lstrip("/").replace("../", "") for n in A.read_tar(layer)}
        assert any(n.endswith(inside(sentinel).split("/")[-1]) for n in names)
    finally:
        docker("rmi", "-f", name, check=False)


# --- hostile archives (load only) --------------------------------------------------------------


def _valid_layer() -> bytes:
    return A.rootfs(f"valid-{os.urandom(6).hex()}")


def _manifest_paths(config: str | None = None, layers: list[str] | None = None):
    def build(s: Sentinel) -> bytes:
        layer = _valid_layer()
        a = A.docker_archive([layer], ["zz-hostile/manifest:1"])
        files = A.read_tar(a.data)
        config_name = next(n for n in files if n.endswith(".json") and n != "manifest.json")
        manifest = [{"Config": (config or config_name).replace("SENTINEL", s.rel),
                     "RepoTags": ["zz-hostile/manifest:1"],
                     "Layers": [p.replace("SENTINEL", s.rel)
                                for p in (layers or ["000/layer.tar"])]}]
        return A.docker_archive([layer], config=a.config, manifest=manifest).data
    return build


def _config_diff_mismatch(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/diff:1"],
                            diff_ids=[A.sha256(b"not this layer")]).data


def _config_more_diff_ids(s: Sentinel) -> bytes:
    layer = _valid_layer()
    return A.docker_archive([layer], ["zz-hostile/diff:1"],
                            diff_ids=[A.sha256(layer), A.sha256(layer)]).data


def _config_not_json(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/cfg:1"], config=b"{not json").data


def _config_without_rootfs(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/cfg:1"],
                            config=b'{"architecture":"amd64","os":"linux"}').data


def _manifest_not_json(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/m:1"], manifest=b"[{]").data


def _manifest_wrong_shape(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/m:1"],
                            manifest={"Config": "x", "Layers": []}).data


def _manifest_symlink_out(s: Sentinel) -> bytes:
    layer = _valid_layer()
    a = A.docker_archive([layer], ["zz-hostile/m:1"])
    files = [(n, d) for n, d in A.read_tar(a.data).items() if n != "manifest.json"]
    return A.tar_bytes([A.reg(n, d) for n, d in files] +
                       [A.sym("manifest.json", f"{s.path}/passwd")])


def _layer_symlink_out(s: Sentinel) -> bytes:
    layer = _valid_layer()
    a = A.docker_archive([layer], ["zz-hostile/m:1"])
    files = [(n, d) for n, d in A.read_tar(a.data).items() if n != "000/layer.tar"]
    return A.tar_bytes([A.reg(n, d) for n, d in files] +
                       [A.sym("000/layer.tar", "/etc/passwd")])


def _huge_manifest(s: Sentinel) -> bytes:
    return A.docker_archive([_valid_layer()], ["zz-hostile/m:1"],
                            manifest=b"[" + b" " * (17 << 20) + b"]").data


def _huge_declared_manifest(s: Sentinel) -> bytes:
    # manifest.json's header declares 1 TiB; the archive ends after 4 KiB
    return A.raw_header("manifest.json", 1 << 40) + b"[" * 4096


def _oci(layers=None, **kw) -> Callable[[Sentinel], bytes]:
    return lambda s: A.oci_archive(layers if layers is not None else [_valid_layer()],
                                   "docker.io/zz-hostile/oci:1", **kw).data


def _nested_index(depth: int) -> Callable[[Sentinel], bytes]:
    def build(s: Sentinel) -> bytes:
        layer = _valid_layer()
        config = A.image_config([A.sha256(layer)])
        manifest = A.oci_manifest(config, [layer])
        blobs = [manifest]
        desc = {"mediaType": A.OCI_MANIFEST, "digest": A.sha256(manifest), "size": len(manifest),
                "platform": {"os": "linux", "architecture": A.GOARCH}}
        for _ in range(depth):
            doc = json.dumps({"schemaVersion": 2, "mediaType": A.OCI_INDEX,
                              "manifests": [desc]}).encode()
            blobs.append(doc)
            desc = {"mediaType": A.OCI_INDEX, "digest": A.sha256(doc), "size": len(doc)}
        desc["annotations"] = {"io.containerd.image.name": "docker.io/zz-hostile/nested:1"}
        index = {"schemaVersion": 2, "mediaType": A.OCI_INDEX, "manifests": [desc]}
        return A.oci_archive([layer], config=config, index=index, blobs=blobs).data
    return build


def _index_loop(s: Sentinel) -> bytes:
    """A nested index that lists itself. Content addressing makes a true loop impossible,
    so the blob lies: it is stored under the digest it references, not its own. A loader that
    trusted blob paths would walk in circles; digests are verified, so it is simply missing."""
    claimed = "sha256:" + "ab" * 32
    loop = json.dumps({"schemaVersion": 2, "mediaType": A.OCI_INDEX, "manifests": [
        {"mediaType": A.OCI_INDEX, "digest": claimed, "size": 200}]}).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": A.OCI_INDEX, "manifests": [
        {"mediaType": A.OCI_INDEX, "digest": claimed, "size": len(loop)}]}).encode()
    return A.tar_bytes([A.reg("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                        A.reg("index.json", index), A.reg(f"blobs/sha256/{claimed[7:]}", loop)])


def _index_missing_layer(s: Sentinel) -> bytes:
    layer = _valid_layer()
    return A.oci_archive([layer], "docker.io/zz-hostile/oci:1", omit=[A.sha256(layer)]).data


def _index_missing_manifest(s: Sentinel) -> bytes:
    layer = _valid_layer()
    config = A.image_config([A.sha256(layer)])
    return A.oci_archive([layer], "docker.io/zz-hostile/oci:1", config=config,
                         omit=[A.sha256(A.oci_manifest(config, [layer]))]).data


def _index_digest_path(s: Sentinel) -> bytes:
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": A.OCI_MANIFEST, "digest": f"sha256:{UP}{s.rel}/passwd", "size": 10}]}
    return A.oci_archive([_valid_layer()], index=index).data


def _config_with(**fields) -> Callable[[Sentinel], bytes]:
    """A valid archive whose config has fields of the wrong JSON type: dockerd's typed
    decoding refuses it; loaded anyway, it would break every later `docker images`."""
    def build(s: Sentinel) -> bytes:
        layer = _valid_layer()
        doc = json.loads(A.image_config([A.sha256(layer)]))
        doc.update(fields)
        return A.docker_archive([layer], ["zz-hostile/types:1"],
                                config=json.dumps(doc).encode()).data
    return build


def _huge_config(s: Sentinel) -> bytes:
    layer = _valid_layer()
    config = A.image_config([A.sha256(layer)])
    return A.docker_archive([layer], ["zz-hostile/cfg:1"],
                            config=config[:-1] + b"," + b" " * (17 << 20) + b'"x":1}').data


REJECTED_ARCHIVES: dict[str, tuple[Callable[[Sentinel], bytes], str]] = {
    "config-history-not-objects": (_config_with(history=[1]), r"history has the wrong type"),
    "config-history-not-a-list": (_config_with(history="x"), r"history has the wrong type"),
    "config-history-created-number": (
        _config_with(history=[{"created": 5, "created_by": "x"}]), r"history\.created"),
    "config-config-not-an-object": (_config_with(config=[1]), r"config has the wrong type"),
    "config-env-not-a-list": (_config_with(config={"Env": "A=b"}), r"config\.Env"),
    "config-labels-not-strings": (_config_with(config={"Labels": {"a": 1}}),
                                  r"config\.Labels"),
    "config-created-number": (_config_with(created=5), r"created has the wrong type"),
    "config-created-not-a-time": (_config_with(created="yesterday"), r"created"),
    "config-architecture-number": (_config_with(architecture=7), r"architecture"),
    "config-huge": (_huge_config, r"too large"),
    "manifest-config-dotdot-etc-passwd": (
        _manifest_paths(config="../../etc/passwd"), r"not found"),
    "manifest-config-sentinel": (
        _manifest_paths(config=f"{UP}SENTINEL/passwd"), r"not found"),
    "manifest-layer-absolute-etc-passwd": (
        _manifest_paths(layers=["/etc/passwd"]), r"not found"),
    "manifest-layer-dotdot-sentinel": (
        _manifest_paths(layers=[f"{UP}SENTINEL/passwd"]), r"not found"),
    "manifest-is-symlink-out": (_manifest_symlink_out, r"no manifest\.json"),
    "layer-is-symlink-out": (_layer_symlink_out, r"not found"),
    "config-diff-id-mismatch": (_config_diff_mismatch, r"does not match its diff ID"),
    "config-more-diff-ids-than-layers": (_config_more_diff_ids, r"layers"),
    "config-not-json": (_config_not_json, r"invalid"),
    "config-without-rootfs": (_config_without_rootfs, r"rootfs"),
    "manifest-not-json": (_manifest_not_json, r"manifest\.json"),
    "manifest-wrong-shape": (_manifest_wrong_shape, r"manifest\.json"),
    "manifest-huge": (_huge_manifest, r"too large"),
    "manifest-huge-declared-size": (_huge_declared_manifest, r"unexpected EOF|invalid tar"),
    "oci-index-not-json": (_oci(index=b"{\"manifests\": ["), r"index\.json"),
    "oci-index-no-manifests": (_oci(index={"schemaVersion": 2}), r"index\.json"),
    "oci-index-nested-too-deep": (_nested_index(6), r"too deep"),
    "oci-index-loop": (_index_loop, r"not found"),
    "oci-missing-manifest-blob": (_index_missing_manifest, r"not found"),
    "oci-missing-layer-blob": (_index_missing_layer, r"not found"),
    "oci-digest-is-a-path": (_index_digest_path, r"not found|invalid"),
    "empty-input": (lambda s: b"", r"invalid|empty"),
    "not-a-tar": (lambda s: os.urandom(3000), r"invalid"),
    "no-manifest-at-all": (lambda s: A.tar_bytes([A.reg("hello", b"x")]),
                           r"no manifest\.json or index\.json"),
}


@pytest.mark.parametrize("case", sorted(REJECTED_ARCHIVES))
def test_load_rejects_archive(docker, sentinel, untouched, tmp_path, case):
    build, pattern = REJECTED_ARCHIVES[case]
    path = tmp_path / "hostile.tar"
    path.write_bytes(build(sentinel))
    r = docker("load", "-i", path, check=False)
    _assert_refused(r, pattern)
    assert "Loaded image" not in r.stdout


def test_nested_index_within_limit_loads(docker, tmp_path):
    """The depth limit is not a blanket refusal of nested indexes."""
    path = tmp_path / "nested.tar"
    path.write_bytes(_nested_index(2)(None))  # type: ignore[arg-type]
    try:
        assert docker("load", "-i", path).stdout == "Loaded image: zz-hostile/nested:1\n"
    finally:
        docker("rmi", "-f", "zz-hostile/nested:1", check=False)


def test_load_ignores_escaping_member_names(docker, sentinel, tmp_path, unique_name):
    """Archive members are only looked up by name, never written by name: a member called
    ../../<sentinel>/pwned next to a valid image writes nothing anywhere, and the image loads."""
    name = unique_name("escape") + ":1"
    archive = A.docker_archive([_valid_layer()], [name], extra=[
        (f"{UP}{sentinel.rel}/pwned", b"pwned"), (f"/{sentinel.rel}/pwned2", b"pwned"),
        A.sym("link-out", str(sentinel.path))])
    path = tmp_path / "escape.tar"
    path.write_bytes(archive.data)
    try:
        assert docker("load", "-i", path).stdout == f"Loaded image: {name}\n"
        assert docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip() == \
            archive.image_id
    finally:
        docker("rmi", "-f", name, check=False)
