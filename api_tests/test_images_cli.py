"""Image management through the stock CLI: import, images, inspect, tag, history, rmi,
image prune, events.

Expected strings were checked by hand against a reference dockerd (20.10, driven by the
same 28.2 CLI); where dockerd 20.10 and 28 word a message differently the test accepts the
newer wording (noted inline).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from . import archives as A

ID_LINE = re.compile(r"^sha256:[0-9a-f]{64}$")
EVENT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) image (\w+) (sha256:[0-9a-f]{64}) \((.*)\)$")


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def cleanup(docker) -> Iterator[list[str]]:
    """Names or IDs appended here are removed (rmi -f) after the test."""
    names: list[str] = []
    yield names
    if names:
        docker("rmi", "-f", *names, check=False)


@pytest.fixture
def layer_tar(tmp_path: Path, unique_name) -> Callable[..., tuple[Path, bytes]]:
    """make(marker=None) -> (path, bytes) of a tiny rootfs tar whose layer no other test has."""
    def make(marker: str | None = None, *,
             compress: Callable[[bytes], bytes] | None = None) -> tuple[Path, bytes]:
        data = A.rootfs(marker or unique_name("layer"))
        path = tmp_path / f"{os.urandom(6).hex()}.tar"
        path.write_bytes(compress(data) if compress else data)
        return path, data
    return make


def imported_id(result) -> str:
    out = result.stdout.strip()
    assert ID_LINE.match(out), f"docker import printed {result.stdout!r}"
    return out


def import_image(docker, path: Path, name: str | None = None, *options: str) -> str:
    return imported_id(docker("import", *options, path, *([name] if name else [])))


def all_ids(docker) -> set[str]:
    return set(docker("images", "-a", "-q", "--no-trunc").stdout.split())


def inspect_field(docker, name: str, template: str) -> str:
    return docker("image", "inspect", "-f", template, name).stdout.rstrip("\n")


def store_entries(daemon, sub: str) -> set[str]:
    path = Path(daemon.data_root) / sub
    return set(os.listdir(path)) if path.exists() else set()


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


# --- import ------------------------------------------------------------------------------------


def test_import_file_with_changes_and_message(docker, layer_tar, unique_name, cleanup):
    path, data = layer_tar()
    name = unique_name("imp") + ":v1"
    cleanup.append(name)
    image_id = import_image(
        docker, path, name, "-c", 'CMD ["sh"]', "-c", "ENV A=b", "-c", "ENV C=d e=f",
        "-c", "LABEL zz.label=yes", "-c", "WORKDIR /w", "-c", "USER 1000",
        "-c", 'ENTRYPOINT ["/bin/sh", "-c"]', "-c", "EXPOSE 80/tcp 53/udp",
        "-c", "VOLUME /data", "-m", "hello import")
    assert inspect_field(docker, name, "{{.Id}}") == image_id
    [img] = json.loads(docker("image", "inspect", name).stdout)
    assert img["Id"] == image_id and img["RepoTags"] == [name]
    config = img["Config"]
    assert config["Cmd"] == ["sh"]
    assert config["Env"] == ["A=b", "C=d", "e=f"]
    assert config["Labels"] == {"zz.label": "yes"}
    assert (config["WorkingDir"], config["User"]) == ("/w", "1000")
    assert config["Entrypoint"] == ["/bin/sh", "-c"]
    assert config["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert img["Comment"] == "hello import"
    assert (img["Os"], img["Architecture"]) == ("linux", A.GOARCH)
    # The layer is the tar as sent: its diff ID is the digest of the file.
    assert img["RootFS"] == {"Type": "layers", "Layers": [A.sha256(data)]}
    assert img["Size"] == sum(map(len, A.read_tar(data).values()))
    # history shows the import message as the layer's comment
    assert docker("history", "--format", "{{.Comment}}", name).stdout == "hello import\n"


def test_import_from_stdin(docker, layer_tar, unique_name, cleanup):
    path, data = layer_tar()
    name = unique_name("stdin")
    cleanup.append(name)
    image_id = imported_id(docker("import", "-c", "ENV X=1", "-", name, input=data))
    assert inspect_field(docker, name, "{{.Id}}") == image_id
    assert inspect_field(docker, name, "{{.Comment}}") == "Imported from -"
    assert inspect_field(docker, name, "{{json .Config.Env}}") == '["X=1"]'
    # no tag given: latest
    assert inspect_field(docker, name, "{{json .RepoTags}}") == json.dumps([f"{name}:latest"])


@pytest.mark.parametrize("kind", ["gzip", "zstd", "xz", "bzip2"])
def test_import_compressed(docker, layer_tar, unique_name, cleanup, kind):
    compress = {"gzip": A.gz, "zstd": A.zst, "xz": A.xz, "bzip2": A.bz}[kind]
    path, data = layer_tar(compress=compress)
    name = unique_name(kind) + ":1"
    cleanup.append(name)
    import_image(docker, path, name)
    # The diff ID is the digest of the uncompressed tar, whatever came over the wire.
    assert inspect_field(docker, name, "{{json .RootFS.Layers}}") == json.dumps([A.sha256(data)])
    if kind == "gzip":  # and through stdin
        stdin_name = unique_name("gzstdin") + ":1"
        cleanup.append(stdin_name)
        imported_id(docker("import", "-", stdin_name, input=path.read_bytes()))
        assert inspect_field(docker, stdin_name, "{{json .RootFS.Layers}}") == \
            json.dumps([A.sha256(data)])


def test_import_without_name_is_dangling(docker, layer_tar, cleanup):
    path, _ = layer_tar()
    image_id = import_image(docker, path)
    cleanup.append(image_id)
    assert inspect_field(docker, image_id, "{{json .RepoTags}}") == "[]"
    assert image_id in docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout
    assert image_id not in docker("images", "-q", "--no-trunc", "--filter",
                                  "dangling=false").stdout
    rows = docker("images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    assert f"{image_id} <none>:<none>" in rows.splitlines()


def test_reimport_same_content_new_image_one_layer(docker, daemon, layer_tar, unique_name,
                                                   cleanup):
    path, data = layer_tar()
    a, b = unique_name("re") + ":a", unique_name("re") + ":b"
    cleanup += [a, b]
    snaps0, blobs0 = store_entries(daemon, "snapshots"), store_entries(daemon,
                                                                       "content/blobs/sha256")
    id_a = import_image(docker, path, a)
    id_b = import_image(docker, path, b)
    assert id_a != id_b  # a new config (new created time): a new image
    layers = inspect_field(docker, a, "{{json .RootFS.Layers}}")
    assert layers == inspect_field(docker, b, "{{json .RootFS.Layers}}")
    new_snaps = store_entries(daemon, "snapshots") - snaps0
    new_blobs = store_entries(daemon, "content/blobs/sha256") - blobs0
    assert len(new_snaps) == 1, f"one unpacked layer expected, got {sorted(new_snaps)}"
    assert new_blobs == {A.sha256(data)[7:], id_a[7:], id_b[7:]}
    # Removing one keeps the shared layer; removing the other frees it.
    out = docker("rmi", a).stdout
    assert out == f"Untagged: {a}\nDeleted: {id_a}\n"
    out = docker("rmi", b).stdout
    assert out == f"Untagged: {b}\nDeleted: {id_b}\nDeleted: {A.sha256(data)}\n"
    assert not (store_entries(daemon, "snapshots") & new_snaps)


def test_import_invalid_change_is_refused(docker, layer_tar, unique_name):
    path, _ = layer_tar()
    before = all_ids(docker)
    name = unique_name("badchange")
    r = docker("import", "-c", "RUN echo hi", path, name, check=False)
    assert r.returncode == 1
    # dockerd 20.10 lowercases the instruction ("run is not ..."); 28 keeps it as typed.
    assert re.fullmatch(r"Error response from daemon: run is not a valid change command\n",
                        r.stderr, re.I), r.stderr
    assert all_ids(docker) == before


def test_import_uppercase_name_is_refused(docker, layer_tar):
    path, _ = layer_tar()
    r = docker("import", path, "zz-bad/Upper:1", check=False)
    assert r.returncode == 1
    assert r.stderr == ("invalid reference format: repository name (zz-bad/Upper) must be "
                        "lowercase\n")


# --- images ------------------------------------------------------------------------------------


@pytest.fixture
def three_images(docker, layer_tar, unique_name, cleanup) -> dict[str, str]:
    """repo:1, repo:2 (same image, label zz=<repo>), other:1, imported in that order with a
    distinct created time each; returns name -> ID, plus 'repo' and 'other'."""
    repo, other = unique_name("repo"), unique_name("other")
    cleanup += [f"{repo}:1", f"{repo}:2", f"{other}:1", f"{other}:old"]
    out = {"repo": repo, "other": other}
    path, _ = layer_tar()
    out[f"{other}:old"] = import_image(docker, path, f"{other}:old")
    path, _ = layer_tar()
    out[f"{repo}:1"] = import_image(docker, path, f"{repo}:1", "-c", f"LABEL zz={repo}")
    docker("tag", f"{repo}:1", f"{repo}:2")
    out[f"{repo}:2"] = out[f"{repo}:1"]
    path, _ = layer_tar()
    out[f"{other}:1"] = import_image(docker, path, f"{other}:1")
    # created times are printed the way Go prints them: no trailing zeros in the fraction
    for name in (f"{other}:old", f"{repo}:1", f"{other}:1"):
        created = inspect_field(docker, name, "{{.Created}}")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z", created), created
    return out


def test_images_quiet_notrunc_digests(docker, three_images):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    # One row per tag; -q dedups nothing (dockerd lists the image once per tag in the table).
    table = lines(docker("images", repo).stdout)
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert sorted(r.split()[:3] for r in table[1:]) == [[repo, "1", image_id[7:19]],
                                                        [repo, "2", image_id[7:19]]]
    assert set(docker("images", "-q", repo).stdout.split()) == {image_id[7:19]}
    assert set(docker("images", "-q", "--no-trunc", repo).stdout.split()) == {image_id}
    full = lines(docker("images", "--no-trunc", repo).stdout)
    assert all(image_id in row for row in full[1:])
    digests = lines(docker("images", "--digests", repo).stdout)
    assert digests[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED",
                                  "SIZE"]
    assert all(row.split()[2] == "<none>" for row in digests[1:])  # imported: no digest
    # a positional argument with a tag
    only = docker("images", "--format", "{{.Repository}}:{{.Tag}}", f"{repo}:2").stdout
    assert only == f"{repo}:2\n"


def test_images_all_and_dangling_filters(docker, three_images, layer_tar, cleanup):
    path, _ = layer_tar()
    dangling = import_image(docker, path)
    cleanup.append(dangling)
    plain = set(docker("images", "-q", "--no-trunc").stdout.split())
    everything = all_ids(docker)
    assert dangling in plain and dangling in everything  # no parent chain: listed without -a
    assert set(three_images[k] for k in three_images if ":" in k) <= plain
    only_dangling = set(docker("images", "-q", "--no-trunc", "-f", "dangling=true").stdout.split())
    assert dangling in only_dangling
    assert not only_dangling & {three_images[k] for k in three_images if ":" in k}
    tagged = set(docker("images", "-q", "--no-trunc", "-f", "dangling=false").stdout.split())
    assert dangling not in tagged
    assert {three_images[k] for k in three_images if ":" in k} <= tagged


def test_images_label_filter(docker, three_images):
    repo = three_images["repo"]
    fmt = ["--format", "{{.Repository}}:{{.Tag}}"]
    by_key = docker("images", *fmt, "--filter", "label=zz").stdout
    assert {f"{repo}:1", f"{repo}:2"} <= set(by_key.split())
    assert three_images["other"] not in by_key
    by_value = docker("images", *fmt, "--filter", f"label=zz={repo}").stdout
    assert sorted(by_value.split()) == [f"{repo}:1", f"{repo}:2"]
    assert docker("images", "-q", "--filter", f"label=zz={repo}-nope").stdout == ""


def test_images_reference_filter_globs(docker, three_images, unique_name, cleanup):
    repo, other = three_images["repo"], three_images["other"]
    nested = f"zz-ns/{repo}:1"
    cleanup.append(nested)
    docker("tag", f"{repo}:1", nested)
    fmt = ["--format", "{{.Repository}}:{{.Tag}}"]

    def refs(*patterns: str) -> list[str]:
        args = [a for p in patterns for a in ("--filter", f"reference={p}")]
        return sorted(docker("images", *fmt, *args).stdout.split())

    assert refs(repo) == [f"{repo}:1", f"{repo}:2"]
    assert refs(f"{repo}:2") == [f"{repo}:2"]
    assert refs(f"{repo[:-3]}*:1") == [f"{repo}:1"]  # "*" never crosses "/"
    assert refs(f"*/{repo}") == [nested]
    assert refs(f"zz-ns/{repo[:-2]}??:[0-9]") == [nested]
    assert refs(f"{other}:*") == [f"{other}:1", f"{other}:old"]
    # several reference filters are OR-ed; a row shows only the matching tags
    assert refs(f"{repo}:1", f"{other}:old") == [f"{other}:old", f"{repo}:1"]
    assert docker("images", "-q", "--filter", f"reference={repo}-nope*").stdout == ""
    # the positional argument of `docker images` is a reference filter too
    assert sorted(docker("images", *fmt, f"{other}").stdout.split()) == \
        [f"{other}:1", f"{other}:old"]


def test_images_before_since(docker, three_images):
    repo, other = three_images["repo"], three_images["other"]
    fmt = ["--format", "{{.Repository}}:{{.Tag}}"]
    scope = ["--filter", f"reference={repo}", "--filter", f"reference={other}"]
    before = docker("images", *fmt, *scope, "--filter", f"before={repo}:1").stdout.split()
    assert before == [f"{other}:old"]
    since = docker("images", *fmt, *scope, "--filter", f"since={repo}:2").stdout.split()
    assert since == [f"{other}:1"]
    both = docker("images", *fmt, *scope, "--filter", f"since={other}:old",
                  "--filter", f"before={other}:1").stdout.split()
    assert sorted(both) == [f"{repo}:1", f"{repo}:2"]
    r = docker("images", "--filter", "since=zz-no-such-image:9", check=False)
    assert (r.returncode, r.stderr) == (
        1, "Error response from daemon: No such image: zz-no-such-image:9\n")


def test_images_format_template_and_json(docker, three_images):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", f"{repo}:1").stdout
    assert out == f"{repo}:1 {image_id[7:19]}\n"
    out = docker("images", "--format", "json", repo).stdout
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert sorted(r["Tag"] for r in rows) == ["1", "2"]
    for row in rows:
        assert row["Repository"] == repo
        assert row["ID"] == image_id[7:19]
        assert row["Digest"] == "<none>"
        assert row["Size"].endswith("B")
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+$", row["CreatedAt"])
    table = docker("images", "--format", "table {{.Repository}}\t{{.Tag}}", f"{repo}:2").stdout
    assert table.splitlines()[1].split() == [repo, "2"]


@pytest.mark.parametrize("flt,message", [
    ("bogus=1", "invalid filter 'bogus'"),
    ("dangling=maybe", "invalid filter 'dangling=[maybe]'"),
])
def test_images_invalid_filter(docker, flt, message):
    r = docker("images", "--filter", flt, check=False)
    assert r.returncode == 1
    # dockerd 20.10 capitalises "Invalid filter"; moby 23+ does not.
    assert r.stderr.lower() == f"error response from daemon: {message}\n".lower()
    assert r.stdout == ""


# --- inspect, tag ------------------------------------------------------------------------------


def test_inspect_image(docker, three_images):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    doc = json.loads(docker("image", "inspect", f"{repo}:1").stdout)
    assert isinstance(doc, list) and len(doc) == 1
    img = doc[0]
    assert img["Id"] == image_id
    assert sorted(img["RepoTags"]) == [f"{repo}:1", f"{repo}:2"]
    assert img["RepoDigests"] == []
    assert img["Config"]["Labels"] == {"zz": repo}
    assert img["RootFS"]["Type"] == "layers" and len(img["RootFS"]["Layers"]) == 1
    assert img["Os"] == "linux" and img["Comment"] == "Imported from -"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", img["Created"])
    # the generic inspect finds images too, by name, full ID and short ID
    assert docker("inspect", "-f", "{{.Id}}", f"{repo}:2").stdout == image_id + "\n"
    assert docker("inspect", "--type", "image", "-f", "{{.Id}}", image_id).stdout == \
        image_id + "\n"
    assert docker("image", "inspect", "-f", "{{.Id}}", image_id[7:19]).stdout == image_id + "\n"
    # several at once, one per line
    other = three_images[f"{three_images['other']}:1"]
    out = docker("image", "inspect", "-f", "{{.Id}}", f"{repo}:1",
                 f"{three_images['other']}:1").stdout
    assert out == f"{image_id}\n{other}\n"


def test_inspect_missing_image(docker, three_images):
    r = docker("image", "inspect", "zz-nope-missing", check=False)
    assert r.returncode == 1
    assert r.stdout == "[]\n"
    # 20.10 prefixes "no such image: zz-nope-missing: "; the canonical part is the same.
    assert r.stderr.startswith("Error response from daemon: ")
    assert r.stderr.endswith("No such image: zz-nope-missing:latest\n")
    r = docker("inspect", "zz-nope-missing", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (1, "[]\n", "Error: No such object: "
                                                             "zz-nope-missing\n")
    # found and missing together: the found one is printed, exit 1
    repo = three_images["repo"]
    r = docker("image", "inspect", "-f", "{{.Id}}", f"{repo}:1", "zz-nope-missing:2",
               check=False)
    assert r.returncode == 1
    assert r.stdout == three_images[f"{repo}:1"] + "\n"
    assert r.stderr.endswith("No such image: zz-nope-missing:2\n")


def test_tag_variants(docker, three_images, unique_name, cleanup):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    local = f"localhost:5000/{unique_name('reg')}:y"
    default = unique_name("deflt")
    cleanup += [local, default]
    assert docker("tag", f"{repo}:1", local).stdout == ""
    assert docker("tag", image_id[7:19], default).stdout == ""
    tags = json.loads(inspect_field(docker, image_id, "{{json .RepoTags}}"))
    assert sorted(tags) == sorted([f"{repo}:1", f"{repo}:2", local, f"{default}:latest"])
    assert docker("images", "--format", "{{.Repository}}:{{.Tag}}",
                  local.rsplit(":", 1)[0]).stdout == local + "\n"
    # a tag moves to the image it is given to
    other_id = three_images[f"{three_images['other']}:1"]
    docker("tag", f"{three_images['other']}:1", f"{repo}:2")
    assert inspect_field(docker, f"{repo}:2", "{{.Id}}") == other_id
    assert f"{repo}:2" not in inspect_field(docker, image_id, "{{json .RepoTags}}")


@pytest.mark.parametrize("target,message", [
    ("zz-tag/Upper:1", 'Error parsing reference: "zz-tag/Upper:1" is not a valid repository/tag: '
                       "invalid reference format: repository name (zz-tag/Upper) must be "
                       "lowercase\n"),
    ("zz-tag/x:bad tag", 'Error parsing reference: "zz-tag/x:bad tag" is not a valid '
                         "repository/tag: invalid reference format\n"),
    ("zz-tag/x:-x", 'Error parsing reference: "zz-tag/x:-x" is not a valid repository/tag: '
                    "invalid reference format\n"),
    ("zz-tag/x@sha256:" + "0" * 64, "refusing to create a tag with a digest reference\n"),
])
def test_tag_invalid_names(docker, three_images, target, message):
    repo = three_images["repo"]
    before = inspect_field(docker, f"{repo}:1", "{{json .RepoTags}}")
    r = docker("tag", f"{repo}:1", target, check=False)
    assert (r.returncode, r.stderr) == (1, message)
    assert inspect_field(docker, f"{repo}:1", "{{json .RepoTags}}") == before


def test_tag_missing_source(docker, unique_name):
    r = docker("tag", "zz-nope-src", unique_name("dst"), check=False)
    assert (r.returncode, r.stderr) == (
        1, "Error response from daemon: No such image: zz-nope-src:latest\n")


def test_tag_invalid_through_api(dockerpy, three_images):
    """The daemon validates too (docker-py does not parse references client-side)."""
    import docker as docker_sdk

    repo = three_images["repo"]
    with pytest.raises(docker_sdk.errors.APIError) as info:
        dockerpy.api.tag(f"{repo}:1", "zz-api/Upper", "1")
    assert info.value.status_code == 400  # 20.10 said 500; moby 23+ InvalidParameter
    assert "must be lowercase" in str(info.value.explanation)
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        dockerpy.api.tag("zz-nope-api-src", "zz-api/x", "1")


# --- history -----------------------------------------------------------------------------------


@pytest.fixture
def layered_image(docker, tmp_path, unique_name, cleanup) -> tuple[str, A.Archive]:
    """A loaded two-layer image with three history entries (one empty)."""
    name = unique_name("hist") + ":1"
    cleanup.append(name)
    l1 = A.rootfs(name)
    l2 = A.tar_bytes([A.dir_("usr"), A.reg("usr/x", b"12345"), A.sym("usr/y", "x")])
    history = [
        {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created": "2024-01-01T00:00:01Z", "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
         "empty_layer": True},
        {"created": "2024-01-01T00:00:02Z", "created_by": "/bin/sh -c echo hi > /usr/x",
         "comment": "second"},
    ]
    archive = A.docker_archive([l1, A.gz(l2)], [name], config_kwargs={"history": history})
    path = tmp_path / "hist.tar"
    path.write_bytes(archive.data)
    assert docker("load", "-i", path).stdout == f"Loaded image: {name}\n"
    return name, archive


def test_history(docker, layered_image):
    name, archive = layered_image
    size1 = A.marker_size(name)
    table = docker("history", name).stdout.splitlines()
    assert table[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert table[1].startswith(archive.image_id[7:19] + " ")
    assert table[2].startswith("<missing> ") and table[3].startswith("<missing> ")
    assert re.search(r"\s6B\s+second$", table[1])  # 5 bytes + a 1-byte symlink
    fmt = "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}|{{.CreatedAt}}"
    out = docker("history", "--no-trunc", "--human=false", "--format", fmt, name).stdout
    assert out.splitlines() == [
        f"{archive.image_id}|/bin/sh -c echo hi > /usr/x|6|second|2024-01-01T00:00:02Z",
        '<missing>|/bin/sh -c #(nop)  CMD ["sh"]|0||2024-01-01T00:00:01Z',
        f"<missing>|/bin/sh -c #(nop) ADD file:abc in / |{size1}||2024-01-01T00:00:00Z",
    ]
    assert docker("history", "-q", name).stdout.split() == [
        archive.image_id[7:19], "<missing>", "<missing>"]
    assert docker("history", "-q", "--no-trunc", name).stdout.split()[0] == archive.image_id
    out = docker("history", "--format", "json", name).stdout
    rows = [json.loads(ln) for ln in out.splitlines()]
    assert [r["CreatedBy"] for r in rows][0] == "/bin/sh -c echo hi > /usr/x"
    # long CREATED BY is cut to 45 columns with an ellipsis unless --no-trunc
    r = docker("history", "--format", "{{.CreatedBy}}", name).stdout.splitlines()
    assert r[0] == "/bin/sh -c echo hi > /usr/x"
    r = docker("history", "nope-zz-hist", check=False)
    assert (r.returncode, r.stderr) == (
        1, "Error response from daemon: No such image: nope-zz-hist:latest\n")


# --- rmi ---------------------------------------------------------------------------------------


def test_rmi_by_tag_with_other_tags_only_untags(docker, three_images):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    assert docker("rmi", f"{repo}:2").stdout == f"Untagged: {repo}:2\n"
    assert inspect_field(docker, image_id, "{{json .RepoTags}}") == json.dumps([f"{repo}:1"])
    # the last tag: untag and delete, and the layer nobody else uses
    layer = json.loads(inspect_field(docker, image_id, "{{json .RootFS.Layers}}"))[0]
    assert docker("rmi", f"{repo}:1").stdout == (
        f"Untagged: {repo}:1\nDeleted: {image_id}\nDeleted: {layer}\n")
    r = docker("image", "inspect", image_id, check=False)
    assert r.returncode == 1


def test_rmi_by_id_multiple_repositories_needs_force(docker, three_images, unique_name, cleanup):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    elsewhere = unique_name("elsewhere") + ":x"
    cleanup.append(elsewhere)
    docker("tag", f"{repo}:1", elsewhere)
    for ref in (image_id, image_id[7:19]):
        r = docker("rmi", ref, check=False)
        assert (r.returncode, r.stdout) == (1, "")
        assert r.stderr == (f"Error response from daemon: conflict: unable to delete "
                            f"{image_id[7:19]} (must be forced) - image is referenced in multiple "
                            "repositories\n")
    assert inspect_field(docker, image_id, "{{.Id}}") == image_id
    out = docker("rmi", "-f", image_id[7:19]).stdout.splitlines()
    assert sorted(out[:3]) == sorted([f"Untagged: {repo}:1", f"Untagged: {repo}:2",
                                      f"Untagged: {elsewhere}"])
    assert out[3] == f"Deleted: {image_id}"
    assert len(out) == 5 and out[4].startswith("Deleted: sha256:")


def test_rmi_by_id_two_tags_of_one_repository_needs_force(docker, three_images):
    """dockerd's isSingleReference: by ID, one repository AND at most one tag."""
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    r = docker("rmi", image_id, check=False)
    assert (r.returncode, r.stderr) == (
        1, f"Error response from daemon: conflict: unable to delete {image_id[7:19]} (must be "
           "forced) - image is referenced in multiple repositories\n")
    docker("rmi", f"{repo}:2")
    # a single tag left: removing by ID untags it and deletes the image, no force needed
    out = docker("rmi", image_id[7:19]).stdout.splitlines()
    assert out[:2] == [f"Untagged: {repo}:1", f"Deleted: {image_id}"]


