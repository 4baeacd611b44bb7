"""A container's files: docker cp (archive API), export, diff (changes) and commit.

Through the stock CLI where it has a command, docker-py for the raw archive API (the stat
header, hostile tars), and the pure parts directly (Go FileMode bits and trailing-dot rules
in engine/containers/gopath.py, the overlay diff on hand-made layer directories in
engine/diff.py, the commit config merge in engine/containers/commit.py).
Messages are dockerd's (moby daemon/archive*.go, daemon/errors.go).
"""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_tests.conftest import DOCKER_CLI
from dockerd_py.engine import diff
from dockerd_py.engine.containers import commit, gopath

ADDED, MODIFIED, DELETED = "A", "C", "D"


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def containers(docker) -> Iterator[list[str]]:
    """Names appended here are removed (rm -f) after the test."""
    names: list[str] = []
    yield names
    if names:
        docker("rm", "-f", *names, check=False)


@pytest.fixture
def images(docker) -> Iterator[list[str]]:
    refs: list[str] = []
    yield refs
    if refs:
        docker("rmi", "-f", *refs, check=False)


@pytest.fixture
def sleeper(docker, busybox_image, containers, unique_name) -> str:
    """A running busybox container (name)."""
    name = unique_name("fs")
    containers.append(name)
    docker("run", "-d", "--name", name, busybox_image, "sleep", "300")
    return name


