"""Hostile images: what a layer may legally hold, pushed through everything that reads an
image's or a container's files.

The corpus, built offline with tarfile on top of the busybox layer:

  * `nodes`: block devices (8 0, and the host's own root disk), character devices (1 5,
    1 3), a FIFO, symlink loops, absolute symlinks (to /etc/shadow, to a sentinel directory
    of the host), setuid/setgid files; VOLUME /data over a directory holding the same;
  * `/etc/passwd` as a FIFO, a directory, a 100 MB file, /dev/zero, a block device, a
    symlink loop, an absolute symlink to /etc/shadow; `/etc/group` as a FIFO.

They go through load, import, push/pull (Debian's docker-registry), create/start with and
without `-u`, `exec -u`, build (`FROM`, `USER`, `COPY --from`, `COPY --chown`, RUN under a
VOLUME), `docker cp` both ways (also `-a`), commit and export. Throughout, a thread pings
the daemon: every GET /_ping must answer within 1 s; nothing outside the data root may
change (the host's /etc files and a sentinel directory the images point at); a refusal is
a 4xx with dockerd's (runc's) wording, everything else succeeds as with dockerd.

A daemon that opens what an image holds reads the host's disk, fills its data root from
/dev/zero, or blocks forever on a FIFO: every call here therefore has a timeout, and the
build test that would read the host's disk (`test_build_host_devices_under_a_volume`) is
the one not to run against such a daemon.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import hashlib
import io
import os
import socket
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker as docker_sdk
import pytest

from . import archives as A
from .conftest import DOCKER_CLI
from .registry.fixtures import Registry

HANG = 90  # seconds: far beyond any of these calls on a working daemon
PING_BOUND = 1.0
SENTINEL = Path(f"/tmp/dpy-hostile-sentinel-{os.getpid()}")  # a host directory links name
NO_SUCH_BLOCK = (8, 0)  # as the issue names it; absent on most hosts


def _block_exists(numbers: tuple[int, int]) -> bool:
    return os.path.exists(f"/sys/dev/block/{numbers[0]}:{numbers[1]}")


# --- the corpus ----------------------------------------------------------------------------


def _node(name: str, kind: bytes, major: int = 0, minor: int = 0, mode: int = 0o644) -> A.Entry:
    e = A.reg(name, mode=mode)
    e.info.type, e.info.devmajor, e.info.devminor = kind, major, minor
    return e


def _host_disk() -> tuple[int, int] | None:
    """The block device holding the host's root filesystem, when it is one."""
    dev = os.stat("/").st_dev
    found = (os.major(dev), os.minor(dev))
    return found if _block_exists(found) else None


def _nodes(d: str, *, harmless: bool) -> list[A.Entry]:
    """Nodes, links and set-id files under d. harmless: nothing a daemon that opens device
    nodes would hurt the host with (no /dev/zero, no disk)."""
    entries = [A.dir_(d), A.dir_(f"{d}/sub"), _node(f"{d}/null", tarfile.CHRTYPE, 1, 3, 0o666),
               _node(f"{d}/fifo", tarfile.FIFOTYPE), A.sym(f"{d}/loop", "loop"),
               A.sym(f"{d}/loop1", "loop2"), A.sym(f"{d}/loop2", "loop1"),
               A.sym(f"{d}/shadow", "/etc/shadow"), A.sym(f"{d}/host", str(SENTINEL)),
               A.sym(f"{d}/root", "/"), A.reg(f"{d}/suid", b"#!/bin/sh\n", mode=0o4755),
               A.reg(f"{d}/sgid", b"#!/bin/sh\n", mode=0o2755),
               A.reg(f"{d}/sub/file", b"kept\n")]
    if not harmless or not _block_exists(NO_SUCH_BLOCK):
        entries.append(_node(f"{d}/blk", tarfile.BLKTYPE, *NO_SUCH_BLOCK, mode=0o660))
    if not harmless:
        entries.append(_node(f"{d}/zero", tarfile.CHRTYPE, 1, 5, mode=0o666))
        if (disk := _host_disk()) is not None:
            entries.append(_node(f"{d}/disk", tarfile.BLKTYPE, *disk, mode=0o660))
    return entries


