"""Volumes through the stock CLI and docker-py, plus the volume service in-process.

Messages and output shapes follow dockerd 28 (moby volume/service, volume/local) and the
28.2 CLI (cli/command/volume). Prune tests always scope themselves with a label unique to
the test, so they never touch volumes other tests own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dockerd_py.engine.containers.store import ContainerStore
from dockerd_py.engine.events import EventBus
from dockerd_py.engine.filters import Filters
from dockerd_py.engine.metadata.db import Database
from dockerd_py.engine.volumes.records import ANONYMOUS_LABEL
from dockerd_py.engine.volumes.service import VolumeService
from dockerd_py.errors import Conflict, InternalError, InvalidParameter, NotFound

HEX64 = re.compile(r"^[0-9a-f]{64}$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")
NAME_MESSAGE = ('"{0}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path")


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def volumes(docker) -> Iterator[list[str]]:
    """Volume names appended here are removed (rm -f) after the test."""
    names: list[str] = []
    yield names
    if names:
        docker("volume", "rm", "-f", *names, check=False)


def create(docker, volumes: list[str], *args: str) -> str:
    name = docker("volume", "create", *args).stdout.strip()
    volumes.append(name)
    return name


def inspect(docker, name: str) -> dict[str, Any]:
    out = json.loads(docker("volume", "inspect", name).stdout)
    assert isinstance(out, list) and len(out) == 1
    return out[0]


def ls(docker, *args: str) -> list[str]:
    return docker("volume", "ls", "-q", *args).stdout.split()


def mountinfo(path: str) -> list[list[str]]:
    """mountinfo lines (split) whose mount point is `path`."""
    with open("/proc/self/mountinfo") as f:
        rows = [line.split() for line in f]
    return [r for r in rows if r[4] == path]


# --- create / inspect --------------------------------------------------------------------------


def test_create_named_and_inspect(docker, daemon, volumes, unique_name) -> None:
    name = unique_name("vol")
    assert create(docker, volumes, name) == name
    raw = docker("volume", "inspect", name).stdout
    vol = json.loads(raw)[0]
    mountpoint = str(Path(daemon.data_root) / "volumes" / name / "_data")
    # the CLI omits empty DriverOpts/Labels (omitempty), so dockerd stores and shows null
    assert vol == {"CreatedAt": vol["CreatedAt"], "Driver": "local", "Labels": None,
                   "Mountpoint": mountpoint, "Name": name, "Options": None, "Scope": "local"}
    assert list(vol) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                         "Scope"]  # dockerd's order: the CLI prints the raw JSON re-indented
    assert RFC3339.match(vol["CreatedAt"]), vol["CreatedAt"]
    assert docker("volume", "inspect", "-f", "{{.Mountpoint}}", name).stdout == mountpoint + "\n"
    assert docker("volume", "inspect", "--format", "{{.Driver}} {{.Scope}}",
                  name).stdout == "local local\n"
    # layout and permissions as dockerd: volumes/ and volumes/<name>/ 0701, _data 0755 root
    root = Path(daemon.data_root) / "volumes"
    assert stat.S_IMODE(root.stat().st_mode) == 0o701
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o701
    data = (root / name / "_data").stat()
    assert stat.S_ISDIR(data.st_mode) and stat.S_IMODE(data.st_mode) == 0o755
    assert (data.st_uid, data.st_gid) == (0, 0)
    assert os.listdir(root / name / "_data") == []


def test_create_anonymous(docker, volumes) -> None:
    name = create(docker, volumes)
    assert HEX64.match(name), name
    vol = inspect(docker, name)
    assert vol["Labels"] == {ANONYMOUS_LABEL: ""}
    assert vol["Name"] == name and vol["Options"] is None


def test_create_with_labels_and_options(docker, volumes, unique_name) -> None:
    name = create(docker, volumes, "--label", "a=b", "--label", "c", "-o", "type=tmpfs",
                  "-o", "device=tmpfs", "-o", "o=size=10m,uid=1000", unique_name("vol"))
    vol = inspect(docker, name)
    assert vol["Labels"] == {"a": "b", "c": ""}
    assert vol["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=10m,uid=1000"}
    # created, not mounted: mounting happens when a container first uses it
    assert mountinfo(vol["Mountpoint"]) == []
    assert docker("volume", "inspect", "-f", '{{index .Labels "a"}}', name).stdout == "b\n"


def test_duplicate_create_returns_existing(docker, volumes, unique_name) -> None:
    since = time.time()
    name = create(docker, volumes, "--label", "first=1", unique_name("vol"))
    before = inspect(docker, name)
    # as dockerd: the existing volume comes back unchanged (labels/options not compared)
    assert docker("volume", "create", "--label", "second=2", name).stdout == name + "\n"
    assert inspect(docker, name) == before
    events = docker("events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
                    "--filter", "type=volume", "--filter", f"volume={name}",
                    "--format", "{{.Action}}").stdout.split()
    assert events == ["create"]


@pytest.mark.parametrize("bad", ["a/b", "_x", "a b", "ab$", ".hidden"])
def test_invalid_name(docker, bad: str) -> None:
    r = docker("volume", "create", bad, check=False)
    assert r.returncode == 1
    assert r.stderr == f"Error response from daemon: create {bad}: {NAME_MESSAGE.format(bad)}\n"


def test_name_too_short(docker) -> None:
    r = docker("volume", "create", "x", check=False)
    assert r.returncode == 1
    assert r.stderr == ("Error response from daemon: create x: volume name is too short, names "
                        "should be at least two alphanumeric characters\n")


@pytest.mark.parametrize(("opts", "message"), [
    (["-o", "foo=bar"], 'invalid option: "foo"'),
    (["-o", "type=tmpfs"], 'missing required option: "device"'),
    (["-o", "device=tmpfs"], 'missing required option: "type"'),
    (["-o", "size=10m"], "quota size requested but no quota support"),
    (["-o", "size=lots"], "invalid size: 'lots'"),
    (["-o", "type=cifs", "-o", "device=//host:445/share"],
     "port not allowed in CIFS device URL, include 'port' in 'o='"),
])
def test_invalid_options(docker, unique_name, opts: list[str], message: str) -> None:
    name = unique_name("vol")
    r = docker("volume", "create", *opts, name, check=False)
    assert r.returncode == 1
    assert r.stderr == f"Error response from daemon: create {name}: {message}\n"
    assert docker("volume", "inspect", name, check=False).returncode == 1


def test_unknown_driver(docker, unique_name) -> None:
    name = unique_name("vol")
    r = docker("volume", "create", "-d", "nope", name, check=False)
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: create {name}: error looking up volume "
                        'plugin nope: plugin "nope" not found\n')


# --- ls ----------------------------------------------------------------------------------------


def test_ls_filters_and_format(docker, volumes, unique_name) -> None:
    prefix = unique_name("ls")
    a = create(docker, volumes, "--label", "tier=web", "--label", "ls-test", f"{prefix}-a")
    b = create(docker, volumes, "--label", "tier=db", "--label", "ls-test", f"{prefix}-b")
    c = create(docker, volumes, "--label", f"owner={prefix}")  # anonymous
    assert set(ls(docker)) >= {a, b, c}
    assert ls(docker, "--filter", f"name={prefix}") == [a, b]
    assert ls(docker, "--filter", f"name=^{prefix}-b$") == [b]  # name is a regexp
    assert ls(docker, "--filter", f"name={prefix}", "--filter", "label=tier=web") == [a]
    assert ls(docker, "--filter", f"name={prefix}", "--filter", "label=tier") == [a, b]
    assert ls(docker, "--filter", f"label=owner={prefix}") == [c]
    assert ls(docker, "--filter", f"name={prefix}", "--filter", "driver=local") == [a, b]
    assert ls(docker, "--filter", f"name={prefix}", "--filter", "driver=other") == []
    dangling = ls(docker, "--filter", "dangling=true")
    assert {a, b, c} <= set(dangling)
    assert not {a, b, c} & set(ls(docker, "--filter", "dangling=false"))

    table = docker("volume", "ls", "--filter", f"name={prefix}").stdout.splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["DRIVER", "VOLUME NAME"]
    assert [re.split(r"\s+", row) for row in table[1:]] == [["local", a], ["local", b]]
    out = docker("volume", "ls", "--filter", f"name={prefix}-a", "--format",
                 "{{.Name}}|{{.Driver}}|{{.Scope}}|{{.Labels}}|{{.Mountpoint}}").stdout
    name, driver, scope, labels, mountpoint = out.rstrip("\n").split("|")
    assert (name, driver, scope) == (a, "local", "local")
    assert sorted(labels.split(",")) == ["ls-test=", "tier=web"]
    assert mountpoint.endswith(f"/volumes/{a}/_data")
    assert docker("volume", "ls", "--filter", f"name={prefix}-b", "--format",
                  "json").stdout.count('"Name":"' + b + '"') == 1


def test_ls_bad_filters(docker) -> None:
    r = docker("volume", "ls", "--filter", "foo=bar", check=False)
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: invalid filter 'foo'\n"
    r = docker("volume", "ls", "--filter", "dangling=maybe", check=False)
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: invalid filter 'dangling=[maybe]'\n"


# --- rm ----------------------------------------------------------------------------------------


def test_rm(docker, daemon, volumes, unique_name) -> None:
    name = create(docker, volumes, unique_name("vol"))
    data = Path(daemon.data_root) / "volumes" / name / "_data"
    (data / "file").write_text("x" * 100)
    assert docker("volume", "rm", name).stdout == name + "\n"
    assert not (Path(daemon.data_root) / "volumes" / name).exists()
    r = docker("volume", "inspect", name, check=False)
    assert r.returncode == 1 and f"get {name}: no such volume" in r.stderr


def test_rm_missing(docker) -> None:
    r = docker("volume", "rm", "nope", check=False)
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: get nope: no such volume\n"
    assert r.stdout == ""
    # -f: a missing volume is not an error (dockerd's purge-on-error)
    r = docker("volume", "rm", "-f", "nope")
    assert r.stdout == "nope\n"


def test_rm_several_reports_each_error(docker, volumes, unique_name) -> None:
    name = create(docker, volumes, unique_name("vol"))
    r = docker("volume", "rm", "nope1", name, "nope2", check=False)
    assert r.returncode == 1
    assert r.stdout == name + "\n"
    assert r.stderr == ("Error response from daemon: get nope1: no such volume\n"
                        "Error response from daemon: get nope2: no such volume\n")


# --- prune -------------------------------------------------------------------------------------


def test_prune_anonymous_only_by_default(docker, daemon, volumes, unique_name) -> None:
    tag = f"prune={unique_name('p')}"
    anon = create(docker, volumes, "--label", tag)
    named = create(docker, volumes, "--label", tag, unique_name("vol"))
    tmpfs = create(docker, volumes, "--label", tag, "-o", "type=tmpfs", "-o", "device=tmpfs")
    (Path(daemon.data_root) / "volumes" / anon / "_data" / "blob").write_bytes(b"z" * 2000)
    r = docker("volume", "prune", "-f", "--filter", f"label={tag}")
    assert r.stdout == f"Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 2kB\n"
    assert set(ls(docker, "--filter", f"label={tag}")) == {named, tmpfs}
    # nothing left to prune without all=true
    r = docker("volume", "prune", "-f", "--filter", f"label={tag}")
    assert r.stdout == "Total reclaimed space: 0B\n"


def test_prune_all_and_label_filters(docker, volumes, unique_name) -> None:
    tag = f"prune={unique_name('p')}"
    keep = create(docker, volumes, "--label", tag, "--label", "keep", unique_name("keep"))
    drop = create(docker, volumes, "--label", tag, unique_name("drop"))
    # driver options: never pruned (dockerd: such data is not really local)
    opted = create(docker, volumes, "--label", tag, "-o", "type=tmpfs", "-o", "device=tmpfs",
                   unique_name("opt"))
    r = docker("volume", "prune", "-f", "--filter", "all=true", "--filter", f"label={tag}",
               "--filter", "label!=keep")
    assert r.stdout.startswith(f"Deleted Volumes:\n{drop}\n\n")
    assert set(ls(docker, "--filter", f"label={tag}")) == {keep, opted}
    r = docker("volume", "prune", "-a", "-f", "--filter", f"label={tag}")
    assert r.stdout.startswith(f"Deleted Volumes:\n{keep}\n\n")
    assert ls(docker, "--filter", f"label={tag}") == [opted]


def test_prune_bad_filters(docker) -> None:
    r = docker("volume", "prune", "-f", "--filter", "dangling=true", check=False)
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: invalid filter 'dangling'\n"
    r = docker("volume", "prune", "-f", "--filter", "all=maybe", check=False)
    assert r.returncode == 1
    assert r.stderr == ("Error response from daemon: invalid filter 'all': strconv.ParseBool: "
                        'parsing "maybe": invalid syntax\n')


# --- events ------------------------------------------------------------------------------------


def test_events(docker, volumes, unique_name) -> None:
    since = time.time()
    name = create(docker, volumes, unique_name("ev"))
    docker("volume", "rm", name)
    tag = f"ev={unique_name('p')}"
    anon = create(docker, volumes, "--label", tag)
    docker("volume", "prune", "-f", "--filter", f"label={tag}")
    until = time.time()
    out = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                 "--filter", "type=volume").stdout.splitlines()
    ours = [line for line in out if name in line or anon in line or " prune " in line]
    pattern = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z volume (\w+) (\S*) ?\((.*)\)$"
    parsed = [re.match(pattern, line) for line in ours]
    assert all(parsed), ours
    assert [(m[1], m[2], m[3]) for m in parsed if m] == [
        ("create", name, "driver=local"), ("destroy", name, "driver=local"),
        ("create", anon, "driver=local"), ("destroy", anon, "driver=local"),
        ("prune", "", "reclaimed=0")]
    # filtering by volume name
    only = docker("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                  "--filter", f"volume={name}", "--format", "{{.Type}} {{.Action}}").stdout
    assert only.splitlines() == ["volume create", "volume destroy"]


# --- restart -----------------------------------------------------------------------------------


def test_survives_restart(docker, daemon, volumes, unique_name) -> None:
    name = create(docker, volumes, "--label", "k=v", "-o", "type=tmpfs", "-o", "device=tmpfs",
                  unique_name("keep"))
    plain = create(docker, volumes, unique_name("plain"))
    anon = create(docker, volumes)
    before = {n: inspect(docker, n) for n in (name, plain, anon)}
    data = Path(before[plain]["Mountpoint"])
    (data / "kept").write_text("still here")
    daemon.restart()
    assert {n: inspect(docker, n) for n in (name, plain, anon)} == before
    assert (data / "kept").read_text() == "still here"


def test_startup_reconciles_directories(docker, daemon, volumes, unique_name) -> None:
    """A volume directory without a record is adopted (dockerd lists it too), a record whose
    directory is gone is forgotten, and half-created or half-removed leftovers go away."""
    root = Path(daemon.data_root) / "volumes"
    gone = create(docker, volumes, unique_name("gone"))
    orphan = unique_name("orphan")
    volumes.append(orphan)
    daemon.stop()
    try:
        (root / orphan / "_data").mkdir(parents=True)
        (root / orphan / "_data" / "f").write_text("user data")
        subprocess.run(["rm", "-rf", str(root / gone)], check=True)
        (root / ".trash-0123456789abcdef" / "_data").mkdir(parents=True)
        (root / ".new-0123456789abcdef" / "_data").mkdir(parents=True)
        (root / "not-a-volume").mkdir()
    finally:
        daemon.start()
    vol = inspect(docker, orphan)
    assert vol["Labels"] is None and vol["Options"] is None  # nothing was recorded
    assert (Path(vol["Mountpoint"]) / "f").read_text() == "user data"
    r = docker("volume", "inspect", gone, check=False)
    assert r.returncode == 1 and f"get {gone}: no such volume" in r.stderr
    assert "not-a-volume" not in ls(docker)
    deadline = time.monotonic() + 10
    while {".trash-0123456789abcdef", ".new-0123456789abcdef"} & set(os.listdir(root)):
        assert time.monotonic() < deadline, os.listdir(root)
        time.sleep(0.05)
    assert (root / "not-a-volume").is_dir()  # not ours to delete
    (root / "not-a-volume").rmdir()


# --- docker-py and raw API ---------------------------------------------------------------------


def test_dockerpy(dockerpy, volumes, unique_name) -> None:
    name = unique_name("py")
    vol = dockerpy.volumes.create(name=name, driver="local", labels={"x": "y"})
    volumes.append(name)
    assert vol.name == name and vol.attrs["Labels"] == {"x": "y"}
    assert vol.attrs["Options"] is None  # docker-py sends DriverOpts: null
    assert dockerpy.volumes.get(name).attrs == vol.attrs
    assert [v.name for v in dockerpy.volumes.list(filters={"label": "x=y", "name": name})] == [
        name]
    tag = unique_name("py")
    anon = dockerpy.volumes.create(labels={"py": tag})
    volumes.append(anon.name)
    assert HEX64.match(anon.name) and anon.attrs["Labels"] == {"py": tag, ANONYMOUS_LABEL: ""}
    report = dockerpy.volumes.prune(filters={"label": [f"py={tag}"]})
    assert report == {"VolumesDeleted": [anon.name], "SpaceReclaimed": 0}
    vol.remove()
    import docker as docker_sdk

    with pytest.raises(docker_sdk.errors.NotFound, match=f"get {name}: no such volume"):
        dockerpy.volumes.get(name)
    api = dockerpy.api
    with pytest.raises(docker_sdk.errors.APIError, match="invalid option"):
        api.create_volume(unique_name("py"), driver_opts={"bogus": "1"})


def test_raw_api_shapes(dockerpy, volumes, unique_name) -> None:
    api = dockerpy.api
    listing = api.volumes()
    assert set(listing) == {"Volumes", "Warnings"}
    assert listing["Warnings"] is None and isinstance(listing["Volumes"], list)
    name = unique_name("raw")
    res = api._post_json(api._url("/volumes/create"), data={"name": name})  # Go: any case
    volumes.append(name)
    assert res.status_code == 201 and res.json()["Name"] == name
    res = api._post_json(api._url("/volumes/create"), data={"Name": 5})
    assert res.status_code == 400 and "cannot unmarshal number" in res.json()["message"]
    res = api._delete(api._url("/volumes/{0}", name))
    assert res.status_code == 204
    res = api._put(api._url("/volumes/{0}", name))
    assert res.status_code == 503
    # before 1.42, prune considered every unused volume, not only anonymous ones
    old = unique_name("p")
    kept = api.create_volume(unique_name("old"), labels={old: "1"})["Name"]
    volumes.append(kept)
    res = api._post(api._url("/volumes/prune"), params={"filters": json.dumps({"label": [old]})})
    assert res.json() == {"VolumesDeleted": [], "SpaceReclaimed": 0}
    res = api._post(api.base_url + "/v1.41/volumes/prune",
                    params={"filters": json.dumps({"label": [old]})})
    assert res.json() == {"VolumesDeleted": [kept], "SpaceReclaimed": 0}


# --- containers (through the container service's calls) ----------------------------------------


def test_in_use_by_container(docker, volumes, busybox_image, unique_name) -> None:
    name = create(docker, volumes, unique_name("used"))
    cid = docker("create", "-v", f"{name}:/data", busybox_image, "true").stdout.strip()
    try:
        r = docker("volume", "rm", "-f", name, check=False)
        assert r.returncode == 1
        assert r.stderr == (f"Error response from daemon: remove {name}: volume is in use - "
                            f"[{cid}]\n")
        assert name not in ls(docker, "--filter", "dangling=true")
        assert name in ls(docker, "--filter", "dangling=false")
    finally:
        docker("rm", "-f", cid)
    assert name in ls(docker, "--filter", "dangling=true")
    docker("volume", "rm", name)


def test_failed_create_removes_the_volumes_it_made(docker, volumes, busybox_image,
                                                   unique_name) -> None:
    """The anonymous and the new named volume are made before the invalid name fails the
    create: the anonymous one goes again; named ones stay, the new one included, as with
    dockerd."""
    kept = create(docker, volumes, unique_name("kept"))
    fresh = unique_name("fresh")
    volumes.append(fresh)  # removed by the fixture should the create leak it
    before = ls(docker)
    r = docker("create", "-v", f"{kept}:/kept", "-v", f"{fresh}:/fresh",
               "--mount", "type=volume,dst=/anon",
               "--mount", "type=volume,src=bad@name,dst=/bad", busybox_image, "true",
               check=False)
    assert r.returncode != 0
    assert r.stderr.startswith("Error response from daemon: create bad@name: "
                               + NAME_MESSAGE.format("bad@name")), r.stderr
    assert set(ls(docker)) == {*before, fresh}
    assert kept in before and fresh not in before


def test_failed_create_keeps_volumes_in_use(docker, volumes, busybox_image,
                                            unique_name) -> None:
    """A volume another container holds is not the failed create's to remove."""
    shared = unique_name("shared")
    volumes.append(shared)
    cid = docker("create", "-v", f"{shared}:/data", busybox_image, "true").stdout.strip()
    try:
        r = docker("create", "-v", f"{shared}:/data",
                   "--mount", "type=volume,src=bad@name,dst=/bad", busybox_image, "true",
                   check=False)
        assert r.returncode != 0
        assert shared in ls(docker)
    finally:
        docker("rm", "-f", cid)