def test_rmi_several_and_missing(docker, three_images):
    repo, other = three_images["repo"], three_images["other"]
    r = docker("rmi", f"{repo}:2", "zz-missing-rmi", f"{other}:old", check=False)
    assert r.returncode == 1
    old_id = three_images[f"{other}:old"]
    assert r.stdout.splitlines()[:3] == [f"Untagged: {repo}:2", f"Untagged: {other}:old",
                                         f"Deleted: {old_id}"]
    assert r.stderr == "Error response from daemon: No such image: zz-missing-rmi:latest\n"
    r = docker("rmi", "zz-missing-rmi:3", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "Error response from daemon: No such image: zz-missing-rmi:3\n")
    # -f ignores missing images (the CLI still prints the error), exit 0
    r = docker("rmi", "-f", "zz-missing-rmi:4", check=False)
    assert r.returncode == 0
    assert r.stderr == "Error response from daemon: No such image: zz-missing-rmi:4\n"


def test_rmi_through_docker_py(dockerpy, docker, three_images):
    import docker as docker_sdk

    repo = three_images["repo"]
    dockerpy.images.remove(f"{repo}:2")
    assert dockerpy.images.get(f"{repo}:1").tags == [f"{repo}:1"]
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        dockerpy.images.remove("zz-nope-py:1")