def tar_bytes(*entries: tuple[str, str, str]) -> bytes:
    """(kind, name, data-or-link) -> an uncompressed tar; kind: file, dir, sym, hard."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, extra in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind == "file":
                info.size = len(extra.encode())
                t.addfile(info, io.BytesIO(extra.encode()))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE,
                         "hard": tarfile.LNKTYPE}[kind]
            info.linkname = extra
            t.addfile(info)
    return buf.getvalue()


def names_in(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return t.getnames()


def cp_out(daemon, source: str) -> bytes:
    """docker cp SOURCE - : the tar, as bytes (the fixture's runner decodes text)."""
    return subprocess.run([DOCKER_CLI, "cp", source, "-"], env=daemon.cli_env(),
                          capture_output=True, check=True, timeout=60).stdout


def cat(daemon, name: str, path: str) -> str:
    """A file of the container, read with docker cp (works stopped or running)."""
    with tarfile.open(fileobj=io.BytesIO(cp_out(daemon, f"{name}:{path}"))) as t:
        member = t.next()
        assert member is not None
        f = t.extractfile(member)
        assert f is not None
        return f.read().decode()


def mounted_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


# --- docker cp ---------------------------------------------------------------------------------


def test_cp_files_and_directories_both_ways(docker, sleeper, tmp_path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello\n")
    (src / "sub" / "b.sh").write_text("#!/bin/sh\n")
    (src / "sub" / "b.sh").chmod(0o750)
    os.symlink("a.txt", src / "link")

    docker("cp", src, f"{sleeper}:/tmp/")  # into an existing directory: /tmp/src
    docker("cp", src / "a.txt", f"{sleeper}:/tmp/renamed.txt")  # to a new file name
    out = docker("exec", sleeper, "sh", "-c",
                 "cat /tmp/src/a.txt /tmp/renamed.txt; stat -c '%a' /tmp/src/sub/b.sh; "
                 "readlink /tmp/src/link").stdout
    assert out == "hello\nhello\n750\na.txt\n"

    back = tmp_path / "back"
    docker("cp", f"{sleeper}:/tmp/src", back)
    assert (back / "a.txt").read_text() == "hello\n"
    assert stat.S_IMODE((back / "sub" / "b.sh").stat().st_mode) == 0o750
    assert os.readlink(back / "link") == "a.txt"
    docker("cp", f"{sleeper}:/tmp/renamed.txt", tmp_path / "one.txt")
    assert (tmp_path / "one.txt").read_text() == "hello\n"
    # "dir/." copies the contents into an existing directory.
    (tmp_path / "contents").mkdir()
    docker("cp", f"{sleeper}:/tmp/src/.", tmp_path / "contents")
    assert sorted(os.listdir(tmp_path / "contents")) == ["a.txt", "link", "sub"]


def test_cp_tar_streams_on_stdout_and_stdin(docker, daemon, sleeper) -> None:
    names = names_in(cp_out(daemon, f"{sleeper}:/etc"))
    assert names[0] == "etc" and "etc/passwd" in names
    assert "etc/hostname" in names  # the daemon-managed files are seen, as in dockerd

    data = tar_bytes(("dir", "d", ""), ("file", "d/x.txt", "from stdin\n"))
    docker("cp", "-", f"{sleeper}:/tmp", input=data)
    assert docker("exec", sleeper, "cat", "/tmp/d/x.txt").stdout == "from stdin\n"
    r = docker("cp", "-", f"{sleeper}:/tmp/d/x.txt", input=data, check=False)
    assert r.returncode != 0 and "must be a directory" in r.stderr


def test_cp_archive_mode_uses_the_container_user(docker, daemon, busybox_image, containers,
                                                 unique_name, tmp_path) -> None:
    name = unique_name("fs")
    containers.append(name)
    docker("create", "--name", name, "-u", "1000", busybox_image, "true")
    f = tmp_path / "owned.txt"
    f.write_text("x")
    os.chown(f, 4321, 4321)
    docker("cp", "-a", f, f"{name}:/tmp/with-a.txt")
    docker("cp", f, f"{name}:/tmp/without-a.txt")
    with tarfile.open(fileobj=io.BytesIO(cp_out(daemon, f"{name}:/tmp"))) as t:
        owners = {m.name: (m.uid, m.gid) for m in t.getmembers()}
    assert owners["tmp/with-a.txt"] == (1000, 1000)  # -a: Config.User from /etc/passwd
    assert owners["tmp/without-a.txt"] == (4321, 4321)  # else: the tar's own ids


def test_cp_into_a_stopped_container_and_its_volume(docker, daemon, busybox_image, containers,
                                                   unique_name, tmp_path) -> None:
    name, vol = unique_name("fs"), unique_name("vol")
    containers.append(name)
    docker("create", "--name", name, "-v", f"{vol}:/data", busybox_image,
           "cat", "/in-root.txt", "/data/in-volume.txt")
    try:
        (tmp_path / "in-root.txt").write_text("root\n")
        (tmp_path / "in-volume.txt").write_text("volume\n")
        docker("cp", tmp_path / "in-root.txt", f"{name}:/")
        docker("cp", tmp_path / "in-volume.txt", f"{name}:/data/")
        cid = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
        assert mounted_under(daemon.data_root / "containers" / cid) == []
        assert (daemon.data_root / "volumes" / vol / "_data" / "in-volume.txt").read_text() \
            == "volume\n"
        assert docker("start", "-a", name).stdout == "root\nvolume\n"
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", vol, check=False)


def test_cp_reaches_a_bind_mount_of_a_running_container(docker, daemon, busybox_image,
                                                         containers, unique_name,
                                                         tmp_path) -> None:
    name = unique_name("fs")
    containers.append(name)
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    docker("run", "-d", "--name", name, "-v", f"{host_dir}:/mnt/b", busybox_image,
           "sleep", "300")
    (tmp_path / "f.txt").write_text("through the bind\n")
    docker("cp", tmp_path / "f.txt", f"{name}:/mnt/b/")
    assert (host_dir / "f.txt").read_text() == "through the bind\n"
    (host_dir / "host.txt").write_text("from the host\n")
    assert cat(daemon, name, "/mnt/b/host.txt") == "from the host\n"


def test_cp_errors(docker, busybox_image, containers, unique_name, tmp_path) -> None:
    name, vol = unique_name("fs"), unique_name("vol")
    containers.append(name)
    docker("create", "--name", name, "--read-only", "-v", f"{vol}:/ro:ro", busybox_image, "true")
    try:
        f = tmp_path / "f.txt"
        f.write_text("x")
        r = docker("cp", f"{name}:/nope", tmp_path, check=False)
        assert r.stderr.strip() == \
            f"Error response from daemon: Could not find the file /nope in container {name}"
        r = docker("cp", f, f"{name}:/tmp/", check=False)
        assert r.stderr.strip() == "Error response from daemon: container rootfs is marked " \
                                   "read-only"
        r = docker("cp", f, f"{name}:/ro/", check=False)
        assert r.stderr.strip() == "Error response from daemon: mounted volume is marked " \
                                   "read-only"
        r = docker("cp", f, f"{name}:/etc/passwd/x", check=False)
        assert r.stderr.strip() == "Error response from daemon: extraction point is not a " \
                                   "directory"
        r = docker("cp", f, "nosuchcontainer-fs:/tmp", check=False)
        assert "No such container: nosuchcontainer-fs" in r.stderr
    finally:
        docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", vol, check=False)


def test_archive_stat_header(dockerpy, sleeper) -> None:
    api = dockerpy.api
    dockerpy.containers.get(sleeper).exec_run("sh -c 'ln -s /etc/passwd /tmp/pl; "
                                              "mkdir -m 1777 /tmp/sticky'")

    def head(path: str) -> dict:
        r = api.head(api._url("/containers/{0}/archive", sleeper), params={"path": path})
        assert r.status_code == 200, r.status_code
        return json.loads(base64.standard_b64decode(r.headers["X-Docker-Container-Path-Stat"]))

    etc = head("/etc/")
    assert etc["name"] == "etc" and etc["mode"] == (1 << 31) | 0o755 and etc["linkTarget"] == ""
    assert etc["mtime"].endswith("Z")
    passwd = head("/etc/passwd")
    assert (passwd["name"], passwd["mode"]) == ("passwd", 0o644)
    assert passwd["size"] == len(dockerpy.containers.get(sleeper).exec_run(
        "cat /etc/passwd").output)
    link = head("/tmp/pl")
    assert link["mode"] & (1 << 27) and link["linkTarget"] == "/etc/passwd"
    assert head("/tmp/sticky")["mode"] == (1 << 31) | (1 << 20) | 0o777
    assert head("/")["name"] == "/"
    r = api.head(api._url("/containers/{0}/archive", sleeper), params={"path": "/no"})
    assert r.status_code == 404
    r = api.get(api._url("/containers/{0}/archive", sleeper))
    assert r.status_code == 400 and r.json() == {"message": "bad parameter: path cannot be empty"}

    stream, st = api.get_archive(sleeper, "/etc/passwd")
    assert st["name"] == "passwd"
    assert names_in(b"".join(stream)) == ["passwd"]


# --- hostile archives ----------------------------------------------------------------------------


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_put_archive_cannot_escape_the_container(docker, daemon, dockerpy, busybox_image,
                                                 containers, unique_name, running) -> None:
    name = unique_name("fs")
    containers.append(name)
    tag = uuid.uuid4().hex[:10]
    if running:
        docker("run", "-d", "--name", name, busybox_image, "sleep", "300")
    else:
        docker("create", "--name", name, busybox_image, "true")
    api = dockerpy.api
    # A symlink inside the container pointing at the host's root... were it resolved there.
    api.put_archive(name, "/", tar_bytes(("sym", "escape", "/"), ("sym", "up", "../../../..")))
    sentinels = [Path(f"/tmp/dpy-sentinel-{tag}-{i}") for i in range(8)]
    accepted = [
        ("/escape", tar_bytes(("file", f"tmp/dpy-sentinel-{tag}-0", "x"))),
        ("/", tar_bytes(("file", f"escape/tmp/dpy-sentinel-{tag}-1", "x"))),
        ("/up", tar_bytes(("file", f"tmp/dpy-sentinel-{tag}-2", "x"))),
        ("/tmp", tar_bytes(("sym", "l", "/"), ("file", f"l/tmp/dpy-sentinel-{tag}-3", "x"))),
        ("/tmp", tar_bytes(("sym", "r", "../../../../.."),
                           ("file", f"r/tmp/dpy-sentinel-{tag}-4", "x"))),
    ]
    for path, data in accepted:
        assert api.put_archive(name, path, data)
    refused = [
        (tar_bytes(("file", f"../../../../../tmp/dpy-sentinel-{tag}-5", "x")),
         'invalid entry name "../../../../../tmp/dpy-sentinel-'),
        (tar_bytes(("hard", f"h-{tag}", "../../../../etc/passwd")),
         'invalid hardlink target "../../../../etc/passwd"'),
    ]
    for data, message in refused:
        with pytest.raises(Exception) as info:
            api.put_archive(name, "/tmp", data)
        assert message in str(info.value)
    assert [p for p in sentinels if p.exists()] == []
    # Where the accepted ones went: inside the container.
    found = {n for n in names_in(cp_out(daemon, f"{name}:/tmp")) if tag in n}
    assert found == {f"tmp/dpy-sentinel-{tag}-0", f"tmp/dpy-sentinel-{tag}-1",
                     f"tmp/dpy-sentinel-{tag}-2", f"tmp/tmp/dpy-sentinel-{tag}-3",
                     f"tmp/tmp/dpy-sentinel-{tag}-4"}


# --- export, diff, commit ----------------------------------------------------------------------


def test_export_then_import_gives_a_working_image(docker, daemon, sleeper, images,
                                                  unique_name, tmp_path) -> None:
    docker("exec", sleeper, "sh", "-c", "echo exported > /marker")
    out = tmp_path / "c.tar"
    with open(out, "wb") as f:  # docker export c > f.tar
        subprocess.run([DOCKER_CLI, "export", sleeper], env=daemon.cli_env(), stdout=f,
                       check=True, timeout=60)
    names = names_in(out.read_bytes())
    assert "marker" in names and "bin/busybox" in names and "etc" in names
    assert not any(n in ("", ".") or n.startswith(("/", "./")) for n in names)
    ref = unique_name("img") + ":1"
    images.append(ref)
    docker("import", out, ref)
    assert docker("run", "--rm", ref, "cat", "/marker").stdout == "exported\n"


def test_diff_reports_changes_like_dockerd(docker, busybox_image, containers,
                                           unique_name) -> None:
    name = unique_name("fs")
    containers.append(name)
    docker("run", "--name", name, busybox_image, "sh", "-c",
           "echo x > /etc/newfile; rm /bin/ls; mkdir -p /opt/d; echo y > /opt/d/f; "
           "chmod 750 /root; rm -rf /usr/sbin; mkdir /usr/sbin; touch /usr/sbin/only")
    lines = docker("diff", name).stdout.splitlines()
    # busybox has no /etc/hosts: the runtime creates it as a mount point, not a change.
    assert all("/etc/host" not in line and "resolv" not in line for line in lines)
    expected = ["C /bin", "D /bin/ls", "C /etc", "A /etc/newfile", "A /opt", "A /opt/d",
                "A /opt/d/f", "C /root", "C /usr", "C /usr/sbin", "A /usr/sbin/only"]
    assert [line for line in lines if not line.startswith("D /usr/sbin/")] == expected
    deleted = [line for line in lines if line.startswith("D /usr/sbin/")]
    assert deleted and "D /usr/sbin/only" not in deleted  # the opaque directory's old entries

    fresh = unique_name("fs")
    containers.append(fresh)
    docker("create", "--name", fresh, busybox_image)
    assert docker("diff", fresh).stdout == ""


def test_commit_makes_a_child_image(docker, busybox_image, containers, images,
                                    unique_name) -> None:
    name = unique_name("fs")
    containers.append(name)
    docker("run", "--name", name, busybox_image, "sh", "-c",
           "echo data > /committed.txt; rm /bin/ls")
    ref = unique_name("img") + ":1"
    images.append(ref)
    image_id = docker("commit", "-c", 'CMD ["echo","committed"]', "-m", "a message",
                      "-a", "someone", name, ref).stdout.strip()
    assert image_id.startswith("sha256:")
    assert docker("run", "--rm", ref).stdout == "committed\n"
    r = docker("run", "--rm", ref, "sh", "-c", "cat /committed.txt; ls /bin/ls", check=False)
    assert r.stdout == "data\n" and "No such file" in r.stderr

    info = json.loads(docker("image", "inspect", ref).stdout)[0]
    base = json.loads(docker("image", "inspect", busybox_image).stdout)[0]
    assert info["Id"] == image_id and info["Parent"] == base["Id"]
    assert info["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    assert info["Config"]["Cmd"] == ["echo", "committed"]
    assert (info["Author"], info["Comment"]) == ("someone", "a message")
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}",
                     ref).stdout.splitlines()
    assert history[0] == "sh -c echo data > /committed.txt; rm /bin/ls|a message"

    # Nothing changed: no new layer; the repository gets :latest.
    same = unique_name("img")
    images.append(same + ":latest")
    plain = unique_name("fs")
    containers.append(plain)
    docker("create", "--name", plain, ref)
    docker("commit", plain, same)
    again = json.loads(docker("image", "inspect", same + ":latest").stdout)[0]
    assert again["RootFS"]["Layers"] == info["RootFS"]["Layers"]
    assert again["Config"]["Cmd"] == ["echo", "committed"]


def test_commit_pauses_a_running_container_and_reports_events(docker, sleeper, images,
                                                              unique_name) -> None:
    ref = unique_name("img") + ":2"
    images.append(ref)
    since = time.time()
    image_id = docker("commit", sleeper, ref).stdout.strip()
    assert docker("inspect", "-f", "{{.State.Status}}", sleeper).stdout.strip() == "running"
    out = docker("events", "--since", f"{since - 1:.3f}", "--until",
                 f"{time.time():.3f}", "--filter", f"container={sleeper}",
                 "--format", "{{.Action}} {{index .Actor.Attributes \"imageID\"}}").stdout
    actions = [line.split()[0] for line in out.splitlines()]
    assert actions[-3:] == ["pause", "unpause", "commit"]
    assert out.splitlines()[-1] == f"commit {image_id}"
    r = docker("commit", "nosuchcontainer-fs", check=False)
    assert "No such container: nosuchcontainer-fs" in r.stderr


# --- pure parts --------------------------------------------------------------------------------


def test_go_file_mode_bits() -> None:
    assert gopath.go_file_mode(stat.S_IFDIR | 0o755) == 0x80000000 | 0o755
    assert gopath.go_file_mode(stat.S_IFLNK | 0o777) == 0x8000000 | 0o777
    assert gopath.go_file_mode(stat.S_IFCHR | 0o620) == 0x4000000 | 0x200000 | 0o620
    assert gopath.go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == 0x800000 | 0o755
    assert gopath.go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == 0x80000000 | 0x100000 | 0o777


@pytest.mark.parametrize("original,cleaned,expected", [
    ("/etc/.", "/etc", "/etc/."), ("/etc/", "/etc", "/etc/"), ("etc", "/etc", "/etc"),
    ("/", "/", "/"), ("/.", "/", "/."), ("a/b/../c/", "/a/c", "/a/c/")])
def test_trailing_dot_and_separator(original: str, cleaned: str, expected: str) -> None:
    assert gopath.absolute(original) == cleaned
    assert gopath.preserve_trailing(cleaned, original) == expected
    assert gopath.go_base("/etc/") == "etc" and gopath.go_base("/") == "/" \
        and gopath.go_base("") == "."


def test_diff_dirs_on_hand_made_layers(tmp_path: Path) -> None:
    base, mid, upper = tmp_path / "base", tmp_path / "mid", tmp_path / "upper"
    for d in ("etc", "usr/lib", "var/cache", "opt"):
        (base / d).mkdir(parents=True)
    (base / "etc/passwd").write_text("root\n")
    (base / "usr/lib/a").write_text("a")
    (base / "usr/lib/b").write_text("b")
    (base / "var/cache/c").write_text("c")
    (base / "opt/keep").write_text("k")
    mid.mkdir()
    (mid / "usr/lib").mkdir(parents=True)
    os.mknod(mid / "usr/lib/b", stat.S_IFCHR, 0)  # the image deleted b
    for d in ("etc", "usr/lib", "var/cache", "opt", "proc"):
        (upper / d).mkdir(parents=True)
    for d in ("etc", "usr", "usr/lib", "var", "var/cache", "opt"):
        os.chmod(upper / d, os.stat(base / d).st_mode)
    (upper / "etc/passwd").write_text("root\nnew\n")     # modified
    (upper / "etc/hosts").write_text("")                 # a runtime mount point
    (upper / "usr/lib/new").write_text("n")              # added
    os.mknod(upper / "usr/lib/a", stat.S_IFCHR, 0)       # deleted
    os.setxattr(upper / "var/cache", "trusted.overlay.opaque", b"y")  # rm -rf + mkdir
    (upper / "var/cache/fresh").write_text("f")
    os.chmod(upper / "opt", 0o700)                        # directory metadata only
    changes = [f"{'CAD'[c.kind]} {c.path}"
               for c in diff.diff_dirs(str(upper), [str(mid), str(base)])]
    assert changes == ["C /etc", "C /etc/passwd", "C /opt", "C /usr", "C /usr/lib",
                       "D /usr/lib/a", "A /usr/lib/new", "C /var", "C /var/cache",
                       "A /var/cache/fresh", "D /var/cache/c"]
    # No lower layers: everything is new, but /etc (an init-layer path) only "holds" changes.
    fresh = [f"{'CAD'[c.kind]} {c.path}" for c in diff.diff_dirs(str(base), [])]
    assert fresh[:2] == ["C /etc", "A /etc/passwd"] and len(fresh) == 11
    assert all(line.startswith("A ") for line in fresh[1:])


def test_commit_config_merge() -> None:
    container = {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"l": "c"},
                 "ExposedPorts": {"80/tcp": {}}, "WorkingDir": "/w", "User": "u",
                 "Hostname": "abc", "Image": "busybox"}
    merged = commit.merge_commit_config({"Env": ["A=2"], "Labels": {"m": "n"}}, container)
    assert merged["Env"] == ["A=2", "PATH=/bin"]
    assert merged["Cmd"] == ["sh"] and merged["WorkingDir"] == "/w" and merged["User"] == "u"
    assert merged["Labels"] == {"l": "c", "m": "n"}
    assert commit.image_config(merged) == {
        "User": "u", "ExposedPorts": {"80/tcp": {}}, "Env": ["A=2", "PATH=/bin"],
        "Cmd": ["sh"], "WorkingDir": "/w", "Labels": {"l": "c", "m": "n"}}
    # An Entrypoint of the new config keeps the container's Cmd out.
    assert commit.merge_commit_config({"Entrypoint": ["x"]}, container).get("Cmd") is None


