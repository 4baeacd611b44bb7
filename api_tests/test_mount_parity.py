"""Mounts, devices and shared namespaces as Docker's dockerd gives them (issue 11), driven
through docker-py and aiodocker as a program would.

Each case runs on our daemon and, when it can start here, on a reference dockerd 20.10
beside it (its own socket and roots, `--bridge none`, so every container here has no
network); both must give the answer written in the test, which is what 20.10 gives.
`VolumeOptions.Subpath` (API 1.45) has no 20.10 to ask: those answers are moby's
(volume/mounts/linux_parser.go, volume/safepath). 20.10 cannot run a privileged
container on a host without CAP_SYS_RESOURCE, so `--privileged` is checked on ours alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import docker as docker_sdk
import pytest
from docker.types import Mount

from .conftest import Daemon, _mounts_under
from .test_reference_interop import REFERENCE_DOCKERD, Reference

IMAGE = "busybox:latest"


@dataclass
class Side:
    """One daemon, through docker-py; what a test makes on it is removed after it."""

    name: str
    client: Any
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @property
    def api(self) -> Any:
        return self.client.api

    def create(self, cmd: list[str] | None = None, name: str | None = None,
               **host: Any) -> str:
        name = name or f"mnt-{uuid.uuid4().hex[:12]}"
        self.containers.append(name)
        hc = self.api.create_host_config(network_mode="none", **host)
        return str(self.api.create_container(IMAGE, cmd or ["true"], name=name,
                                             host_config=hc)["Id"])

    def run(self, script: str, **host: Any) -> tuple[int, str]:
        """sh -c script in a new container: (exit code, stdout and stderr)."""
        cid = self.create(["sh", "-c", script], **host)
        self.api.start(cid)
        code = int(self.api.wait(cid)["StatusCode"])
        return code, self.api.logs(cid, stdout=True, stderr=True).decode()

    def volume(self, name: str, setup: str = "") -> str:
        """A named volume; `setup` runs in a container with it at /v."""
        self.volumes.append(name)
        self.api.create_volume(name)
        if setup:
            assert self.run(setup, binds=[f"{name}:/v"]) == (0, "")
        return name

    def volume_dir(self, name: str) -> str:
        return str(self.api.inspect_volume(name)["Mountpoint"])

    def cleanup(self) -> None:
        for name in self.containers:
            with contextlib.suppress(docker_sdk.errors.APIError):
                self.api.remove_container(name, force=True, v=True)
        for name in self.volumes:
            with contextlib.suppress(docker_sdk.errors.APIError):
                self.api.remove_volume(name, force=True)
        self.client.close()


def error(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str]:
    """(HTTP status, message) of a call that must fail."""
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        call(*args, **kwargs)
    return raised.value.status_code, str(raised.value.explanation)


@pytest.fixture(scope="module")
def reference(busybox_tar: Path) -> Iterator[Reference | None]:
    """A dockerd 20.10 with busybox, or None where it cannot run (not installed, not root,
    no overlay): the answers are then checked on our daemon alone."""
    if not os.path.exists(REFERENCE_DOCKERD) or os.geteuid() != 0:
        yield None
        return
    ref = Reference(Path(tempfile.mkdtemp(prefix="dpymnt-", dir="/tmp")))
    try:
        if ref.start() is not None:
            yield None
            return
        ref.run("import", "-c", 'CMD ["sh"]', busybox_tar, IMAGE)
        yield ref
    finally:
        ref.stop()


@pytest.fixture
def ours(daemon: Daemon, busybox_image: str) -> Iterator[Side]:
    side = Side("ours", docker_sdk.DockerClient(base_url=daemon.host))
    yield side
    side.cleanup()


@pytest.fixture
def sides(ours: Side, reference: Reference | None) -> Iterator[list[Side]]:
    """Our daemon, then the reference when there is one."""
    out = [ours]
    if reference is not None:
        out.append(Side("20.10", docker_sdk.DockerClient(base_url=f"unix://{reference.sock}")))
    yield out
    for side in out[1:]:
        side.cleanup()


def _shown(mounts: list[dict[str, Any]], anonymous: set[str]) -> list[tuple[Any, ...]]:
    return sorted((m["Type"], "<anon>" if m.get("Name") in anonymous else m.get("Name", ""),
                   m["Destination"], m["RW"], m["Mode"]) for m in mounts)


# -- --volumes-from ---------------------------------------------------------------------


def test_volumes_from_brings_volumes_and_binds_with_their_modes(sides: list[Side],
                                                                tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "hello").write_text("from the host\n")
    volume = f"vf-{uuid.uuid4().hex[:10]}"
    script = ("cat /data/f /host/hello; ls -d /anon; "
              "touch /data/w 2>/dev/null && echo data-rw || echo data-ro; "
              "touch /host/w 2>/dev/null && echo host-rw || echo host-ro")
    for side in sides:
        side.volume(volume, "echo in-volume > /v/f")
        donor = side.create(binds=[f"{volume}:/data", f"{bind}:/host:ro", "/anon"])
        anon = {m["Name"] for m in side.api.inspect_container(donor)["Mounts"]
                if m["Type"] == "volume" and m["Name"] != volume}
        assert side.run(script, volumes_from=[donor]) == (
            0, "in-volume\nfrom the host\n/anon\ndata-rw\nhost-ro\n"), side.name
        assert side.run(script, volumes_from=[f"{donor}:ro"]) == (
            0, "in-volume\nfrom the host\n/anon\ndata-ro\nhost-ro\n"), side.name
        # A bind at the same destination replaces what the donor has there.
        assert side.run("cat /data/hello", volumes_from=[donor],
                        binds=[f"{bind}:/data"]) == (0, "from the host\n"), side.name
        # Inherited points are the donor's, read-only if either says so, Mode "".
        joiner = side.create(volumes_from=[f"{donor}:ro"])
        assert _shown(side.api.inspect_container(joiner)["Mounts"], anon) == [
            ("bind", "", "/host", False, ""), ("volume", "<anon>", "/anon", False, ""),
            ("volume", volume, "/data", False, "")], side.name
        assert side.api.inspect_container(joiner)["HostConfig"]["VolumesFrom"] == [
            f"{donor}:ro"]
        # ... and so on down a chain.
        chained = side.create(volumes_from=[joiner])
        assert _shown(side.api.inspect_container(chained)["Mounts"], anon) == [
            ("bind", "", "/host", False, ""), ("volume", "<anon>", "/anon", False, ""),
            ("volume", volume, "/data", False, "")], side.name
        assert (bind / "w").exists() is False


@pytest.mark.parametrize(("spec", "answer"), [
    ("no-such-container", (400, "No such container: no-such-container")),
    ("", (400, "volumes-from specification cannot be an empty string")),
    ("{donor}:rx", (400, "invalid mode: rx")),
    ("{donor}:ro,rw", (400, "invalid mode: ro,rw")),
    ("{donor}:rslave", (400, "invalid mode: rslave")),
    ("{donor}:nocopy", (400, "invalid mode: nocopy")),
    ("{donor}:a:b", (400, "invalid mode: a:b")),
])
def test_volumes_from_refusals(sides: list[Side], spec: str,
                               answer: tuple[int, str]) -> None:
    for side in sides:
        donor = side.create(binds=["/anon"])
        assert error(side.create, volumes_from=[spec.format(donor=donor)]) == answer, side.name


def test_volumes_from_a_container_with_a_tmpfs_mount(sides: list[Side]) -> None:
    """dockerd looks the tmpfs point up as a volume without a name: a 404."""
    for side in sides:
        donor = side.create(mounts=[Mount("/t", None, type="tmpfs")])
        assert error(side.create, volumes_from=[donor]) == (404, "get: no such volume"), \
            side.name


# -- VolumeOptions.Subpath (API 1.45; moby's answers) ---------------------------------------


def _subpath_mount(volume: str, subpath: str, target: str = "/x",
                   read_only: bool = False) -> dict[str, Any]:
    return {"Type": "volume", "Source": volume, "Target": target, "ReadOnly": read_only,
            "VolumeOptions": {"Subpath": subpath}}


async def _start(client: Any, mounts: list[dict[str, Any]], script: str
                 ) -> tuple[int, str]:
    c = await client.containers.create({
        "Image": IMAGE, "Cmd": ["sh", "-c", script],
        "HostConfig": {"NetworkMode": "none", "Mounts": mounts}})
    try:
        await c.start()
        code = (await c.wait())["StatusCode"]
        return code, "".join(await c.log(stdout=True, stderr=True))
    finally:
        await c.delete(force=True)


async def _refused(client: Any, mounts: list[dict[str, Any]], *, at_start: bool
                   ) -> tuple[int, str]:
    config = {"Image": IMAGE, "Cmd": ["true"],
              "HostConfig": {"NetworkMode": "none", "Mounts": mounts}}
    c = None
    try:
        with pytest.raises(aiodocker.DockerError) as raised:
            c = await client.containers.create(config)
            assert at_start, "create accepted it"
            await c.start()
        return raised.value.status, str(raised.value.message)
    finally:
        if c is not None:
            await c.delete(force=True)


async def test_volume_subpath(ours: Side, aiodocker_client: Callable[[], Any],
                              daemon: Daemon) -> None:
    volume = ours.volume(f"sp-{uuid.uuid4().hex[:10]}", (
        "mkdir -p /v/sub/deep /v/empty && echo sub-file > /v/sub/f && echo top > /v/t && "
        "ln -s /etc /v/out && ln -s ../../../../../../.. /v/up && ln -s sub /v/lnk && "
        "ln -s /v/sub /v/abs"))
    base = ours.volume_dir(volume)
    client = aiodocker_client()
    assert await _start(client, [_subpath_mount(volume, "sub")],
                        "cat /x/f; echo new > /x/n; ls /x") == (0, "sub-file\ndeep\nf\nn\n")
    assert Path(base, "sub", "n").read_text() == "new\n"  # written inside the volume's sub/
    # A link inside the volume that stays inside is followed; "." is the whole volume.
    assert await _start(client, [_subpath_mount(volume, "lnk")], "cat /x/f") == (
        0, "sub-file\n")
    assert await _start(client, [_subpath_mount(volume, "./sub/../sub/deep")],
                        "ls /x; echo empty") == (0, "empty\n")
    assert await _start(client, [_subpath_mount(volume, ".")], "cat /x/t") == (0, "top\n")
    assert await _start(client, [_subpath_mount(volume, "sub/f", "/f")], "cat /f") == (
        0, "sub-file\n")  # a file
    assert await _start(client, [_subpath_mount(volume, "sub", read_only=True)],
                        "touch /x/w 2>&1; cat /x/f") == (
        0, "touch: /x/w: Read-only file system\nsub-file\n")
    # An empty sub-directory is filled from the image, as a whole volume is.
    assert await _start(client, [_subpath_mount(volume, "empty", "/etc")],
                        "test -s /etc/passwd && echo filled") == (0, "filled\n")
    assert Path(base, "empty", "passwd").exists()

    # Refused at create: the grammar.
    assert await _refused(client, [_subpath_mount(volume, "../x")], at_start=False) == (
        400, 'invalid mount config for type "volume": subpath must be a relative path '
             "within the volume")
    assert await _refused(client, [_subpath_mount(volume, "/sub")], at_start=False) == (
        400, 'invalid mount config for type "volume": subpath must be a relative path '
             "within the volume")
    assert await _refused(client, [_subpath_mount(volume, "sub\0")], at_start=False) == (
        400, 'invalid mount config for type "volume": subpath must be a relative path '
             "within the volume")
    assert await _refused(client, [_subpath_mount("", "sub")], at_start=False) == (
        400, 'invalid mount config for type "volume": must not set Subpath when using '
             "anonymous volumes")
    # At start: what is missing (404), what leaves the volume (400), links included.
    missing = f"cannot access path {base}/nope: lstat {base}/nope: no such file or directory"
    assert await _refused(client, [_subpath_mount(volume, "nope")], at_start=True) == (
        404, missing)
    assert await _refused(client, [_subpath_mount(volume, "sub/nope/deeper")],
                          at_start=True) == (
        404, f"cannot access path {base}/sub/nope/deeper: lstat {base}/sub/nope: "
             "no such file or directory")
    for escape in ("out", "up", "abs", "up/etc"):
        assert await _refused(client, [_subpath_mount(volume, escape)], at_start=True) == (
            400, f"path concatenation escapes the base directory, base: {base}, "
                 f"subpath: {escape}"), escape
    # Nothing pinned is left behind.
    assert [p for p in _mounts_under(daemon.tmp) if "/subpaths/" in p] == []


async def test_volume_subpath_needs_api_1_45(ours: Side, daemon: Daemon) -> None:
    volume = ours.volume(f"sp-{uuid.uuid4().hex[:10]}", "mkdir /v/sub")
    old = aiodocker.Docker(url=daemon.host, api_version="v1.44")
    try:
        assert await _refused(old, [_subpath_mount(volume, "sub")], at_start=False) == (
            400, "VolumeOptions.Subpath needs API v1.45 or newer")
    finally:
        await old.close()


def test_volumes_from_and_cp_keep_the_subpath(ours: Side, tmp_path: Path) -> None:
    volume = ours.volume(f"sp-{uuid.uuid4().hex[:10]}",
                         "mkdir /v/sub && echo sub-file > /v/sub/f")
    donor = ours.create(mounts=[_subpath_mount(volume, "sub")])
    assert ours.run("ls /x", volumes_from=[donor]) == (0, "f\n")
    # docker cp sees what the container sees (dockerd sets the mounts up for it too).
    chunks, _ = ours.api.get_archive(donor, "/x")
    (tmp_path / "x.tar").write_bytes(b"".join(chunks))
    with tarfile.open(tmp_path / "x.tar") as tar:
        assert sorted(tar.getnames()) == ["x", "x/f"]


def test_cli_volume_subpath(ours: Side, docker: Any) -> None:
    volume = ours.volume(f"sp-{uuid.uuid4().hex[:10]}",
                         "mkdir /v/sub && echo sub-file > /v/sub/f")
    r = docker("run", "--rm", "--network", "none", "--mount",
               f"type=volume,src={volume},dst=/x,volume-subpath=sub", IMAGE, "cat", "/x/f")
    assert r.stdout == "sub-file\n"


# -- Devices ------------------------------------------------------------------------------

# /dev/loop-control (10:237) is in no default rule; opening it needs no capability.
PROBE = ("ls -l {node} | cut -c1; grep -c '^c 10:237 ' /sys/fs/cgroup/devices/devices.list; "
         "(exec 3<{node}) 2>/dev/null && echo read-ok || echo read-denied; "
         "(exec 4>{node}) 2>/dev/null && echo write-ok || echo write-denied")
needs_devices = pytest.mark.skipif(
    not os.path.exists("/dev/loop-control") or not os.path.isdir("/dev/net")
    or not os.path.exists("/sys/fs/cgroup/devices/devices.list"),
    reason="needs /dev/loop-control, /dev/net and the cgroup v1 devices controller")


@needs_devices
def test_devices_make_the_node_and_its_cgroup_rule(sides: list[Side]) -> None:
    for side in sides:
        assert side.run(PROBE.format(node="/dev/lc"),
                        devices=["/dev/loop-control:/dev/lc:r"]) == (
            0, "c\n1\nread-ok\nwrite-denied\n"), side.name
        assert side.run(PROBE.format(node="/dev/loop-control"),
                        devices=["/dev/loop-control"]) == (
            0, "c\n1\nread-ok\nwrite-ok\n"), side.name
        # A directory brings the nodes under it.
        assert side.run("ls /dev/n2", devices=["/dev/net:/dev/n2"]) == (
            0, "".join(f"{n}\n" for n in sorted(os.listdir("/dev/net")))), side.name
        # Without a mapping: no node, and mknod gives one that cannot be opened.
        assert side.run("ls /dev/loop-control 2>&1; mknod /dev/lc c 10 237 && "
                        "(exec 3</dev/lc) 2>/dev/null && echo read-ok || echo read-denied") \
            == (0, "ls: /dev/loop-control: No such file or directory\nread-denied\n"), \
            side.name
        # A device cgroup rule allows what it names.
        assert side.run("mknod /dev/lc c 10 237 && "
                        "(exec 3</dev/lc) 2>/dev/null && echo read-ok || echo read-denied; "
                        "(exec 4>/dev/lc) 2>/dev/null && echo write-ok || echo write-denied",
                        device_cgroup_rules=["c 10:237 r"]) == (
            0, "read-ok\nwrite-denied\n"), side.name


def test_device_errors(sides: list[Side]) -> None:
    for side in sides:
        for host, reason in (("/dev/no-such-device", "no such file or directory"),
                             ("/etc/passwd", "not a device node")):
            cid = side.create(devices=[f"{host}:/dev/x:rwm"])
            assert error(side.api.start, cid) == (
                500, f'error gathering device information while adding custom device '
                     f'"{host}": {reason}'), side.name
    # Stricter than 20.10, which takes these at create and leaves them to the runtime.
    for mapping, message in (
            ({"PathOnHost": "dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "r"},
             "dev/null is not an absolute path"),
            ({"PathOnHost": "/dev/null", "PathInContainer": "x", "CgroupPermissions": "r"},
             "x is not an absolute path"),
            ({"PathOnHost": "/dev/null", "PathInContainer": "/x", "CgroupPermissions": "rx"},
             "bad mode specified: rx"),
            ({"PathOnHost": "/dev/null", "PathInContainer": "/x", "CgroupPermissions": ""},
             "bad mode specified: ")):
        assert error(sides[0].api.create_container, IMAGE, ["true"], host_config={
            "NetworkMode": "none", "Devices": [mapping]}) == (400, message)
    assert error(sides[0].create, device_cgroup_rules=["c 1:3 r\n"]) == (
        400, "invalid device cgroup rule format: 'c 1:3 r\n'")


@needs_devices
def test_privileged_gets_the_hosts_devices(ours: Side) -> None:
    block = next((f"/dev/{n}" for n in sorted(os.listdir("/dev"))
                  if stat.S_ISBLK(os.lstat(f"/dev/{n}").st_mode)), None)
    if block is None:
        pytest.skip("no block device under /dev")
    script = ("ls -l /dev/loop-control | cut -c1; ls /dev/net; "
              f"ls -l {block} | cut -c1; cat /sys/fs/cgroup/devices/devices.list; "
              "(exec 4>/dev/loop-control) 2>/dev/null && echo write-ok; "
              "ls -l /dev/lc2 | cut -c1")
    assert ours.run(script, privileged=True, devices=["/dev/loop-control:/dev/lc2"]) == (
        0, "c\n" + "".join(f"{n}\n" for n in sorted(os.listdir("/dev/net")))
        + "b\na *:* rwm\nwrite-ok\nc\n")
    code, out = ours.run("ls /dev")
    assert code == 0 and "loop-control" not in out.split()


# -- PidMode / IpcMode ----------------------------------------------------------------------


def test_pid_and_ipc_of_another_container(sides: list[Side]) -> None:
    for side in sides:
        donor = side.create(["sleep", "300"], ipc_mode="shareable", shm_size="1m")
        side.api.start(donor)
        side.api.exec_start(side.api.exec_create(donor, ["sh", "-c", "echo shared > "
                                                         "/dev/shm/x"]))
        name = side.api.inspect_container(donor)["Name"].lstrip("/")
        assert side.run("cat /dev/shm/x; grep ' /dev/shm ' /proc/mounts; ps -o pid,args | "
                        "grep -c '^ *1 sleep 300'", ipc_mode=f"container:{name}",
                        pid_mode=f"container:{name}", init=True) == (
            0, "shared\nshm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k 0 0\n"
               "1\n"), side.name
        joiner = side.create(pid_mode=f"container:{name}", ipc_mode=f"container:{name}")
        hc = side.api.inspect_container(joiner)["HostConfig"]
        assert (hc["PidMode"], hc["IpcMode"]) == (f"container:{donor}",) * 2, side.name
        # Joining a joiner shares the same /dev/shm.
        middle = side.create(["sleep", "300"], ipc_mode=f"container:{donor}")
        side.api.start(middle)
        assert side.run("cat /dev/shm/x", ipc_mode=f"container:{middle}") == (
            0, "shared\n"), side.name


def test_ipc_modes_and_dev_shm(sides: list[Side]) -> None:
    host_ipc = os.readlink("/proc/self/ns/ipc")
    marker = f"dpy-mount-parity-{uuid.uuid4().hex[:8]}"
    Path("/dev/shm", marker).write_text("host\n")
    try:
        for side in sides:
            assert side.run(f"cat /dev/shm/{marker}; readlink /proc/self/ns/ipc",
                            ipc_mode="host") == (0, f"host\n{host_ipc}\n"), side.name
            assert side.run("ls /dev/shm 2>&1; grep -c ' /dev/shm ' /proc/mounts",
                            ipc_mode="none") == (
                1, "ls: /dev/shm: No such file or directory\n0\n"), side.name
            for mode in ("private", "shareable"):
                assert side.run("grep ' /dev/shm ' /proc/mounts", ipc_mode=mode,
                                shm_size="1m") == (
                    0, "shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k 0 0\n"), \
                    (side.name, mode)
    finally:
        Path("/dev/shm", marker).unlink()


def test_pid_and_ipc_refusals(sides: list[Side]) -> None:
    for side in sides:
        for key in ("pid_mode", "ipc_mode"):
            assert error(side.create, **{key: "container:no-such-ctr"}) == (
                400, "No such container: no-such-ctr"), side.name
        private = side.create(["sleep", "300"])
        side.api.start(private)
        stopped = side.create(ipc_mode="shareable")
        gone = side.create(ipc_mode="shareable")
        answers = {
            ("ipc", private): f"can't join IPC of container {private}: non-shareable IPC "
                              "(hint: use IpcMode:shareable for the donor container)",
            ("ipc", stopped): f"can't join IPC of container {stopped}: container {stopped} "
                              "is not running",
            ("pid", stopped): f"container {stopped} is not running",
            ("ipc", gone): f"can't join IPC of container {gone}: No such container: {gone}",
            ("pid", gone): f"cannot join PID of a non running container: {gone}: "
                           f"No such container: {gone}",
        }
        joiners = {(kind, donor): side.create(**{f"{kind}_mode": f"container:{donor}"})
                   for kind, donor in answers}
        side.api.remove_container(gone, force=True)
        for key, message in answers.items():
            assert error(side.api.start, joiners[key]) == (
                500, message), (side.name, key)


def test_nothing_is_left_mounted(ours: Side, daemon: Daemon) -> None:
    """A shareable /dev/shm goes with its container's run."""
    donor = ours.create(["sleep", "300"], ipc_mode="shareable")
    ours.api.start(donor)
    shm = [p for p in _mounts_under(daemon.tmp) if p.endswith(f"{donor}/shm")]
    assert len(shm) == 1
    ours.api.kill(donor)
    ours.api.wait(donor)
    assert [p for p in _mounts_under(daemon.tmp) if p.endswith(f"{donor}/shm")] == []
    assert re.fullmatch(r"[0-9a-f]{64}", donor)