def _passwd_layer(kind: str) -> bytes:
    if kind == "big":  # 100 MB, no newline: dockerd's bufio.Scanner gives up on it too
        info = tarfile.TarInfo("etc/passwd")
        info.size, info.mode = 100 << 20, 0o644
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.addfile(info, io.BytesIO(bytes(info.size)))
        return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)
    entry = {
        "fifo": lambda: _node("etc/passwd", tarfile.FIFOTYPE),
        "dir": lambda: A.dir_("etc/passwd"),
        "zero": lambda: _node("etc/passwd", tarfile.CHRTYPE, 1, 5),
        "blk": lambda: _node("etc/passwd", tarfile.BLKTYPE, *NO_SUCH_BLOCK),
        "loop": lambda: A.sym("etc/passwd", "passwd"),
        "shadow": lambda: A.sym("etc/passwd", "/etc/shadow"),
        "group-fifo": lambda: _node("etc/group", tarfile.FIFOTYPE),
    }[kind]()
    return A.tar_bytes([A.dir_("etc"), entry])


PASSWD_KINDS = ("fifo", "dir", "zero", "blk", "loop", "big", "shadow", "group-fifo")
# What `docker run` says for user "", "nobody" and "4242" (no entry) ("" = it runs).
PASSWD_REFUSALS = {
    "fifo": "open /etc/passwd: not a regular file",
    "dir": "read /etc/passwd: is a directory",
    "zero": "open /etc/passwd: not a regular file",
    "blk": "open /etc/passwd: not a regular file",
    "loop": "open /etc/passwd: too many levels of symbolic links",
    "big": "read /etc/passwd: file too large",
}


def _expected_run(kind: str, user: str) -> str:
    if kind in PASSWD_REFUSALS:
        return f"unable to find user {user or 0}: {PASSWD_REFUSALS[kind]}"
    if kind == "shadow":  # resolved in the image, where it leads nowhere: no passwd file
        return "unable to find user nobody: no matching entries in passwd file" \
            if user == "nobody" else ""
    # group-fifo: whatever the user, as runc's init reads /etc/group for every process (and
    # would block on the FIFO in the container, holding the start)
    matched = {"": "root", "nobody": "nobody"}.get(user, user)
    return f"unable to find groups for spec {matched}: open /etc/group: not a regular file"


@pytest.fixture(scope="module")
def corpus(docker: Any, busybox_tar: Path) -> Iterator[dict[str, str]]:
    """name -> image reference, loaded with `docker load` (busybox's layer, then one more)."""
    base = busybox_tar.read_bytes()
    layers = {"nodes": A.tar_bytes(_nodes("nodes", harmless=False)
                                   + _nodes("data", harmless=False)),
              "volume": A.tar_bytes(_nodes("data", harmless=True)),
              **{k: _passwd_layer(k) for k in PASSWD_KINDS}}
    refs = {}
    for name, layer in layers.items():
        ref = f"hostile-{name}:latest"
        volumes = {"/data": {}} if name in ("nodes", "volume") else None
        config = {"Cmd": ["sh"], "Volumes": volumes}
        archive = A.docker_archive([base, layer], [ref], config_kwargs={"config": config})
        out = docker("load", input=archive.data, timeout=HANG).stdout
        assert f"Loaded image: {ref}" in out
        refs[name] = ref
    yield refs
    docker("rmi", "-f", *refs.values(), check=False)


# --- what must hold throughout ---------------------------------------------------------------