# --- prune -------------------------------------------------------------------------------------


def test_image_prune_dangling_only(docker, three_images, layer_tar, cleanup):
    path, data = layer_tar()
    dangling = import_image(docker, path)
    cleanup.append(dangling)
    tagged = {three_images[k] for k in three_images if ":" in k}
    out = docker("image", "prune", "-f").stdout
    assert out.startswith("Deleted Images:\n")
    assert f"deleted: {dangling}\n" in out
    assert f"deleted: {A.sha256(data)}\n" in out  # its layer
    assert re.search(r"\nTotal reclaimed space: \d+(\.\d+)?[kMG]?B\n$", out)
    assert not any(t in out for t in tagged)
    remaining = all_ids(docker)
    assert dangling not in remaining and tagged <= remaining
    # nothing left to prune
    assert docker("image", "prune", "-f").stdout == "Total reclaimed space: 0B\n"


def test_image_prune_all_with_label_filter(docker, three_images):
    repo = three_images["repo"]
    image_id = three_images[f"{repo}:1"]
    out = docker("image", "prune", "-a", "-f", "--filter", f"label=zz={repo}").stdout
    body = out.splitlines()
    assert body[0] == "Deleted Images:"
    assert sorted(body[1:3]) == [f"untagged: {repo}:1", f"untagged: {repo}:2"]
    assert body[3] == f"deleted: {image_id}"
    assert image_id not in all_ids(docker)
    # the unlabelled tagged images stay
    assert three_images[f"{three_images['other']}:1"] in all_ids(docker)
    r = docker("image", "prune", "-f", "--filter", "bogus=1", check=False)
    assert r.returncode == 1 and "invalid filter 'bogus'" in r.stderr.lower()