# --- the service in-process (real mounts; root) -------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[VolumeService]:
    db = Database(str(tmp_path / "metadata.db"))
    events = EventBus()
    svc = VolumeService(db, events, str(tmp_path),
                        ContainerStore(db, events, str(tmp_path / "containers")))
    try:
        yield svc
    finally:
        for point in sorted((r[4] for r in _mountinfo_all() if r[4].startswith(str(tmp_path))),
                            key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        db.close()


def _mountinfo_all() -> list[list[str]]:
    with open("/proc/self/mountinfo") as f:
        return [line.split() for line in f]


def _fstype(row: list[str]) -> str:
    return row[row.index("-") + 1]


async def test_tmpfs_volume_really_mounts(service: VolumeService) -> None:
    vol = await service.create("tmp", "local", {"type": "tmpfs", "device": "tmpfs",
                                                "o": "size=10m,mode=1770"}, {})
    assert mountinfo(vol.mountpoint) == []
    path = await service.mount("tmp", "c1", destination="/data")
    assert path == vol.mountpoint
    rows = mountinfo(path)
    assert len(rows) == 1 and _fstype(rows[0]) == "tmpfs"
    st = os.statvfs(path)
    assert st.f_blocks * st.f_frsize == 10 << 20
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o1770
    # a second user shares the mount; the device goes away after the last one
    await service.mount("tmp", "c2")
    assert len(mountinfo(path)) == 1
    await service.unmount("tmp", "c1")
    assert len(mountinfo(path)) == 1
    await service.unmount("tmp", "c2")
    assert mountinfo(path) == []
    actions = [(e.action, e.attributes.get("container")) for e in service.events.since(0, None)]
    assert actions == [("create", None), ("mount", "c1"), ("mount", "c2"), ("unmount", "c1"),
                       ("unmount", "c2")]
    mount_event = service.events.since(0, None)[1]
    assert dict(mount_event.attributes) == {"driver": "local", "container": "c1",
                                            "destination": "/data", "read/write": "true",
                                            "propagation": ""}


async def test_mount_failure_is_reported(service: VolumeService) -> None:
    await service.create("bad", "local", {"type": "ext4", "device": "/dev/nonexistent-dev"})
    with pytest.raises(InternalError, match="failed to mount local volume"):
        await service.mount("bad", "c1")
    assert mountinfo(service.path("bad")) == []
    await service.remove("bad")


class _Users:
    """The service's VolumeUsers by hand: volume name -> container ids."""

    def __init__(self, users: dict[str, list[str]]) -> None:
        self.users = users

    def volume_users(self, *, running_only: bool) -> dict[str, list[str]]:
        return {name: list(ids) for name, ids in self.users.items() if ids}


async def test_remove_unmounts_and_in_use_hook(service: VolumeService) -> None:
    await service.create("busy", "local", {"type": "tmpfs", "device": "tmpfs"})
    users: dict[str, list[str]] = {"busy": ["c1", "c2"]}
    service.users = _Users(users)
    with pytest.raises(Conflict) as e:
        await service.remove("busy", force=True)  # force does not override "in use"
    assert str(e.value) == "remove busy: volume is in use - [c1, c2]"
    listed, warnings = await service.list(Filters.of({"dangling": ["true"]}))
    assert listed == [] and warnings == []
    report = await service.prune(Filters.of({"all": ["true"]}))
    assert report == {"VolumesDeleted": [], "SpaceReclaimed": 0}

    service.users = _Users({})
    await service.mount("busy", "c1")
    with pytest.raises(InternalError, match="volume has active mounts"):
        await service.remove("busy")
    await service.unmount("busy", "c1")
    await service.mount("busy", "c3")
    await service.unmount("busy", "gone-container")  # not a holder: still mounted
    assert len(mountinfo(service.path("busy"))) == 1
    service.mounts.refs.clear()  # e.g. after a restart without live containers: rm still unmounts
    await service.remove("busy")
    assert not os.path.exists(os.path.dirname(service.path("busy")))
    with pytest.raises(NotFound, match="get busy: no such volume"):
        await service.get("busy")


async def test_restore_from_containers_table(tmp_path: Path, service: VolumeService) -> None:
    await service.create("shared", "local", {"type": "tmpfs", "device": "tmpfs"})
    await service.mount("shared", "c1")
    point = {"Type": "volume", "Name": "shared", "Destination": "/d"}

    def insert(conn: Any) -> None:
        for seq, (cid, status) in enumerate([("c1", "running"), ("c2", "exited")]):
            conn.execute(
                "INSERT INTO containers (id, name, image, image_id, created, seq, config,"
                " host_config, mounts, state) VALUES (?, ?, 'i', 'sha256:x', '', ?, '{}', '{}',"
                " ?, ?)", (cid, cid, seq, json.dumps([point]), json.dumps({"status": status})))

    await service.db.run(insert)
    # a new service over the same root, as after a daemon restart (the tmpfs stays mounted);
    # the container records are loaded first, as the daemon's start does
    store = ContainerStore(service.db, EventBus(), str(tmp_path / "containers"))
    await store.load()
    again = VolumeService(service.db, EventBus(), str(tmp_path), store)
    assert "shared" in again.mounts.mounted
    assert await again.users_of("shared") == ["c1", "c2"]  # the containers table, via the store
    await again.unmount("shared", "c2")  # c2 is not running: c1 still holds the mount
    assert len(mountinfo(again.path("shared"))) == 1
    await again.unmount("shared", "c1")
    assert mountinfo(again.path("shared")) == []


async def test_populate_preserves_tree(tmp_path: Path, service: VolumeService) -> None:
    src = tmp_path / "image" / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_bytes(b"content" * 1000)
    os.chown(src / "sub" / "file", 1234, 5678)
    os.chmod(src / "sub" / "file", 0o4750)
    os.setxattr(src / "sub" / "file", "user.note", b"hello")
    os.setxattr(src / "sub" / "file", "security.capability",
                bytes.fromhex("0100000200200000000000000000000000000000"))
    os.link(src / "sub" / "file", src / "hardlink")
    os.symlink("sub/file", src / "link")
    os.lchown(src / "link", 42, 43)
    os.symlink("/etc/shadow", src / "absolute")  # copied as a link, never followed
    os.mkfifo(src / "fifo", 0o640)
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chown(src, 1000, 1000)
    os.chmod(src, 0o750)
    os.utime(src / "sub", (1_000_000, 1_000_000))

    vol = await service.create("pop", "local", None, None)
    assert await service.populate("pop", str(src)) is True
    dst = Path(vol.mountpoint)
    assert sorted(os.listdir(dst)) == ["absolute", "fifo", "hardlink", "link", "null", "sub"]
    f = os.lstat(dst / "sub" / "file")
    assert (f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)) == (1234, 5678, 0o4750)
    assert (dst / "sub" / "file").read_bytes() == b"content" * 1000
    assert os.getxattr(dst / "sub" / "file", "user.note") == b"hello"
    assert os.getxattr(dst / "sub" / "file", "security.capability") == bytes.fromhex(
        "0100000200200000000000000000000000000000")
    assert os.lstat(dst / "hardlink").st_ino == f.st_ino and f.st_nlink == 2
    link = os.lstat(dst / "link")
    assert stat.S_ISLNK(link.st_mode) and os.readlink(dst / "link") == "sub/file"
    assert (link.st_uid, link.st_gid) == (42, 43)
    assert os.readlink(dst / "absolute") == "/etc/shadow"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    assert stat.S_IMODE(os.lstat(dst / "fifo").st_mode) == 0o640
    null = os.lstat(dst / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert os.stat(dst / "sub").st_mtime == 1_000_000
    root = os.stat(dst)  # the volume root takes the image directory's owner and mode
    assert (root.st_uid, root.st_gid, stat.S_IMODE(root.st_mode)) == (1000, 1000, 0o750)
    # only into an empty volume, and only from a directory
    (src / "new").write_text("later")
    assert await service.populate("pop", str(src)) is False
    assert not (dst / "new").exists()
    empty = await service.create("empty", "local")
    assert await service.populate("empty", str(tmp_path / "missing")) is False
    # apparent sizes, a hard link once, symlinks by their target's length, directories not
    expected = 7000 + len("sub/file") + len("/etc/shadow")
    assert await service.usage("pop") == expected
    assert await service.usage(empty.name) == 0
    sized = {v.name: (size, refs) for v, size, refs in await service.disk_usage()}
    assert sized == {"pop": (expected, 0), "empty": (0, 0)}


async def test_populate_tmpfs_after_mount(tmp_path: Path, service: VolumeService) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    vol = await service.create("tm", "local", {"type": "tmpfs", "device": "tmpfs"})
    await service.mount("tm", "c1")
    assert await service.populate("tm", str(src)) is True
    assert (Path(vol.mountpoint) / "f").read_text() == "x"
    await service.unmount("tm", "c1")
    assert not (Path(vol.mountpoint) / "f").exists()  # tmpfs content goes with the mount


async def test_container_glue(service: VolumeService) -> None:
    named, made_named = await service.attach_point("c1", {"Type": "volume", "Name": "named",
                                                          "Destination": "/n", "RW": False,
                                                          "Driver": "local"})
    anon, made_anon = await service.attach_point("c1", {"Type": "volume", "Name": "",
                                                        "Destination": "/a", "RW": True,
                                                        "Driver": "local"})
    assert made_named and made_anon
    _, made_again = await service.attach_point("c2", {"Type": "volume", "Name": "named",
                                                      "Destination": "/n", "Driver": "local"})
    assert not made_again  # an existing volume is found, not made
    assert named["Name"] == "named" and named["Source"] == service.path("named")
    assert HEX64.match(anon["Name"]) and (await service.get(anon["Name"])).anonymous
    container = SimpleNamespace(id="c1", mounts=[named, anon, {"Type": "bind", "Source": "/x"}])
    await service.before_start(container)
    mounts = [e for e in service.events.since(0, None) if e.action == "mount"]
    assert [(e.actor_id, e.attributes["read/write"]) for e in mounts] == [
        ("named", "false"), (anon["Name"], "true")]
    await service.detach_container(container, remove_anonymous=True)
    assert [v.name for v in (await service.list())[0]] == ["named"]


async def test_engine_level_validation(service: VolumeService) -> None:
    with pytest.raises(InvalidParameter, match='create a/b: "a/b" includes invalid characters'):
        await service.create("a/b")
    with pytest.raises(NotFound, match='plugin "flocker" not found'):
        await service.create("ok", "flocker")
    with pytest.raises(InvalidParameter, match="invalid filter 'all=\\[0 1\\]'"):
        await service.prune(Filters.of({"all": ["1", "0"]}))
    vol = await service.create("ab", labels=None)
    assert vol.labels is None and vol.options is None
    assert (await service.create("ab", labels={"other": "x"})) == vol
    bad_newline = "ab\n"
    with pytest.raises(InvalidParameter):
        await service.create(bad_newline)
    await asyncio.sleep(0)