def _ping_seconds(sock_path: str) -> float | None:
    """Seconds GET /_ping took, None if it did not answer OK within the bound."""
    start = time.monotonic()
    reply = b""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(PING_BOUND)
            s.connect(sock_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            while chunk := s.recv(65536):
                reply += chunk
    except OSError:
        return None
    took = time.monotonic() - start
    return took if reply.split(b" ", 2)[1:2] == [b"200"] and took <= PING_BOUND else None


def _host_state() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in [Path("/etc/passwd"), Path("/etc/shadow"), Path("/etc/group"), SENTINEL,
              *sorted(SENTINEL.rglob("*"))]:
        st = p.lstat()
        data = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None
        out[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink, data)
    return out


@pytest.fixture(scope="module")
def sentinel() -> Iterator[Path]:
    """A host directory the images' absolute symlinks name."""
    SENTINEL.mkdir()
    (SENTINEL / "passwd").write_text("root:x:0:0:sentinel:/root:/bin/sh\n")
    yield SENTINEL
    for p in sorted(SENTINEL.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    SENTINEL.rmdir()


@pytest.fixture(autouse=True)
def watched(daemon: Any, sentinel: Path) -> Iterator[None]:
    """Pings the daemon all along the test; the host outside the data root stays as it was."""
    before = _host_state()
    slow: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.1):
            if _ping_seconds(daemon.sock) is None:
                slow.append(time.strftime("%H:%M:%S"))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    assert not slow, f"GET /_ping took over {PING_BOUND}s (or failed) at {slow}"
    assert _host_state() == before, "something outside the data root changed"


def _refused(r: Any, message: str) -> None:
    """Failed with the message (exec's comes in its output stream, as from dockerd)."""
    said = r.stdout + r.stderr
    assert r.returncode != 0, said
    assert message in said, said
    assert "Traceback" not in said and "Internal Server Error" not in said


def _merged(*layers: bytes) -> bytes:
    """One tar of several layers' entries, a later entry replacing an earlier one."""
    entries: dict[str, A.Entry] = {}
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(A.uncompressed(layer))) as tf:
            for m in tf:
                data = tf.extractfile(m).read() if m.isreg() else b""  # type: ignore[union-attr]
                entries[m.name.removeprefix("./").rstrip("/")] = A.Entry(m, data)
    return A.tar_bytes(entries.values())


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        return {m.name.removeprefix("./").rstrip("/"): m for m in tf}


def _tar_out(daemon: Any, *args: str) -> bytes:
    """stdout of a docker command that writes a tar."""
    r = subprocess.run([DOCKER_CLI, *args], capture_output=True, env=daemon.cli_env(),
                       timeout=HANG)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout


NODE_CHECKS = ("test -c {d}/null && test -p {d}/fifo && test -L {d}/loop && test -L {d}/loop1 "
               "&& test \"$(readlink {d}/host)\" = " + str(SENTINEL) + " && test -u {d}/suid "
               "&& test -g {d}/sgid && test \"$(cat {d}/sub/file)\" = kept")


def _checks(d: str, *, harmless: bool = False) -> str:
    out = NODE_CHECKS.format(d=d)
    if not harmless:
        out += f" && test -b {d}/blk && test -c {d}/zero"
    return out


# --- ingest: load (the corpus fixture), import, push and pull --------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.start()
    yield reg
    reg.stop()


def test_import_push_and_pull_keep_nodes_as_nodes(docker, corpus, busybox_tar, registry,
                                                  unique_name) -> None:
    for ref in corpus.values():
        docker("image", "inspect", ref)
    nodes = A.tar_bytes(_nodes("nodes", harmless=False) + [A.reg(unique_name(), b"unique")])
    imported = unique_name("imported")
    docker("import", "-c", "VOLUME /data", "-", imported, timeout=HANG,
           input=_merged(busybox_tar.read_bytes(), nodes))
    pushed = f"{registry.host}/{unique_name('pushed')}:1"
    try:
        docker("tag", imported, pushed)
        docker("push", pushed, timeout=HANG)
        docker("rmi", imported, pushed)
        docker("pull", pushed, timeout=HANG)
        docker("run", "--rm", "--network", "none", pushed, "sh", "-c", _checks("/nodes"),
               timeout=HANG)
    finally:
        docker("rmi", "-f", imported, pushed, check=False)


