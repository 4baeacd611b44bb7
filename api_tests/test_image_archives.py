"""`docker save` / `docker load` through the stock CLI and docker-py: our own archives
(plain, to stdout, gzip/zstd/xz/bzip2 compressed), archives crafted in the Docker and OCI
layouts, and OCI layouts written by skopeo and umoci.

`docker load` output was checked by hand against a reference dockerd 20.10.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from . import archives as A
from .conftest import DOCKER_CLI

ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def cleanup(docker):
    names: list[str] = []
    yield names
    if names:
        docker("rmi", "-f", *names, check=False)


def shell(daemon, command: str, *, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run a shell pipeline with the CLI pointed at the daemon (for `docker save x | gzip`)."""
    r = subprocess.run(["sh", "-ec", command], env=daemon.cli_env(), capture_output=True,
                       timeout=timeout)
    assert r.returncode == 0, f"{command}: exit {r.returncode}\n{r.stderr.decode()}"
    return r


def new_image(docker, unique_name, cleanup, name: str | None = None,
              *changes: str) -> tuple[str, str, bytes]:
    """Import a unique one-layer image; returns (name, id, layer tar)."""
    name = name or unique_name("img") + ":1"
    layer = A.rootfs(name)
    args = [a for c in (changes or ('CMD ["sh"]',)) for a in ("-c", c)]
    image_id = docker("import", *args, "-", name, input=layer).stdout.strip()
    assert ID_RE.match(image_id)
    cleanup.append(name)
    return name, image_id, layer


def image_id(docker, name: str) -> str:
    return docker("image", "inspect", "-f", "{{.Id}}", name).stdout.strip()


def inspect(docker, name: str) -> dict:
    return json.loads(docker("image", "inspect", name).stdout)[0]


def exists(docker, name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def tar_names(path: Path) -> list[str]:
    import tarfile
    with tarfile.open(path) as tf:
        return tf.getnames()


# --- save --------------------------------------------------------------------------------------


def test_save_one_image_layout_and_load_back(docker, tmp_path, unique_name, cleanup):
    name, iid, layer = new_image(docker, unique_name, cleanup)
    out = tmp_path / "one.tar"
    assert docker("save", "-o", out, name).stdout == ""
    names = set(tar_names(out))
    assert {"manifest.json", "index.json", "oci-layout", f"blobs/sha256/{iid[7:]}",
            f"blobs/sha256/{A.sha256(layer)[7:]}"} <= names
    files = A.read_tar(out.read_bytes())
    assert A.sha256(files[f"blobs/sha256/{iid[7:]}"]) == iid  # the config is the ID's preimage
    assert files[f"blobs/sha256/{A.sha256(layer)[7:]}"] == layer  # the layer as imported
    manifest = json.loads(files["manifest.json"])
    assert manifest == [{"Config": f"blobs/sha256/{iid[7:]}", "RepoTags": [name],
                         "Layers": [f"blobs/sha256/{A.sha256(layer)[7:]}"]}]
    index = json.loads(files["index.json"])
    assert index["schemaVersion"] == 2
    [desc] = index["manifests"]
    assert desc["annotations"]["io.containerd.image.name"] == f"docker.io/library/{name}"
    assert desc["annotations"]["org.opencontainers.image.ref.name"] == name.split(":")[1]
    oci_manifest = json.loads(files[f"blobs/sha256/{desc['digest'][7:]}"])
    assert oci_manifest["config"]["digest"] == iid
    assert [d["digest"] for d in oci_manifest["layers"]] == [A.sha256(layer)]
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}

    before = inspect(docker, name)
    docker("rmi", name)
    assert not exists(docker, iid)
    assert docker("load", "-i", out).stdout == f"Loaded image: {name}\n"
    after = inspect(docker, name)
    assert after["Id"] == iid
    for key in ("RepoTags", "Config", "RootFS", "Created", "Comment", "Size"):
        assert after[key] == before[key], key
    # loading it again over itself changes nothing and says the same
    assert docker("load", "-i", out).stdout == f"Loaded image: {name}\n"
    assert image_id(docker, name) == iid


def test_save_several_images(docker, tmp_path, unique_name, cleanup):
    a, id_a, _ = new_image(docker, unique_name, cleanup)
    b, id_b, _ = new_image(docker, unique_name, cleanup)
    b2 = unique_name("img") + ":two"
    docker("tag", b, b2)
    cleanup.append(b2)
    out = tmp_path / "several.tar"
    docker("save", "-o", out, a, b, b2)
    manifest = json.loads(A.read_tar(out.read_bytes())["manifest.json"])
    assert sorted(map(sorted, (e["RepoTags"] for e in manifest))) == sorted([[a], sorted([b, b2])])
    docker("rmi", a, b, b2)
    loaded = docker("load", "-i", out).stdout.splitlines()
    assert sorted(loaded) == sorted(f"Loaded image: {n}" for n in (a, b, b2))
    assert (image_id(docker, a), image_id(docker, b), image_id(docker, b2)) == (id_a, id_b, id_b)