# --- events ------------------------------------------------------------------------------------


def _now() -> str:
    return f"{time.time():.9f}"


def test_image_events(docker, tmp_path, layer_tar, unique_name):
    name = unique_name("ev")
    path, _ = layer_tar()
    since = _now()
    image_id = import_image(docker, path, f"{name}:1", "-c", "LABEL zzev=yes")
    docker("tag", f"{name}:1", f"{name}:2")
    docker("save", "-o", tmp_path / "ev.tar", f"{name}:1")
    docker("rmi", f"{name}:2")
    docker("rmi", f"{name}:1")
    docker("load", "-i", tmp_path / "ev.tar")
    docker("rmi", f"{name}:1")
    time.sleep(0.05)
    until = _now()

    def events(*args: str) -> list[str]:
        out = docker("events", "--since", since, "--until", until, *args, timeout=30).stdout
        return [ln for ln in out.splitlines() if image_id in ln]

    got = events()
    parsed = [EVENT_LINE.match(ln) for ln in got]
    assert all(parsed), got
    assert [(m[2], m[3], m[4]) for m in parsed] == [
        ("tag", image_id, f"name={name}:1, zzev=yes"),
        ("import", image_id, f"name={image_id}, zzev=yes"),
        ("tag", image_id, f"name={name}:2, zzev=yes"),
        ("save", image_id, f"name={image_id}, zzev=yes"),
        ("untag", image_id, f"name={image_id}, zzev=yes"),
        ("untag", image_id, f"name={image_id}, zzev=yes"),
        ("delete", image_id, f"name={image_id}"),  # the image is gone: no labels (dockerd)
        ("load", image_id, f"name={image_id}, zzev=yes"),
        ("untag", image_id, f"name={image_id}, zzev=yes"),
        ("delete", image_id, f"name={image_id}"),
    ]
    stamps = [m[1] for m in parsed]
    assert stamps == sorted(stamps)

    assert [EVENT_LINE.match(ln)[4] for ln in events("--filter", "event=tag")] == [
        f"name={name}:1, zzev=yes", f"name={name}:2, zzev=yes"]
    assert [EVENT_LINE.match(ln)[2] for ln in events("--filter", "event=untag",
                                                   "--filter", "event=delete")] == [
        "untag", "untag", "delete", "untag", "delete"]
    assert events("--filter", "type=container") == []
    assert len(events("--filter", "type=image")) == 10
    assert len(events("--filter", f"image={name}:2")) == 1
    docs = [json.loads(ln) for ln in events("--filter", "type=image", "--format", "{{json .}}")]
    assert len(docs) == 10
    first = docs[0]
    assert first["Type"] == "image" and first["Action"] == "tag"
    assert first["Actor"] == {"ID": image_id, "Attributes": {"name": f"{name}:1", "zzev": "yes"}}
    assert first["scope"] == "local"
    assert first["time"] == first["timeNano"] // 10**9
    assert "status" in first and first["id"] == image_id  # legacy fields at API 1.50
    custom = events("--filter", "event=load", "--format",
                    "{{.Type}} {{.Action}} {{.Actor.ID}} {{.Actor.Attributes.zzev}}")
    assert custom == [f"image load {image_id} yes"]


def test_events_until_in_the_past_returns_at_once(docker):
    t = time.time()
    start = time.monotonic()
    r = docker("events", "--since", f"{t - 5:.0f}", "--until", f"{t - 4:.0f}",
               "--filter", "type=image", timeout=20)
    assert r.returncode == 0
    assert time.monotonic() - start < 10