# --- user lookups: start, exec, cp -a --------------------------------------------------------


@pytest.mark.parametrize("kind", PASSWD_KINDS)
def test_start_reads_passwd_and_group_only_if_regular(docker, corpus, kind) -> None:
    for user in ("", "nobody", "4242"):
        args = ["-u", user] if user else []
        r = docker("run", "--rm", "--network", "none", *args, corpus[kind], "true",
                   timeout=HANG, check=False)
        expected = _expected_run(kind, user)
        if expected:
            _refused(r, f"Error response from daemon: {expected}")
        else:
            assert r.returncode == 0, r.stderr


def test_a_fifo_passwd_is_a_400_and_starts_do_not_starve_the_daemon(docker, dockerpy, corpus,
                                                                   ctr) -> None:
    names = [ctr("fifo") for _ in range(12)]  # more than the daemon has worker threads
    for name in names:
        docker("create", "--name", name, "--network", "none", "-u", "nobody",
               corpus["fifo"], "true")
    with pytest.raises(docker_sdk.errors.APIError) as e:
        dockerpy.api.start(names[0])
    assert e.value.status_code == 400
    assert e.value.explanation == \
        "unable to find user nobody: open /etc/passwd: not a regular file"
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        starts = [pool.submit(docker, "start", n, timeout=HANG, check=False) for n in names]
        docker("run", "--rm", "--network", "none", "busybox", "true", timeout=HANG)
        for f in starts:
            _refused(f.result(), "open /etc/passwd: not a regular file")


# What a running container can put at /etc/passwd or /etc/group, and what `exec -u` says
# then for "nobody" and for a uid of no entry ("" = it runs). Each in a container of its
# own: runc's init opens both files for any exec, and blocks on a FIFO in the container.
SWAPS = {
    "rm /etc/passwd && mkfifo /etc/passwd": ["open /etc/passwd: not a regular file"] * 2,
    "rm /etc/passwd && mkdir /etc/passwd": ["read /etc/passwd: is a directory"] * 2,
    "rm /etc/passwd && mknod /etc/passwd c 1 5": ["open /etc/passwd: not a regular file"] * 2,
    "rm /etc/passwd && ln -s passwd /etc/passwd":
        ["open /etc/passwd: too many levels of symbolic links"] * 2,
    "head -c 5000000 /dev/zero > /etc/passwd": ["read /etc/passwd: file too large"] * 2,
    "rm /etc/group && mkfifo /etc/group": ["not a regular file"] * 2,
    "rm /etc/group && mkdir /etc/group": ["read /etc/group: is a directory"] * 2,
    "rm /etc/passwd && ln -s /etc/shadow /etc/passwd": ["no matching entries", ""],
}


@pytest.mark.parametrize("swap", SWAPS)
def test_exec_user_reads_only_a_regular_passwd(docker, ctr, swap) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c",
           f"{swap} && echo swapped && exec sleep 600")
    deadline = time.monotonic() + HANG
    while "swapped" not in docker("logs", name).stdout:
        assert time.monotonic() < deadline, docker("logs", name).stderr
        time.sleep(0.1)
    for user, reason in zip(("nobody", "4242"), SWAPS[swap], strict=True):
        r = docker("exec", "-u", user, name, "id", "-u", timeout=HANG, check=False)
        if reason:
            _refused(r, reason)
            assert r.stdout.startswith(("unable to find user", "unable to find groups")), r
        else:
            assert (r.returncode, r.stdout) == (0, f"{user}\n"), r


def test_cp_archive_mode_reads_only_a_regular_passwd(docker, corpus, ctr, tmp_path) -> None:
    name = ctr()
    docker("create", "--name", name, "-u", "nobody", corpus["fifo"], "true")
    (tmp_path / "f").write_text("x")
    r = docker("cp", "-a", tmp_path / "f", f"{name}:/tmp/", timeout=HANG, check=False)
    _refused(r, "Error response from daemon: unable to find user nobody: open /etc/passwd: "
                "not a regular file")
    docker("cp", tmp_path / "f", f"{name}:/tmp/", timeout=HANG)