def test_save_repository_name_saves_all_its_tags(docker, tmp_path, unique_name, cleanup):
    repo = unique_name("repo")
    name1, iid, _ = new_image(docker, unique_name, cleanup, f"{repo}:1")
    name2, other, _ = new_image(docker, unique_name, cleanup, f"{repo}:2")
    out = tmp_path / "repo.tar"
    docker("save", "-o", out, repo)  # no :latest in the repository
    docker("rmi", name1, name2)
    loaded = docker("load", "-i", out).stdout.splitlines()
    assert sorted(loaded) == [f"Loaded image: {name1}", f"Loaded image: {name2}"]
    assert (image_id(docker, name1), image_id(docker, name2)) == (iid, other)


def test_save_by_id_loads_as_image_id(docker, tmp_path, unique_name, cleanup):
    name, iid, _ = new_image(docker, unique_name, cleanup)
    out = tmp_path / "byid.tar"
    docker("save", "-o", out, iid[7:19])
    manifest = json.loads(A.read_tar(out.read_bytes())["manifest.json"])
    assert manifest[0]["RepoTags"] in (None, [])
    docker("rmi", name)
    assert docker("load", "-i", out).stdout == f"Loaded image ID: {iid}\n"
    cleanup.append(iid)
    assert inspect(docker, iid)["RepoTags"] == []
    assert iid in docker("images", "-q", "--no-trunc", "-f", "dangling=true").stdout


def test_save_missing_image(docker, tmp_path, unique_name, cleanup):
    out = tmp_path / "missing.tar"
    r = docker("save", "-o", out, "zz-nope-save:1", check=False)
    assert r.returncode == 1
    # dockerd (graphdriver store) says "reference does not exist" here; the containerd store
    # and we name the image.
    assert r.stderr in ("Error response from daemon: No such image: zz-nope-save:1\n",
                        "Error response from daemon: reference does not exist\n")
    assert not out.exists()
    name, _, _ = new_image(docker, unique_name, cleanup)
    r = docker("save", "-o", out, name, "zz-nope-save", check=False)
    assert r.returncode == 1 and r.stderr.startswith("Error response from daemon: No such image: ")
    assert not out.exists()  # fails before any byte is written


@pytest.mark.parametrize("compressor", ["none", "gzip", "zstd", "xz", "bzip2"])
def test_save_to_stdout_compressed_and_load(docker, daemon, tmp_path, unique_name, cleanup,
                                            compressor):
    name, iid, layer = new_image(docker, unique_name, cleanup)
    out = tmp_path / "image.tar.x"
    pipe = "" if compressor == "none" else f" | {compressor} -c"
    shell(daemon, f"{DOCKER_CLI} save {name}{pipe} > {out}")
    docker("rmi", name)
    # from stdin
    r = subprocess.run([DOCKER_CLI, "load"], stdin=out.open("rb"), env=daemon.cli_env(),
                       capture_output=True, timeout=60)
    assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (0, f"Loaded image: {name}\n",
                                                                    "")
    assert image_id(docker, name) == iid
    assert inspect(docker, name)["RootFS"]["Layers"] == [A.sha256(layer)]
    docker("rmi", name)
    # and from a file, quietly (-q only hides progress)
    assert docker("load", "-q", "-i", out).stdout == f"Loaded image: {name}\n"
    assert image_id(docker, name) == iid


def test_load_over_an_existing_tag_renames_the_old_image(docker, tmp_path, unique_name, cleanup):
    name = unique_name("clash") + ":1"
    old_name, old_id, _ = new_image(docker, unique_name, cleanup, name)
    archive = A.docker_archive([A.rootfs(name + "-new")], [name])
    path = tmp_path / "new.tar"
    path.write_bytes(archive.data)
    cleanup.append(old_id)
    assert docker("load", "-i", path).stdout == (
        f"The image {name} already exists, renaming the old one with ID {old_id} to empty "
        f"string\nLoaded image: {name}\n")
    assert image_id(docker, name) == archive.image_id
    assert inspect(docker, old_id)["RepoTags"] == []


# --- load of crafted archives ------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_load_crafted_multilayer_compressed(docker, tmp_path, unique_name, cleanup, layout):
    name = unique_name(layout) + ":x"
    plain = A.rootfs(name)
    second = A.tar_bytes([A.dir_("usr"), A.reg("usr/two", b"22"), A.reg("etc/.wh.marker")])
    third = A.tar_bytes([A.dir_("opt"), A.reg("opt/three", b"333")])
    layers = [plain, A.gz(second), A.zst(third)]
    if layout == "docker":
        archive = A.docker_archive(layers, [name])
    else:
        archive = A.oci_archive(layers, f"docker.io/library/{name}")
    path = tmp_path / "crafted.tar"
    path.write_bytes(archive.data)
    cleanup.append(name)
    assert docker("load", "-i", path).stdout == f"Loaded image: {name}\n"
    img = inspect(docker, name)
    assert img["Id"] == archive.image_id
    assert img["RootFS"]["Layers"] == [A.sha256(plain), A.sha256(second), A.sha256(third)]
    assert img["Config"]["Cmd"] == ["sh"]
    assert img["Size"] == A.marker_size(name) + 2 + 3
    # saved again, the layers keep their compression and digests
    again = tmp_path / "again.tar"
    docker("save", "-o", again, name)
    members = A.read_tar(again.read_bytes())
    for blob in layers:
        assert members[f"blobs/sha256/{A.sha256(blob)[7:]}"] == blob


