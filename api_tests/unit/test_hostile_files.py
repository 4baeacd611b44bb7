"""Reading an image's files (archive/regular.py, containers/bundle.read_in_root) and copying
them into a volume (volumes/tree.copy_into_empty), on real trees made with mknod/mkfifo:
nothing but regular files is ever opened, and nothing blocks."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from dockerd_py.engine.archive import RefusedFile, open_regular, regular
from dockerd_py.engine.containers.bundle import ETC_FILE_LIMIT, read_in_root
from dockerd_py.engine.containers.rootview import View
from dockerd_py.engine.runtime.users import Unreadable
from dockerd_py.engine.volumes.tree import copy_into_empty

PASSWD = "root:x:0:0::/root:/bin/sh\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An image-like tree: /etc/<kind> for each kind of file /etc/passwd could be."""
    etc = tmp_path / "rootfs" / "etc"
    etc.mkdir(parents=True)
    (etc / "ok").write_text(PASSWD)
    os.mkfifo(etc / "fifo")
    os.mknod(etc / "zero", stat.S_IFCHR | 0o644, os.makedev(1, 5))
    os.mknod(etc / "blk", stat.S_IFBLK | 0o600, os.makedev(8, 0))
    (etc / "dir").mkdir()
    (etc / "abs").symlink_to("/etc/shadow")  # the tree's own, missing here
    (etc / "up").symlink_to("../../../../../../etc/ok")  # ".." stops at the root
    (etc / "loop").symlink_to("loop")
    (etc / "big").write_bytes(b"x" * (ETC_FILE_LIMIT + 1))
    (etc / "limit").write_bytes(b"x" * ETC_FILE_LIMIT)
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(etc / "sock"))
    return tmp_path / "rootfs"


@pytest.mark.parametrize(("name", "expected"), [
    ("ok", PASSWD),
    ("up", PASSWD),
    ("missing", None),
    ("ok/below", None),
    ("abs", None),
    ("fifo", Unreadable("open /etc/fifo: not a regular file")),
    ("zero", Unreadable("open /etc/zero: not a regular file")),
    ("blk", Unreadable("open /etc/blk: not a regular file")),
    ("sock", Unreadable("open /etc/sock: not a regular file")),
    ("dir", Unreadable("read /etc/dir: is a directory")),
    ("loop", Unreadable("open /etc/loop: too many levels of symbolic links")),
    ("big", Unreadable("read /etc/big: file too large")),
])
def test_read_in_root(root: Path, name: str, expected: object) -> None:
    assert read_in_root(str(root), f"/etc/{name}") == expected


def test_read_in_root_takes_a_file_at_the_limit(root: Path) -> None:
    assert read_in_root(str(root), "/etc/limit") == "x" * ETC_FILE_LIMIT


def test_read_in_root_from_a_chrooted_view(root: Path) -> None:
    """`docker cp -a` reads in the view, where /proc is the container's."""
    (root / "proc" / "self").mkdir(parents=True)  # a fake the container could plant

    async def main() -> tuple[object, object]:
        view = View(str(root), [])
        await view.open()
        try:
            return (await view.run(read_in_root, "/", "/etc/ok"),
                    await view.run(read_in_root, "/", "/etc/fifo"))
        finally:
            await view.close()

    assert asyncio.run(main()) == (PASSWD, Unreadable("open /etc/fifo: not a regular file"))


def test_open_regular_refuses_what_is_not_a_regular_file(root: Path) -> None:
    etc = root / "etc"
    fd = open_regular(str(etc / "ok"))
    try:
        assert os.read(fd, 100) == PASSWD.encode()
    finally:
        os.close(fd)
    dir_fd = os.open(etc, os.O_PATH | os.O_DIRECTORY)
    try:
        for name in ("fifo", "zero", "blk", "dir", "sock"):  # blk: not even opened (ENXIO)
            with pytest.raises(RefusedFile):
                open_regular(name, dir_fd)
        for name in ("fifo", "zero", "dir"):  # opened, never read from, never blocking
            with pytest.raises(RefusedFile):
                open_regular(name, dir_fd, live=False)
    finally:
        os.close(dir_fd)
    for live in (True, False):
        with pytest.raises(OSError):
            open_regular(str(etc / "up"), live=live)  # a symlink is not followed


def test_the_limit_is_the_callers(root: Path) -> None:
    assert regular.read_in_root(str(root), "etc/ok", len(PASSWD)) == PASSWD.encode()
    with pytest.raises(RefusedFile, match="file too large"):
        regular.read_in_root(str(root), "/etc/ok", len(PASSWD) - 1)


def test_copy_into_empty_makes_nodes_and_opens_none(root: Path, tmp_path: Path) -> None:
    source = root / "etc"
    os.chmod(source / "ok", 0o4755)
    (source / "hard").hardlink_to(source / "ok")
    target = tmp_path / "volume"
    target.mkdir()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (copy_into_empty(str(source), str(target)),
                                              done.set()), daemon=True)
    thread.start()
    assert done.wait(30), "the copy blocks (on the FIFO?)"
    kinds = {p.name: stat.S_IFMT(p.lstat().st_mode) for p in target.iterdir()}
    assert kinds["fifo"] == stat.S_IFIFO and kinds["dir"] == stat.S_IFDIR
    assert kinds["zero"] == stat.S_IFCHR and kinds["blk"] == stat.S_IFBLK
    assert kinds["loop"] == kinds["abs"] == stat.S_IFLNK
    assert "sock" not in kinds  # as go-archive, which has no socket entries
    assert (target / "zero").lstat().st_rdev == os.makedev(1, 5)
    assert os.readlink(target / "abs") == "/etc/shadow"
    assert stat.S_IMODE((target / "ok").stat().st_mode) == 0o4755
    assert (target / "ok").stat().st_ino == (target / "hard").stat().st_ino
    assert (target / "big").stat().st_size == ETC_FILE_LIMIT + 1