# --- build ------------------------------------------------------------------------------------


def _build(docker: Any, ctx: Path, *args: str) -> Any:
    return docker("build", "--network", "none", *args, ctx, timeout=HANG, check=False)


def _context(tmp_path: Path, dockerfile: str, **files: str) -> Path:
    ctx = Path(tempfile.mkdtemp(dir=tmp_path))
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).write_text(text)
    return ctx


def test_build_volume_nodes_are_made_not_read(docker, corpus, tmp_path) -> None:
    """A RUN step's copy of an image's VOLUME recreates nodes (harmless ones here)."""
    blk = "" if _block_exists(NO_SUCH_BLOCK) else "test -b /data/blk && "
    ctx = _context(tmp_path, f"FROM {corpus['volume']}\n"
                   f"RUN {blk}{_checks('/data', harmless=True)} && echo volume-ok\n")
    r = _build(docker, ctx, "--no-cache")
    assert r.returncode == 0 and "volume-ok" in r.stdout, r.stdout + r.stderr


def test_build_host_devices_under_a_volume(docker, corpus, tmp_path) -> None:
    """RUN sees device nodes under the VOLUME, and the runtime, not the daemon, decides
    whether they open: a block device never does (no host disk bytes)."""
    disk = "/data/disk" if _host_disk() is not None else "/data/blk"
    ctx = _context(tmp_path, f"FROM {corpus['nodes']}\n"
                   f"RUN {_checks('/data')} && test -b {disk}"
                   f" && ! head -c 4096 {disk} >/tmp/bytes 2>/tmp/err && ! test -s /tmp/bytes"
                   f" && grep -q 'Operation not permitted' /tmp/err && echo devices-ok\n")
    r = _build(docker, ctx, "--no-cache")
    assert r.returncode == 0 and "devices-ok" in r.stdout, r.stdout + r.stderr


def test_build_user_lookups_read_only_a_regular_passwd(docker, corpus, tmp_path) -> None:
    fifo = corpus["fifo"]
    r = _build(docker, _context(tmp_path, f"FROM {fifo}\nUSER nobody\nRUN true\n"))
    _refused(r, "unable to find user nobody: open /etc/passwd: not a regular file")
    r = _build(docker, _context(tmp_path, f"FROM {fifo}\nCOPY --chown=nobody f /f\n", f="x"))
    _refused(r, "unable to convert uid/gid chown string to host mapping: can't find uid for "
                "user nobody: open /etc/passwd: not a regular file")
    r = _build(docker, _context(tmp_path, f"FROM {corpus['group-fifo']}\n"
                                          "COPY --chown=1000:daemon f /f\n", f="x"))
    _refused(r, "can't find gid for group daemon: open /etc/group: not a regular file")


def test_build_copy_from_a_hostile_image_and_a_fifo_in_the_context(docker, corpus, busybox_image,
                                                                  tmp_path) -> None:
    ctx = _context(tmp_path, f"FROM busybox\nCOPY --from={corpus['nodes']} /nodes /n\n"
                   f"COPY --from={corpus['nodes']} /nodes/fifo /nodes/zero /single/\n"
                   "ADD fifo /added\nCOPY fifo /copied\n"
                   f"RUN {_checks('/n')} && test -p /single/fifo && test -c /single/zero"
                   " && test -p /added && test -p /copied && echo copy-ok\n")
    os.mkfifo(ctx / "fifo")
    r = _build(docker, ctx, "--no-cache")
    assert r.returncode == 0 and "copy-ok" in r.stdout, r.stdout + r.stderr


# --- cp, export, commit -----------------------------------------------------------------------