def test_load_oci_layout_bare_tag_is_untagged(docker, tmp_path, unique_name, cleanup):
    archive = A.oci_archive([A.rootfs(unique_name("bare"))], "latest")
    path = tmp_path / "bare.tar"
    path.write_bytes(archive.data)
    cleanup.append(archive.image_id)
    assert docker("load", "-i", path).stdout == f"Loaded image ID: {archive.image_id}\n"
    assert inspect(docker, archive.image_id)["RepoTags"] == []


def test_load_oci_archives_written_by_skopeo(docker, daemon, tmp_path, unique_name, cleanup):
    name, iid, layer = new_image(docker, unique_name, cleanup, None, 'CMD ["sh"]', "ENV SK=1")
    ours = tmp_path / "ours.tar"
    docker("save", "-o", ours, name)
    docker("rmi", name)
    repo = name.split(":")[0]

    def skopeo(*args: str) -> None:
        r = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    # oci-archive with a full reference as ref.name
    sk_archive = tmp_path / "sk.tar"
    skopeo("copy", f"docker-archive:{ours}", f"oci-archive:{sk_archive}:{repo}:sk")
    cleanup.append(f"{repo}:sk")
    assert docker("load", "-i", sk_archive).stdout == f"Loaded image: {repo}:sk\n"
    img = inspect(docker, f"{repo}:sk")
    assert img["RootFS"]["Layers"] == [A.sha256(layer)]
    assert img["Config"]["Cmd"] == ["sh"] and img["Config"]["Env"] == ["SK=1"]

    # an OCI directory (ref.name is a bare tag), tarred: loads untagged, by config digest
    oci_dir = tmp_path / "ocidir"
    skopeo("copy", f"docker-archive:{ours}", f"oci:{oci_dir}:sk")
    index = json.loads((oci_dir / "index.json").read_text())
    manifest = json.loads((oci_dir / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                          .read_text())
    config_digest = manifest["config"]["digest"]
    tarred = tmp_path / "ocidir.tar"
    subprocess.run(["tar", "-C", oci_dir, "-cf", tarred, "."], check=True)
    cleanup.append(config_digest)
    assert docker("load", "-i", tarred).stdout == f"Loaded image ID: {config_digest}\n"
    assert inspect(docker, config_digest)["RootFS"]["Layers"] == [A.sha256(layer)]


def test_load_oci_layout_written_by_umoci(docker, tmp_path, unique_name, cleanup):
    """umoci writes layers that end right after the last file's data (no block padding, no
    end-of-archive blocks); Go's archive/tar, hence dockerd, accepts them."""
    layout = tmp_path / "um"

    def umoci(*args: str) -> None:
        r = subprocess.run(["umoci", *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

    payload = tmp_path / "hello.txt"
    payload.write_text(unique_name("umoci") + "\n")
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:latest")
    umoci("insert", "--image", f"{layout}:latest", str(payload), "/etc/hello.txt")
    umoci("config", "--image", f"{layout}:latest", "--config.cmd", "sh",
          "--config.env", "UM=1")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:])
                          .read_text())
    config_digest = manifest["config"]["digest"]
    layer_blob = (layout / "blobs/sha256" / manifest["layers"][-1]["digest"][7:]).read_bytes()
    tarred = tmp_path / "um.tar"
    subprocess.run(["tar", "-C", layout, "-cf", tarred, "."], check=True)
    cleanup.append(config_digest)
    assert docker("load", "-i", tarred).stdout == f"Loaded image ID: {config_digest}\n"
    img = inspect(docker, config_digest)
    assert img["RootFS"]["Layers"][-1] == A.sha256(A.uncompressed(layer_blob))
    assert img["Config"]["Cmd"] == ["sh"] and "UM=1" in img["Config"]["Env"]
    assert img["Size"] == payload.stat().st_size


# --- docker-py ---------------------------------------------------------------------------------


def test_save_and_load_with_docker_py(dockerpy, docker, unique_name, cleanup):
    name, iid, _ = new_image(docker, unique_name, cleanup)
    image = dockerpy.images.get(name)
    data = b"".join(image.save(named=True))
    manifest = json.loads(A.read_tar(data)["manifest.json"])
    assert manifest[0]["RepoTags"] == [name]
    dockerpy.images.remove(name)
    loaded = dockerpy.images.load(data)
    assert [(i.id, i.tags) for i in loaded] == [(iid, [name])]
    # unnamed: saved by ID
    unnamed = b"".join(dockerpy.images.get(name).save())
    dockerpy.images.remove(name)
    loaded = dockerpy.images.load(unnamed)
    cleanup.append(iid)
    assert [(i.id, i.tags) for i in loaded] == [(iid, [])]