def test_put_archive_options_and_compression(dockerpy, sleeper) -> None:
    api = dockerpy.api
    url = api._url("/containers/{0}/archive", sleeper)
    file_over_dir = tar_bytes(("file", "tmp", "not a directory"))
    r = api.put(url, params={"path": "/", "noOverwriteDirNonDir": "true"}, data=file_over_dir)
    assert r.status_code == 500
    assert r.json() == {"message": 'cannot overwrite directory "tmp" with non-directory "/"'}
    api.put_archive(sleeper, "/tmp", tar_bytes(("file", "f", "x")))
    dir_over_file = tar_bytes(("dir", "f", ""))
    r = api.put(url, params={"path": "/tmp", "noOverwriteDirNonDir": "1"}, data=dir_over_file)
    assert r.json() == {"message": 'cannot overwrite non-directory "f" with directory "/tmp"'}
    r = api.put(url, params={"path": "/tmp"}, data=dir_over_file)  # allowed without the flag
    assert r.status_code == 200
    r = api.put(url, params={"path": "/tmp"}, data=tar_bytes(("hard", "h", "missing")))
    assert r.status_code == 404
    assert r.json()["message"] == f"Could not find the file /tmp in container {sleeper}"

    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as t:
        info = tarfile.TarInfo("gz.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"gz\n"))
    assert api.put_archive(sleeper, "/tmp", packed.getvalue())
    assert dockerpy.containers.get(sleeper).exec_run("cat /tmp/gz.txt").output == b"gz\n"
    assert api.put(url, params={"path": "/tmp"}, data=b"").status_code == 200  # no entries
    r = api.put(url, params={"path": "/tmp"}, data=b"x" * 1024)
    assert r.status_code == 400 and r.json()["message"].startswith("archive/tar: ")
