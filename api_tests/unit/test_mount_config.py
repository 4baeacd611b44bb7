"""The grammars of --volumes-from, volume sub-paths and device mappings (pure), and the
pin that makes a volume's sub-path safe to mount (real mounts, root only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockerd_py.engine.containers.config import inherited, mount_points, parse_mount
from dockerd_py.engine.containers.config import parse_volumes_from as vf
from dockerd_py.engine.runtime import devices
from dockerd_py.engine.runtime.defaults import SpecError
from dockerd_py.engine.volumes import safepath
from dockerd_py.errors import InvalidParameter, NotFound


@pytest.mark.parametrize(("spec", "parsed"), [
    ("c", ("c", True)), ("c:", ("c", True)), ("c:ro", ("c", False)), ("c:rw", ("c", True)),
    ("c:ro,z", ("c", False)), ("c:Z,rw", ("c", True)), ("c:cached", ("c", True)),
])
def test_volumes_from_accepted(spec: str, parsed: tuple[str, bool]) -> None:
    assert vf(spec) == parsed


@pytest.mark.parametrize("mode", ["rx", "ro,rw", "z,Z", "rslave", "private", "nocopy", "ro,",
                                  "a:b", ","])
def test_volumes_from_refused(mode: str) -> None:
    with pytest.raises(InvalidParameter, match=f"^invalid mode: {mode}$"):
        vf(f"c:{mode}")
    with pytest.raises(InvalidParameter, match="cannot be an empty string"):
        vf("")


def test_inherited_points_and_their_order() -> None:
    donor = [{"Type": "volume", "Name": "v", "Source": "/s", "Destination": "/d", "RW": True,
              "Mode": "z", "CopyData": True, "Subpath": "sub"},
             {"Type": "bind", "Source": "/h", "Destination": "/b", "RW": False, "Mode": "ro"}]
    got = inherited(donor, rw=True)
    assert got[0] == {**donor[0], "Mode": "", "CopyData": False}
    assert got[1]["RW"] is False and got[1]["Mode"] == ""
    assert [p["RW"] for p in inherited(donor, rw=False)] == [False, False]
    with pytest.raises(NotFound, match="^get: no such volume$"):
        inherited([{"Type": "tmpfs", "Destination": "/t"}], rw=True)
    points = mount_points({"Volumes": {"/d": {}, "/img": {}}}, {"Binds": ["/x:/b"]}, got)
    assert [(p["Destination"], p["Type"], p.get("Source")) for p in points] == [
        ("/d", "volume", "/s"), ("/b", "bind", "/x"), ("/img", "volume", "")]


@pytest.mark.parametrize(("subpath", "error"), [
    ("sub", None), ("a/../b", None), (".", None), ("sub/", None),
    ("..", "relative path"), ("a/../..", "relative path"), ("/abs", "relative path"),
    ("a\0b", "relative path"), (7, "relative path"),
])
def test_subpath_grammar(subpath: object, error: str | None) -> None:
    m = {"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": subpath}}
    if error is None:
        assert parse_mount(m)["Subpath"] == subpath
        return
    with pytest.raises(InvalidParameter, match=error):
        parse_mount(m)


def test_mount_options_of_another_type_are_refused() -> None:
    with pytest.raises(InvalidParameter, match='type "bind": field VolumeOptions must not'):
        parse_mount({"Type": "bind", "Source": "/", "Target": "/x",
                     "VolumeOptions": {"Subpath": "a"}})
    with pytest.raises(InvalidParameter, match="must not set Subpath when using anonymous"):
        parse_mount({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "a"}})


@pytest.mark.parametrize(("mapping", "result"), [
    ({"PathOnHost": "/dev/a", "CgroupPermissions": "rwm"}, ("/dev/a", "/dev/a", "rwm")),
    ({"PathOnHost": "/dev/a", "PathInContainer": "/dev/b/../c", "CgroupPermissions": "mr"},
     ("/dev/a", "/dev/c", "mr")),
    ({"PathOnHost": "dev/a", "CgroupPermissions": "r"}, "dev/a is not an absolute path"),
    ({"PathOnHost": "/dev/a\0", "CgroupPermissions": "r"}, "is not an absolute path"),
    ({"PathOnHost": "/dev/a", "CgroupPermissions": "rr"}, "bad mode specified: rr"),
    ({"PathOnHost": "/dev/a", "CgroupPermissions": "x"}, "bad mode specified: x"),
    ({"PathOnHost": "/dev/a"}, "bad mode specified: "),
    ("/dev/a", "an object"),
])
def test_device_mapping_grammar(mapping: object, result: object) -> None:
    if isinstance(result, tuple):
        assert devices.check([mapping]) == [result]
        return
    with pytest.raises(SpecError, match=str(result).replace("\0", "")):
        devices.check([mapping])


def test_device_nodes_from_the_host() -> None:
    null = devices.from_path("/dev/null", "/dev/x", "r")
    assert [(d.path, d.type, d.major, d.minor, d.permissions) for d in null] == [
        ("/dev/x", "c", 1, 3, "r")]
    with pytest.raises(Exception, match='custom device "/etc/passwd": not a device node'):
        devices.from_path("/etc/passwd", "/x", "rwm")
    every = {d.path for d in devices.host_devices()}
    assert "/dev/null" in every and "/dev/console" not in every
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in every)


# -- safepath (real mounts) ---------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    base = tmp_path / "_data"
    (base / "sub" / "deep").mkdir(parents=True)
    (base / "sub" / "f").write_text("inside\n")
    (tmp_path / "secret").write_text("outside\n")
    (base / "abs").symlink_to("/etc")
    (base / "up").symlink_to("../secret")
    (base / "lnk").symlink_to("sub")
    return base


def test_subpath_resolution_stays_inside(volume: Path) -> None:
    for inside in ("sub", "lnk", "sub/../sub/deep", "."):
        os.close(safepath.open_subpath(str(volume), inside))
    for escape in ("abs", "up", "../secret", "lnk/../../secret"):
        with pytest.raises(InvalidParameter, match=f"escapes the base directory, base: "
                                                   f"{volume}, subpath: {escape}$"):
            os.close(safepath.open_subpath(str(volume), escape))
    with pytest.raises(NotFound, match=f"cannot access path {volume}/sub/no/x: "
                                       f"lstat {volume}/sub/no: no such file or directory$"):
        safepath.open_subpath(str(volume), "sub/no/x")


@needs_root
def test_a_pin_holds_what_was_checked(volume: Path, tmp_path: Path) -> None:
    pins = tmp_path / "pins"
    at = safepath.pin(str(volume), "sub", str(pins / "0"))
    try:
        # The directory is swapped for a link out of the volume after the check: the pin
        # still shows what was checked.
        (volume / "sub").rename(volume / "moved")
        (volume / "sub").symlink_to("/etc")
        assert Path(at, "f").read_text() == "inside\n"
        file_pin = safepath.pin(str(volume), "moved/f", str(pins / "1"))
        assert Path(file_pin).read_text() == "inside\n"
    finally:
        safepath.unpin_all(str(pins))
    assert not pins.exists()