def test_cp_and_export_write_nodes_as_headers(docker, daemon, corpus, ctr) -> None:
    name = ctr()
    docker("create", "--name", name, "--network", "none", corpus["nodes"], "true")
    out = _tar_out(daemon, "cp", f"{name}:/nodes", "-")
    found = _members(out)
    assert found["nodes/blk"].isblk() and found["nodes/zero"].ischr()
    assert found["nodes/fifo"].isfifo() and found["nodes/loop"].issym()
    assert found["nodes/host"].linkname == str(SENTINEL)
    assert found["nodes/suid"].mode & stat.S_ISUID
    for path in ("/nodes/fifo", "/nodes/zero", "/nodes/blk", "/nodes/loop", "/nodes/host"):
        single = _members(_tar_out(daemon, "cp", f"{name}:{path}", "-"))
        assert list(single) == [path.rsplit("/", 1)[1]]
    exported = _members(_tar_out(daemon, "export", name))
    assert exported["nodes/blk"].isblk() and exported["data/fifo"].isfifo()
    assert exported["nodes/zero"].size == 0 and exported["nodes/shadow"].linkname == "/etc/shadow"


def test_cp_into_a_container_makes_nodes_and_stays_inside(docker, daemon, corpus, ctr) -> None:
    """Absolute links are the container's: what goes through them lands in it, or nowhere
    when they lead nowhere there (as dockerd: an error)."""
    name = ctr()
    docker("create", "--name", name, "--network", "none", corpus["nodes"], "true")
    docker("cp", "-", f"{name}:/tmp", input=A.tar_bytes(_nodes("in", harmless=False)),
           timeout=HANG)
    docker("cp", "-", f"{name}:/nodes/root/tmp", input=A.tar_bytes([A.reg("three", b"3")]),
           timeout=HANG)
    found = _members(_tar_out(daemon, "cp", f"{name}:/tmp", "-"))
    assert found["tmp/in/blk"].isblk() and found["tmp/in/fifo"].isfifo()
    assert found["tmp/in/loop"].issym() and found["tmp/three"].isreg()
    r = docker("cp", "-", f"{name}:/nodes/host", input=A.tar_bytes([A.reg("two", b"2")]),
               timeout=HANG, check=False)
    _refused(r, f'destination "{name}:/nodes/host" must be a directory')  # the CLI, after a HEAD
    r = docker("cp", "-", f"{name}:/tmp", timeout=HANG, check=False,
               input=A.tar_bytes([A.sym("host", str(SENTINEL)), A.reg("host/one", b"1")]))
    assert r.returncode != 0 and "Error response from daemon" in r.stderr, r.stderr


def test_commit_cp_export_of_a_running_container_with_a_socket(docker, daemon, ctr,
                                                               unique_name) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, "--network", "none", "busybox", "sh", "-c",
           "mkdir /x && mkfifo /x/fifo && mknod /x/zero c 1 5 && ln -s /x/sock /dev/log"
           " && exec syslogd -n -O /dev/null")
    deadline = time.monotonic() + HANG
    while docker("exec", name, "test", "-S", "/x/sock", check=False).returncode:
        assert time.monotonic() < deadline, "syslogd made no socket"
        time.sleep(0.1)
    found = _members(_tar_out(daemon, "cp", f"{name}:/x", "-"))
    assert sorted(found) == ["x", "x/fifo", "x/zero"]
    exported = _members(_tar_out(daemon, "export", name))
    assert exported["x/fifo"].isfifo() and "x/sock" not in exported
    assert {"A /x", "A /x/fifo", "A /x/zero", "A /x/sock"} <= \
        set(docker("diff", name).stdout.splitlines())
    image = unique_name("committed")
    try:
        docker("commit", name, image, timeout=HANG)
        docker("run", "--rm", "--network", "none", image, "sh", "-c",
               "test -p /x/fifo && test -c /x/zero && ! test -e /x/sock", timeout=HANG)
    finally:
        docker("rmi", "-f", image, check=False)

