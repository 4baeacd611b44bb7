"""Interoperability with a reference dockerd (Debian's docker.io, 20.10) started for this
module on its own socket and roots: archives move both ways with the same image IDs and
layers, and the two daemons print the same `docker history`, `docker images`, `docker load`
and `docker rmi` lines for the same image. Skipped when /usr/sbin/dockerd is missing or
does not start (not root, no overlay support, ...). Nothing is run in containers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import archives as A
from .conftest import DOCKER_CLI, _mounts_under, _ping
from .lifetime import die_with_test_run

REFERENCE_DOCKERD = os.environ.get("DPY_REFERENCE_DOCKERD", "/usr/sbin/dockerd")
START_TIMEOUT = 40.0


class Reference:
    """A reference dockerd; run() mirrors the `docker` fixture for it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.sock = str(tmp / "d.sock")
        self.root = tmp / "root"
        self.exec_root = tmp / "exec"
        self.log_path = tmp / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        (tmp / "cli").mkdir()
        (tmp / "daemon.json").write_text("{}\n")
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH")}
        self.env.update(DOCKER_HOST=f"unix://{self.sock}", DOCKER_CONFIG=str(tmp / "cli"),
                        DOCKER_CLI_HINTS="false")

    def start(self) -> str | None:
        """Starts the daemon; returns why it could not, or None."""
        argv = [REFERENCE_DOCKERD, "-H", f"unix://{self.sock}", "--data-root", str(self.root),
                "--exec-root", str(self.exec_root), "--pidfile", str(self.tmp / "dockerd.pid"),
                "--config-file", str(self.tmp / "daemon.json"), "--storage-driver", "overlay2",
                "--bridge", "none", "--iptables=false", "--ip-masq=false", "--log-level", "warn"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, preexec_fn=die_with_test_run)
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(self.sock):
            if self.proc.poll() is not None:
                return f"reference dockerd exited with {self.proc.returncode}:\n{self.log_tail()}"
            if time.monotonic() > deadline:
                return f"reference dockerd did not answer within {START_TIMEOUT:.0f}s"
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        containerd_pid = self.exec_root / "containerd" / "containerd.pid"
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # the containerd it started, if it outlived it
        try:
            pid = int(containerd_pid.read_text().strip())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        for point in _mounts_under(self.tmp):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return "(no log)"

    def run(self, *args: object, input: bytes | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        __tracebackhide__ = True
        raw = subprocess.run([DOCKER_CLI, *map(str, args)], input=input, capture_output=True,
                             env=self.env, timeout=timeout)
        out, err = raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace")
        r = subprocess.CompletedProcess(raw.args, raw.returncode, out, err)
        if check and r.returncode:
            raise AssertionError(f"reference: docker {' '.join(map(str, args))} exited with "
                                 f"{r.returncode}\n{r.stdout}{r.stderr}\n--- log ---\n"
                                 f"{self.log_tail()}")
        return r


@contextlib.contextmanager
def started_reference(prefix: str) -> Iterator[Reference]:
    """A reference dockerd for a fixture; skips the tests when it cannot run here."""
    if not os.path.exists(REFERENCE_DOCKERD):
        pytest.skip(f"{REFERENCE_DOCKERD} not installed")
    if os.geteuid() != 0:
        pytest.skip("the reference dockerd needs root")
    ref = Reference(Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp")))
    try:
        problem = ref.start()
        if problem:
            pytest.skip(problem)
        yield ref
    finally:
        ref.stop()


@pytest.fixture(scope="module")
def reference() -> Iterator[Reference]:
    with started_reference("dpyref-") as ref:
        yield ref


@pytest.fixture
def cleanup(docker) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    if names:
        docker("rmi", "-f", *names, check=False)


def _ours_save(daemon, out: Path, *names: str) -> None:
    r = subprocess.run([DOCKER_CLI, "save", "-o", str(out), *names], env=daemon.cli_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


HISTORY_FMT = "{{.ID}}|{{.CreatedAt}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}"
IMAGES_FMT = "{{.Repository}}|{{.Tag}}|{{.ID}}|{{.CreatedAt}}|{{.Size}}|{{.Digest}}"
_CONFIG_KEYS = ("Cmd", "Env", "Labels", "Entrypoint", "WorkingDir", "User", "ExposedPorts",
                "Volumes", "StopSignal", "Healthcheck", "OnBuild", "Shell")
# API versions differ (we serve 1.50, 20.10 serves 1.41), so only fields both have, and
# optional Config keys through `index` (absent and null print alike).
INSPECT_FMT = "|".join(
    ["{{.Id}}", "{{json .RepoTags}}", "{{json .RepoDigests}}", "{{.Parent}}", "{{.Created}}",
     "{{.Comment}}", "{{.Author}}", "{{.Os}}", "{{.Architecture}}", "{{.Size}}",
     "{{json .RootFS}}"] + [f'{{{{json (index .Config "{k}")}}}}' for k in _CONFIG_KEYS])


def _views(run, name: str) -> dict[str, str]:
    """What the CLI shows of an image; equal across daemons for the same image."""
    return {
        "inspect": run("image", "inspect", "-f", INSPECT_FMT, name).stdout,
        "history": run("history", "--no-trunc", "--human=false", "--format", HISTORY_FMT,
                       name).stdout,
        "images": run("images", "--no-trunc", "--format", IMAGES_FMT, name).stdout,
    }


def _assert_same_views(ours: dict[str, str], theirs: dict[str, str]) -> None:
    for key in ours:
        assert ours[key] == theirs[key], f"{key} differs:\nours:\n{ours[key]}\nreference:\n" \
                                         f"{theirs[key]}"


@pytest.fixture
def crafted(tmp_path, unique_name) -> tuple[str, A.Archive, Path]:
    """A two-layer image (one gzip layer) with history, an empty layer entry, labels."""
    name = unique_name("interop") + ":1"
    l1 = A.rootfs(name, extra=[A.sym("etc/link", "marker"), A.dir_("var", 0o700)])
    l2 = A.tar_bytes([A.dir_("usr"), A.reg("usr/bin-x", b"#!/bin/sh\necho\n", 0o755),
                      A.reg("etc/.wh.link")])
    history = [
        {"created": "2024-05-01T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:1 in / "},
        {"created": "2024-05-01T10:00:01Z", "created_by": "/bin/sh -c #(nop)  ENV A=b",
         "empty_layer": True},
        {"created": "2024-05-01T10:00:02.123456789Z",
         "created_by": "/bin/sh -c echo a long command line that is longer than forty-five "
                       "characters", "comment": "layer two"},
    ]
    config = {"Cmd": ["sh"], "Env": ["A=b", "PATH=/usr/bin:/bin"], "Labels": {"zz": "interop"},
              "WorkingDir": "/usr", "User": "1000", "ExposedPorts": {"80/tcp": {}}}
    archive = A.docker_archive([l1, A.gz(l2)], [name], config_kwargs={
        "history": history, "config": config, "created": "2024-05-01T10:00:02.123456789Z"})
    path = tmp_path / "crafted.tar"
    path.write_bytes(archive.data)
    return name, archive, path


# --- ours -> reference ------------------------------------------------------------------------


def test_our_save_loads_in_reference(docker, daemon, reference, busybox_tar, crafted, tmp_path,
                                     unique_name, cleanup):
    bb = unique_name("bb") + ":1"
    cleanup.append(bb)
    bb_id = docker("import", "-c", 'CMD ["sh"]', "-c", "ENV X=1", "-m", "interop",
                   busybox_tar, bb).stdout.strip()
    gz_name = unique_name("gz") + ":1"
    cleanup.append(gz_name)
    gz_id = docker("import", "-", gz_name, input=A.gz(A.rootfs(gz_name))).stdout.strip()
    name, archive, path = crafted
    cleanup.append(name)
    docker("load", "-i", path)

    out = tmp_path / "ours.tar"
    _ours_save(daemon, out, bb, gz_name, name)
    loaded = reference.run("load", "-i", out).stdout.splitlines()
    assert sorted(loaded) == sorted(f"Loaded image: {n}" for n in (bb, gz_name, name))
    for n, iid in ((bb, bb_id), (gz_name, gz_id), (name, archive.image_id)):
        assert reference.run("image", "inspect", "-f", "{{.Id}}", n).stdout.strip() == iid
        _assert_same_views(_views(docker, n), _views(reference.run, n))


def test_our_load_output_matches_reference(docker, reference, crafted, tmp_path, cleanup):
    """The same archives, loaded into both: the same lines, the rename notice included, and
    removing the image deletes the same things in the same order."""
    name, archive, path = crafted
    older = A.docker_archive([A.rootfs(name + "-older")], [name])
    older_path = tmp_path / "older.tar"
    older_path.write_bytes(older.data)
    cleanup += [name, older.image_id]
    for run in (docker, reference.run):
        assert run("load", "-i", older_path).stdout == f"Loaded image: {name}\n"
    first = [run("load", "-i", path).stdout for run in (docker, reference.run)]
    assert first[0] == first[1] == (
        f"The image {name} already exists, renaming the old one with ID {older.image_id} to "
        f"empty string\nLoaded image: {name}\n")
    again = [run("load", "-i", path).stdout for run in (docker, reference.run)]
    assert again == [f"Loaded image: {name}\n"] * 2
    removed = [run("rmi", name).stdout for run in (docker, reference.run)]
    chain2 = A.sha256(f"{archive.diff_ids[0]} {archive.diff_ids[1]}".encode())
    assert removed[0] == removed[1] == (
        f"Untagged: {name}\nDeleted: {archive.image_id}\nDeleted: {chain2}\n"
        f"Deleted: {archive.diff_ids[0]}\n")
    removed = [run("rmi", older.image_id).stdout for run in (docker, reference.run)]
    assert removed[0] == removed[1] == (
        f"Deleted: {older.image_id}\nDeleted: {older.diff_ids[0]}\n")


# --- reference -> ours ------------------------------------------------------------------------


def test_reference_save_loads_in_ours(docker, daemon, reference, busybox_tar, tmp_path,
                                      unique_name, cleanup):
    bb = unique_name("refbb") + ":1"
    bb2 = bb.replace(":1", ":2")
    other = unique_name("refother") + ":x"
    cleanup += [bb, bb2, other]
    bb_id = reference.run("import", "-c", 'ENTRYPOINT ["/bin/sh"]', "-c", "LABEL from=ref",
                          "-c", "WORKDIR /root", busybox_tar, bb).stdout.strip()
    reference.run("tag", bb, bb2)
    other_id = reference.run("import", "-", other, input=A.rootfs(other)).stdout.strip()
    saved = tmp_path / "ref.tar"
    r = subprocess.run([DOCKER_CLI, "save", "-o", str(saved), bb, bb2, other], env=reference.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = docker("load", "-i", saved).stdout.splitlines()
    assert sorted(loaded) == sorted(f"Loaded image: {n}" for n in (bb, bb2, other))
    assert docker("image", "inspect", "-f", "{{.Id}}", bb).stdout.strip() == bb_id
    assert docker("image", "inspect", "-f", "{{.Id}}", bb2).stdout.strip() == bb_id
    assert docker("image", "inspect", "-f", "{{.Id}}", other).stdout.strip() == other_id
    for n in (bb, other):
        _assert_same_views(_views(docker, n), _views(reference.run, n))
    # the busybox layer has the same diff ID as when imported here directly
    here = docker("import", busybox_tar).stdout.strip()
    cleanup.append(here)
    assert docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", here).stdout == \
        docker("image", "inspect", "-f", "{{json .RootFS.Layers}}", bb).stdout

    # and back: ours -> a fresh reference load gives the same ID again
    reference.run("rmi", bb, bb2, other)
    back = tmp_path / "back.tar"
    _ours_save(daemon, back, bb, other)
    loaded = reference.run("load", "-i", back).stdout.splitlines()
    assert sorted(loaded) == sorted(f"Loaded image: {n}" for n in (bb, other))
    assert reference.run("image", "inspect", "-f", "{{.Id}}", bb).stdout.strip() == bb_id
    assert reference.run("image", "inspect", "-f", "{{.Id}}", other).stdout.strip() == other_id


def test_reference_save_by_id_loads_untagged_in_ours(docker, reference, tmp_path, unique_name,
                                                     cleanup):
    name = unique_name("refid") + ":1"
    iid = reference.run("import", "-", name, input=A.rootfs(name)).stdout.strip()
    saved = tmp_path / "byid.tar"
    r = subprocess.run([DOCKER_CLI, "save", "-o", str(saved), iid], env=reference.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cleanup.append(iid)
    assert docker("load", "-i", saved).stdout == f"Loaded image ID: {iid}\n"
    assert docker("image", "inspect", "-f", "{{json .RepoTags}}", iid).stdout == "[]\n"
