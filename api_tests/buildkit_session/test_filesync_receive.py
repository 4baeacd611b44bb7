"""sync_directory against a client that sends a real directory as fsutil's sender does
(fsutil_sender.py), and against hostile streams: refused, nothing written outside dest."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from dockerd_py.buildkit.session import SessionError, sync_directory
from dockerd_py.buildkit.session.wire import Limits
from dockerd_py.protos.fsutil import stat_pb2, wire_pb2

from .conftest import Client
from .fsutil_sender import GO_DIR, GO_IRREGULAR, GO_SOCKET, GO_SYMLINK, Sender

P = wire_pb2.Packet
MTIME = 1_600_000_000_123_456_789


def make_tree(root: Path) -> None:
    (root / "dir/sub/deeper").mkdir(parents=True)
    (root / "empty").write_bytes(b"")
    (root / "small.txt").write_text("hello\n")
    (root / "dir/big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (root / "dir/sub/deeper/leaf").write_text("leaf")
    (root / "a.txt").write_text("a")
    (root / "a-b").mkdir()  # "a-b/x" is sent before "a.txt": fsutil orders by name per dir
    (root / "a-b/x").write_text("x")
    (root / "ro").write_text("read only")
    os.chmod(root / "ro", 0o400)
    (root / "suid").write_text("#!/bin/sh\n")
    os.chmod(root / "suid", 0o4755)
    (root / "sticky").mkdir()
    os.chmod(root / "sticky", 0o1777)
    (root / "closed").mkdir()
    (root / "closed/inside").write_text("in")
    os.symlink("small.txt", root / "rel-link")
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("../../nowhere", root / "dir/dangling")
    os.symlink("dir/sub", root / "dir-link")
    os.link(root / "small.txt", root / "dir/hard1")
    os.link(root / "small.txt", root / "dir/sub/hard2")
    os.mkfifo(root / "fifo")
    os.mknod(root / "null", stat.S_IFCHR | 0o620, os.makedev(1, 3))  # fsutil sends devices
    os.setxattr(root / "small.txt", "user.note", b"kept")
    os.chown(root / "dir/sub/deeper/leaf", 1234, 5678)
    os.chown(root / "rel-link", 4321, 8765, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), ns=(MTIME, MTIME), follow_symlinks=False)
    os.chmod(root / "closed", 0o500)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything fsutil transfers about each entry, and which entries share an inode."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = Path(full).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(full)
            xattrs = {} if stat.S_ISLNK(st.st_mode) else {
                k: os.getxattr(full, k) for k in os.listxattr(full) if k.startswith("user.")}
            mtime = None if stat.S_ISDIR(st.st_mode) and rel == "." else st.st_mtime_ns
            out[rel] = (st.st_mode, st.st_rdev, st.st_uid, st.st_gid, mtime, content, xattrs,
                        inodes.setdefault(st.st_ino, rel) if stat.S_ISREG(st.st_mode) else None)
    return out


async def test_context_is_copied_exactly(client: Client, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    make_tree(src)
    client.sync = sender = Sender(str(src))
    await sync_directory(client.session, "context", dest)
    assert snapshot(dest) == snapshot(src)
    assert dict(sender.metadata)["dir-name"] == "context"
    # every regular file was asked for once, hard links never (they are linked): the
    # inode of small.txt is first met as dir/hard1 in the walk, so that one is asked for
    asked = sorted(sender.sent[i].path for i in sender.requests)
    assert asked == ["a-b/x", "a.txt", "closed/inside", "dir/big.bin", "dir/hard1",
                     "dir/sub/deeper/leaf", "empty", "ro", "suid"]
    assert [s.linkname for s in sender.sent if s.path == "small.txt"] == ["dir/hard1"]
    assert os.stat(dest / "dir/hard1").st_ino == os.stat(dest / "small.txt").st_ino
    assert sender.receiver_error == ""


async def test_patterns_travel_and_are_enforced(client: Client, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    make_tree(src)
    (src / "é.log").write_text("x")
    # this client ignores the patterns and sends everything: the receiver drops them
    client.sync = sender = Sender(str(src))
    await sync_directory(client.session, "context", dest,
                         exclude=["dir/sub", "*.log", "!dir/sub/hard2"],
                         follow_paths=["Dockerfile"])
    md: dict[str, list[str]] = {}
    for key, value in sender.metadata:
        md.setdefault(key, []).append(value)
    assert md["exclude-patterns"] == ["dir/sub", "%2A.log", "%21dir%2Fsub%2Fhard2"] or \
        md["exclude-patterns"] == ["dir/sub", "*.log", "!dir/sub/hard2"]
    assert md["followpaths"] == ["Dockerfile"]
    assert not (dest / "dir/sub/deeper/leaf").exists()
    assert not (dest / "é.log").exists()
    assert (dest / "dir/sub/hard2").read_text() == "hello\n"
    assert (dest / "dir/big.bin").stat().st_size == 3 * 1024 * 1024 + 7

    await sync_directory(client.session, "dockerfile", tmp_path / "df",
                         include=["small.txt", "é*"])
    md = {}
    for key, value in sender.metadata:
        md.setdefault(key, []).append(value)
    assert md["include-patterns"] == ["small.txt", "%C3%A9%2A"]  # buildkit's encodeOpts
    assert md["include-patterns-encoded"] == ["1"]
    assert sorted(os.listdir(tmp_path / "df")) == sorted(
        ["small.txt", "é.log", "dir", "a-b", "closed", "sticky"])


async def test_second_sync_asks_only_for_changes(client: Client, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    make_tree(src)
    client.sync = Sender(str(src))
    await sync_directory(client.session, "context", dest)
    (src / "dir/big.bin").write_bytes(b"changed")
    os.unlink(src / "dir/sub/deeper/leaf")
    (src / "new").write_text("new")
    os.unlink(src / "rel-link")
    os.mkdir(src / "rel-link")  # a symlink became a directory
    client.sync = sender = Sender(str(src))
    await sync_directory(client.session, "context", dest)
    assert snapshot(dest) == snapshot(src)
    assert sorted(sender.sent[i].path for i in sender.requests) == ["dir/big.bin", "new"]


def _stat(path: str, mode: int, **kw: object) -> stat_pb2.Stat:
    return stat_pb2.Stat(path=path, mode=mode, modTime=MTIME, **kw)  # type: ignore[arg-type]


FILE = 0o644
DIR = GO_DIR | 0o755
LINK = GO_SYMLINK | 0o777

HOSTILE: dict[str, tuple[list[stat_pb2.Stat], list[object]]] = {
    "dotdot": ([_stat("../escape", FILE)], []),
    "absolute": ([_stat("/tmp/escape", FILE)], []),
    "inner-dotdot": ([_stat("d", DIR), _stat("d/../../escape", FILE)], []),
    "dot": ([_stat(".", DIR)], []),
    "empty-name": ([_stat("d", DIR), _stat("d//x", FILE)], []),
    "through-symlink": ([_stat("l", LINK, linkname="../outside"), _stat("l/escape", FILE)], []),
    "through-symlink-dir": ([_stat("l", LINK, linkname="/"), _stat("l/tmp", DIR)], []),
    "parent-not-sent": ([_stat("nodir/escape", FILE)], []),
    "out-of-order": ([_stat("b", FILE), _stat("a", FILE)], []),
    "duplicate": ([_stat("a", FILE), _stat("a", FILE)], []),
    "hardlink-outside": ([_stat("h", FILE, linkname="../outside/secret")], []),
    "hardlink-absolute": ([_stat("h", FILE, linkname="/etc/passwd")], []),
    "hardlink-to-symlink": ([_stat("l", LINK, linkname="../outside/secret"),
                             _stat("m", FILE, linkname="l")], []),
    "hardlink-forward": ([_stat("a", FILE, linkname="b"), _stat("b", FILE)], []),
    "socket-mode": ([_stat("s", GO_SOCKET | 0o644)], []),
    "irregular-mode": ([_stat("s", GO_IRREGULAR | 0o644)], []),
    "unknown-bits": ([_stat("s", (1 << 30) | 0o644)], []),
    "nul-in-link": ([_stat("l", LINK, linkname="a\0b")], []),
    "data-not-asked": ([_stat("l", LINK, linkname="../outside/secret")],
                       [P(type=P.PACKET_DATA, ID=0, data=b"overwrite")]),
    "data-unknown-id": ([_stat("a", FILE)], [P(type=P.PACKET_DATA, ID=7, data=b"x")]),
    "too-many-entries": ([_stat(f"f{i:03}", FILE) for i in range(20)], []),
    "sender-error": ([], [P(type=P.PACKET_ERR, data=b"boom")]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_hostile_stream_is_refused(client: Client, tmp_path: Path, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    dest = tmp_path / "jail" / "dest"
    dest.mkdir(parents=True)
    before = snapshot(tmp_path)
    stats, extra = HOSTILE[case]
    client.sync = sender = Sender(str(outside))
    sender.stats, sender.extra = stats, extra
    with pytest.raises(SessionError):
        await sync_directory(client.session, "context", dest, limits=Limits(max_entries=10))
    after = snapshot(tmp_path)
    written = {k: v for k, v in after.items() if not k.startswith("jail/dest/")}
    assert written == {k: v for k, v in before.items()} | {"jail/dest": written["jail/dest"]}
    assert (outside / "secret").read_text() == "secret"
    assert os.stat(outside / "secret").st_nlink == 1
    if case != "sender-error":
        assert sender.receiver_error  # the sender was told why (fsutil's ERR packet)


async def test_a_cancelled_sync_stops_writing(client: Client, tmp_path: Path) -> None:
    """A build interrupted mid-transfer: the call is cancelled, the writing thread ends
    and holds no descriptor of dest."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for i in range(20):
        (src / f"f{i:02}").write_bytes(os.urandom(1 << 20))
    client.sync = Sender(str(src))
    threads = {t.name for t in threading.enumerate()}
    task = asyncio.create_task(sync_directory(client.session, "context", dest))
    while not (dest.exists() and os.listdir(dest)):
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "filesync-receive" not in {t.name for t in threading.enumerate()} - threads
    held = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]
    assert not [h for h in held if h.startswith(str(dest))]


async def test_oversized_data_is_refused(client: Client, tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "big").write_bytes(b"x" * 200_000)
    client.sync = Sender(str(src))
    with pytest.raises(SessionError, match="bytes of file data"):
        await sync_directory(client.session, "context", dest, limits=Limits(max_bytes=100_000))
    assert os.path.getsize(dest / "big") <= 100_000 + 32 * 1024


async def test_throughput_of_a_200mb_context(client: Client, tmp_path: Path) -> None:
    """Measured, not asserted: printed for the report (-s)."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    block = os.urandom(1 << 20)
    for d in range(10):
        (src / f"d{d}").mkdir()
        for f in range(19):
            (src / f"d{d}/f{f}").write_bytes(block * 1)
    (src / "huge").write_bytes(block * 10)
    for i in range(2000):
        (src / f"small{i}").write_text(str(i))
    total = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
    client.sync = Sender(str(src))
    start = time.perf_counter()
    await sync_directory(client.session, "context", dest)
    took = time.perf_counter() - start
    print(f"\nfilesync: {total / 1e6:.0f} MB in {took:.2f} s = {total / 1e6 / took:.0f} MB/s "
          f"(client and daemon in one process)")
    assert snapshot(dest) == snapshot(src)
