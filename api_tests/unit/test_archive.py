"""Layer tars: round trips, whiteouts, compression, and a corpus of hostile archives."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockerd_py.engine import archive
from dockerd_py.engine.archive import (
    ArchiveError,
    LayerStats,
    apply_layer,
    clean_name,
    decompressed,
    detect_compression,
    tar_paths,
    write_layer,
)
from dockerd_py.errors import InvalidParameter

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, mknod, trusted.*)")
MTIME = 1_600_000_000


# --- helpers -----------------------------------------------------------------------------


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object
          ) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, len(data), MTIME, 0o644
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.type in tarfile.REGULAR_TYPES else None)
    return out.getvalue()


def apply_bytes(data: bytes, root: Path, **kwargs: object) -> LayerStats:
    return apply_layer(io.BytesIO(data), str(root), **kwargs)  # type: ignore[arg-type]


def layer_bytes(root: Path, **kwargs: object) -> tuple[bytes, LayerStats]:
    out = io.BytesIO()
    stats = write_layer(str(root), out, **kwargs)  # type: ignore[arg-type]
    return out.getvalue(), stats


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def snapshot(top: Path, skip: Path | None = None) -> dict[str, tuple[object, ...]]:
    """Everything under top (except skip): type, mode, owner, size, content/target, xattrs."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if skip is not None and Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if skip is not None and Path(path) == skip:
                continue
            st_ = os.lstat(path)
            extra: object = None
            if stat.S_ISREG(st_.st_mode):
                extra = Path(path).read_bytes()
            elif stat.S_ISLNK(st_.st_mode):
                extra = os.readlink(path)
            found[os.path.relpath(path, top)] = (
                st_.st_mode, st_.st_uid, st_.st_gid, st_.st_nlink, st_.st_size, st_.st_mtime_ns,
                extra, sorted(os.listxattr(path, follow_symlinks=False)))
    return found


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A root nested a few levels down, and a sentinel directory beside it."""
    root = tmp_path / "a" / "b" / "root"
    root.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"sentinel")
    return root, outside


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, want", [
    ("a/b", "a/b"), ("./a//b/", "a/b"), ("/etc/x", "etc/x"), ("//etc/../x", "x"),
    (".", ""), ("./", ""), ("/", ""), ("a/..", ""), ("a/../b", "b"),
])
def test_clean_name_accepts(name: str, want: str) -> None:
    assert clean_name(name) == want


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "./../x", "a/b/../../..", "",
                                  "a\x00b"])
def test_clean_name_rejects(name: str) -> None:
    with pytest.raises(ArchiveError):
        clean_name(name)


@given(st.lists(st.sampled_from(["a", "b", ".", "..", "", "/", ".wh.c"]), max_size=8))
def test_clean_name_never_leaves_root(parts: list[str]) -> None:
    name = "/".join(parts)
    try:
        rel = clean_name(name)
    except ArchiveError:
        return
    joined = os.path.normpath(os.path.join("/r/root", rel))
    assert joined == "/r/root" or joined.startswith("/r/root/")
    assert ".." not in rel.split("/")


def test_archive_error_is_invalid_parameter() -> None:
    assert issubclass(ArchiveError, InvalidParameter)


# --- round trip --------------------------------------------------------------------------


def build_tree(src: Path) -> None:
    (src / "dir" / "sub").mkdir(parents=True)
    (src / "dir" / "sub" / "deep.txt").write_bytes(b"deep\n" * 1000)
    (src / "empty").write_bytes(b"")
    (src / "big.bin").write_bytes(os.urandom(3 * archive.CHUNK + 123))
    (src / "suid").write_bytes(b"#!/bin/sh\n")
    (src / "tmp").mkdir()
    (src / "sgid").mkdir()
    (src / "private").write_bytes(b"secret")
    (src / "caf\u00e9").write_bytes(b"unicode name")
    os.mkfifo(src / "fifo")
    os.symlink("dir/sub/deep.txt", src / "rel-link")
    os.symlink("/etc/passwd", src / "abs-link")
    os.symlink("dangling/target", src / "dangling")
    os.link(src / "dir" / "sub" / "deep.txt", src / "hard1")
    os.link(src / "dir" / "sub" / "deep.txt", src / "dir" / "hard2")
    os.setxattr(src / "dir" / "sub" / "deep.txt", "user.note", b"\xffbinary\x00value")
    os.setxattr(src / "dir", "user.dirnote", b"hello")
    os.chown(src / "private", 1234, 5678)
    os.chown(src / "rel-link", 42, 43, follow_symlinks=False)
    os.chown(src / "sgid", 0, 100)
    os.chmod(src / "suid", 0o4755)
    os.chmod(src / "tmp", 0o1777)
    os.chmod(src / "sgid", 0o2755)
    os.chmod(src / "private", 0o600)
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for i, name in enumerate(sorted(dirnames + filenames)):
            os.utime(os.path.join(dirpath, name), ns=(0, (MTIME + i) * 10**9),
                     follow_symlinks=False)


def tree_metadata(root: Path) -> dict[str, tuple[object, ...]]:
    found: dict[str, tuple[object, ...]] = {}
    for path, st_ in ((p, os.lstat(p)) for p in sorted(root.rglob("*"))):
        rel = str(path.relative_to(root))
        extra: object = None
        if stat.S_ISREG(st_.st_mode):
            extra = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st_.st_mode):
            extra = os.readlink(path)
        elif stat.S_ISCHR(st_.st_mode):
            extra = st_.st_rdev
        xattrs = {k: os.getxattr(path, k, follow_symlinks=False)
                  for k in os.listxattr(path, follow_symlinks=False)}
        found[rel] = (stat.S_IFMT(st_.st_mode), stat.S_IMODE(st_.st_mode), st_.st_uid,
                      st_.st_gid, int(st_.st_mtime), st_.st_nlink, extra, xattrs)
    return found


@needs_root
def test_round_trip_preserves_metadata(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    build_tree(src)
    data, stats = layer_bytes(src)
    assert stats.diff_id == sha(data)
    regular = {"dir/sub/deep.txt", "empty", "big.bin", "suid", "private", "caf\u00e9"}
    links = {"rel-link", "abs-link", "dangling"}  # a symlink's size is its target's length
    assert stats.size == sum(os.lstat(src / p).st_size for p in regular | links)

    applied = apply_bytes(data, dst)
    assert applied == stats
    assert tree_metadata(dst) == tree_metadata(src)
    assert os.stat(dst / "hard1").st_ino == os.stat(dst / "dir" / "hard2").st_ino \
        == os.stat(dst / "dir" / "sub" / "deep.txt").st_ino
    # The extracted tree writes back to the very same bytes.
    assert layer_bytes(dst)[0] == data


def test_write_layer_is_deterministic_and_sorted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ["b", "a.b", "a/z", "a/c/d", "B"]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if name != "a":
            (src / name).write_text(name)
    first, _ = layer_bytes(src)
    second, _ = layer_bytes(src)
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == ["B", "a", "a/c", "a/c/d", "a/z", "a.b", "b"]
    assert all(m.uname == "" and m.gname == "" for m in members)
    # Whole seconds only (as moby): no PAX mtime records, so sub-second noise cannot leak in.
    os.utime(src / "b", ns=(0, MTIME * 10**9 + 123_456_789))
    with tarfile.open(fileobj=io.BytesIO(layer_bytes(src)[0])) as tar:
        b = tar.getmember("b")
    assert b.mtime == MTIME and "mtime" not in b.pax_headers
    assert [m.name.split("/") for m in members] == sorted(m.name.split("/") for m in members)


def test_hardlinks_are_written_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"x" * 5000)
    os.link(src / "a", src / "b")
    data, stats = layer_bytes(src)
    assert stats.size == 5000
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        b = tar.getmember("b")
    assert b.islnk() and b.linkname == "a" and b.size == 0


def test_tar_paths_keeps_devices_and_overlay_xattrs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f").write_text("f")
    if os.geteuid() == 0:
        os.mknod(src / "gone", stat.S_IFCHR, os.makedev(0, 0))
    out = io.BytesIO()
    tar_paths(str(src), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members)[:2] == ["d", "d/f"]
    if os.geteuid() == 0:
        assert members["gone"].ischr() and (members["gone"].devmajor, members["gone"].devminor) \
            == (0, 0)


# --- apply semantics ---------------------------------------------------------------------


def test_replacement_rules(tmp_path: Path) -> None:
    data = make_tar(
        entry("d", tarfile.DIRTYPE, mode=0o700),
        entry("d/x", data=b"x"),
        entry("d", tarfile.DIRTYPE, mode=0o750),  # dir over dir: metadata only
        entry("f", data=b"old"),
        entry("f-link", tarfile.LNKTYPE, linkname="f"),
        entry("f", data=b"new"),  # a fresh inode: the hardlink keeps the old content
        entry("g", tarfile.DIRTYPE),
        entry("g/inner", data=b"i"),
        entry("g", data=b"file over dir"),
        entry("s", tarfile.SYMTYPE, linkname="/nowhere"),
        entry("s", tarfile.DIRTYPE),
        entry("s/in", data=b"inside"),
    )
    stats = apply_bytes(data, tmp_path)
    assert stats.diff_id == sha(data)
    # regular files as written, plus the symlink later replaced (dockerd counts link targets)
    assert stats.size == 1 + 3 + 3 + 1 + 13 + len("/nowhere") + 6
    assert (tmp_path / "d" / "x").read_bytes() == b"x"
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o750
    assert (tmp_path / "f").read_bytes() == b"new"
    assert (tmp_path / "f-link").read_bytes() == b"old"
    assert (tmp_path / "g").read_bytes() == b"file over dir"
    assert not os.path.islink(tmp_path / "s") and (tmp_path / "s" / "in").read_bytes() == b"inside"


def test_root_entry_and_directory_mtimes(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = make_tar(
        entry("./", tarfile.DIRTYPE, mode=0o711, mtime=MTIME - 5),
        entry("a", tarfile.DIRTYPE, mtime=MTIME - 10),
        entry("a/b", tarfile.DIRTYPE, mtime=MTIME - 20),
        entry("a/b/c", data=b"c"),  # would bump b's mtime if set before
        entry("implicit/x", data=b"x"),
    )
    apply_bytes(data, root)
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o711
    assert int(os.stat(root).st_mtime) == MTIME - 5
    assert int(os.stat(root / "a").st_mtime) == MTIME - 10
    assert int(os.stat(root / "a" / "b").st_mtime) == MTIME - 20
    assert os.path.isdir(root / "implicit")


def test_non_directory_cannot_replace_root(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="layer root"):
        apply_bytes(make_tar(entry(".", data=b"x")), tmp_path)


@needs_root
def test_ownership_modes_and_devices_as_root(tmp_path: Path) -> None:
    data = make_tar(
        entry("suid", data=b"x", mode=0o4755, uid=1000, gid=1000),
        entry("tmp", tarfile.DIRTYPE, mode=0o1777, uid=7, gid=8),
        entry("null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        entry("link", tarfile.SYMTYPE, linkname="/abs/target", uid=5, gid=6),
    )
    apply_bytes(data, tmp_path)
    st_ = os.stat(tmp_path / "suid")
    assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o4755, 1000, 1000)
    st_ = os.stat(tmp_path / "tmp")
    assert (stat.S_IMODE(st_.st_mode), st_.st_uid, st_.st_gid) == (0o1777, 7, 8)
    assert os.stat(tmp_path / "null").st_rdev == os.makedev(1, 3)
    st_ = os.lstat(tmp_path / "link")
    assert (st_.st_uid, st_.st_gid, int(st_.st_mtime)) == (5, 6, MTIME)
    assert os.readlink(tmp_path / "link") == "/abs/target"


def test_same_owner_false_keeps_our_ids(tmp_path: Path) -> None:
    apply_bytes(make_tar(entry("f", data=b"x", uid=4321, gid=4321)), tmp_path, same_owner=False)
    assert os.stat(tmp_path / "f").st_uid == os.geteuid()


def test_xattrs_from_pax_and_overlay_ones_dropped(tmp_path: Path) -> None:
    data = make_tar(
        entry("f", data=b"x", pax_headers={
            "SCHILY.xattr.user.a": "1",
            "SCHILY.xattr.trusted.overlay.redirect": "/elsewhere",
        }),
        entry("l", tarfile.SYMTYPE, linkname="f", pax_headers={"SCHILY.xattr.user.b": "2"}),
    )
    apply_bytes(data, tmp_path)
    assert os.listxattr(tmp_path / "f") == ["user.a"]  # user.* on a symlink: skipped quietly
    assert os.getxattr(tmp_path / "f", "user.a") == b"1"


def test_trailing_bytes_count_in_diff_id(tmp_path: Path) -> None:
    data = make_tar(entry("f", data=b"x")) + b"\0" * 4096
    assert apply_bytes(data, tmp_path).diff_id == sha(data)


def test_empty_stream_is_an_empty_layer(tmp_path: Path) -> None:
    assert apply_bytes(b"", tmp_path) == LayerStats(sha(b""), 0)
    assert apply_bytes(b"\0" * 1024, tmp_path) == LayerStats(sha(b"\0" * 1024), 0)
    assert os.listdir(tmp_path) == []


def test_gnu_long_names(tmp_path: Path) -> None:
    long = "x" * 150 + "/" + "y" * 150
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info, data = entry(long, data=b"long")
        tar.addfile(info, io.BytesIO(data))
    apply_bytes(out.getvalue(), tmp_path)
    assert (tmp_path / long).read_bytes() == b"long"


# --- whiteouts ---------------------------------------------------------------------------

WHITEOUT_LAYER = make_tar(
    entry(".wh.foo"),
    entry("d", tarfile.DIRTYPE),
    entry("d/.wh..wh..opq"),
    entry("d/y", data=b"new"),
    entry(".wh..wh.plnk", tarfile.DIRTYPE),
    entry(".wh..wh.plnk/123.456", data=b"aufs"),
)


@needs_root
def test_whiteouts_become_overlay_format(tmp_path: Path) -> None:
    stats = apply_bytes(WHITEOUT_LAYER, tmp_path)
    foo = os.lstat(tmp_path / "foo")
    assert stat.S_ISCHR(foo.st_mode) and foo.st_rdev == 0
    assert os.getxattr(tmp_path / "d", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(tmp_path)) == ["d", "foo"]
    assert stats.size == 3


@needs_root
def test_whiteouts_hide_lower_files_in_a_real_overlay(tmp_path: Path) -> None:
    lower, upper, mnt = tmp_path / "lower", tmp_path / "layer", tmp_path / "mnt"
    for d in (lower / "d", upper, mnt):
        d.mkdir(parents=True)
    (lower / "foo").write_text("foo")
    (lower / "keep").write_text("keep")
    (lower / "d" / "x").write_text("x")
    apply_bytes(WHITEOUT_LAYER, upper)
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={upper}:{lower}", str(mnt)],
        capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"overlay mount failed: {mounted.stderr.decode().strip()}")
    try:
        assert sorted(os.listdir(mnt)) == ["d", "keep"]
        assert os.listdir(mnt / "d") == ["y"]
        assert (mnt / "d" / "y").read_text() == "new"
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


@needs_root
def test_write_layer_converts_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "d").mkdir(parents=True)
    (upper / "d" / "y").write_text("y")
    os.mknod(upper / "foo", stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(upper / "d", "trusted.overlay.opaque", b"y")
    os.setxattr(upper / "d", "trusted.overlay.origin", b"junk")
    data, _ = layer_bytes(upper)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["d", "d/.wh..wh..opq", "d/y", ".wh.foo"]
    assert all(not k.startswith("SCHILY.xattr.trusted.overlay")
               for m in members for k in m.pax_headers)
    assert members[3].isreg() and members[3].size == 0
    # And back: the same overlay lowerdir.
    back = tmp_path / "back"
    back.mkdir()
    apply_bytes(data, back)
    assert os.lstat(back / "foo").st_rdev == 0 and stat.S_ISCHR(os.lstat(back / "foo").st_mode)
    assert os.getxattr(back / "d", "trusted.overlay.opaque") == b"y"

    without, _ = layer_bytes(upper, parents_whiteouts=False)
    with tarfile.open(fileobj=io.BytesIO(without)) as tar:
        assert tar.getnames() == ["d", "d/y"]


# --- compression -------------------------------------------------------------------------


class PipeLike:
    """Readable only: no seek, no tell, short reads like a pipe."""

    def __init__(self, data: bytes, step: int = 777) -> None:
        self._data, self._pos, self._step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        step = len(self._data) if size < 0 else min(size, self._step)  # read(): all, as files
        chunk = self._data[self._pos : self._pos + step]
        self._pos += len(chunk)
        return chunk


def zstd_two_frames(data: bytes) -> bytes:
    cut = len(data) // 3
    return b"".join(zstandard.ZstdCompressor().compress(part) for part in (data[:cut], data[cut:]))


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda d: d,
    "gzip": gzip.compress,
    "zstd": zstd_two_frames,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_compressed_layers_give_the_same_diff_id(kind: str, tmp_path: Path) -> None:
    raw = make_tar(entry("d", tarfile.DIRTYPE), entry("d/f", data=os.urandom(300_000)))
    packed = COMPRESSORS[kind](raw)
    assert detect_compression(packed[:6]) == kind
    assert decompressed(PipeLike(packed)).read() == raw  # type: ignore[arg-type]
    reader = decompressed(PipeLike(packed))  # type: ignore[arg-type]
    got = b"".join(iter(lambda: reader.read(65536), b""))
    assert got == raw
    stats = apply_layer(PipeLike(packed), str(tmp_path))  # type: ignore[arg-type]
    assert stats == LayerStats(sha(raw), 300_000)
    assert (tmp_path / "d" / "f").stat().st_size == 300_000


def test_detect_compression_edge_cases() -> None:
    assert detect_compression(b"") == "none"
    assert detect_compression(b"\x1f\x8b") == "none"  # too short to tell
    assert detect_compression(b"\x50\x2a\x4d\x18rest") == "zstd"  # skippable frame first
    assert detect_compression(b"ustar") == "none"


# --- hostile corpus ----------------------------------------------------------------------

# Each case: a function (outside dir) -> archive bytes, and the expected error (None: the
# archive is accepted, but still nothing may land outside root).
Case = Callable[[Path], bytes]


def _truncated_data(_: Path) -> bytes:
    return make_tar(entry("f", data=b"x" * 10_000))[:512 + 5000]


def _truncated_header(_: Path) -> bytes:
    full = make_tar(entry("f", data=b"x" * 512), entry("g", data=b"y"))
    return full[:1024 + 100]


def _garbage_header(_: Path) -> bytes:
    full = make_tar(entry("f", data=b"x" * 512))
    return full[:1024] + b"\x01" * 512 + b"\0" * 1024


def _corrupt_gzip(_: Path) -> bytes:
    packed = bytearray(gzip.compress(make_tar(entry("f", data=os.urandom(50_000)))))
    packed[len(packed) // 2] ^= 0xFF
    return bytes(packed)


def _truncated_gzip(_: Path) -> bytes:
    return gzip.compress(make_tar(entry("f", data=os.urandom(50_000))))[:-1000]


def _huge_size(_: Path) -> bytes:
    info, _data = entry("big", data=b"short")
    raw = make_tar((info, b"short"))
    header = tarfile.TarInfo("big")
    header.size, header.mtime = 1 << 30, MTIME
    return header.tobuf(tarfile.USTAR_FORMAT) + raw[512:1024]


def _huge_pax_header(_: Path) -> bytes:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 1 << 32
    return header.tobuf(tarfile.USTAR_FORMAT) + b"9 a=b\n" * 100_000


def _nul_name(_: Path) -> bytes:
    return make_tar(entry("ok", data=b"x", pax_headers={"path": "evil\x00name"}))


HOSTILE: dict[str, tuple[Case, str | None]] = {
    "dotdot": (lambda o: make_tar(entry("../escape", data=b"x")), "escapes"),
    "dotdot-deep": (lambda o: make_tar(entry("../../../escape", data=b"x")), "escapes"),
    "dotdot-inner": (lambda o: make_tar(entry("a/../../escape", data=b"x")), "escapes"),
    "dotdot-dir": (lambda o: make_tar(entry("..", tarfile.DIRTYPE)), "escapes"),
    "absolute": (lambda o: make_tar(entry(f"{o}/abs", data=b"x")), None),
    "symlink-dir-escape": (lambda o: make_tar(
        entry("evil", tarfile.SYMTYPE, linkname=str(o)),
        entry("evil/pwned", data=b"x")), "symlink"),
    "symlink-dir-escape-mkdir": (lambda o: make_tar(
        entry("evil", tarfile.SYMTYPE, linkname=str(o)),
        entry("evil/sub/pwned", data=b"x")), "symlink"),
    "symlink-up": (lambda o: make_tar(
        entry("up", tarfile.SYMTYPE, linkname="../../"),
        entry("up/escape", data=b"x")), "symlink"),
    "symlink-deep-parent": (lambda o: make_tar(
        entry("a", tarfile.DIRTYPE),
        entry("a/evil", tarfile.SYMTYPE, linkname=str(o)),
        entry("a/evil/keep", data=b"overwritten")), "symlink"),
    "dir-replaced-by-symlink": (lambda o: make_tar(
        entry("d", tarfile.DIRTYPE),
        entry("d", tarfile.SYMTYPE, linkname=str(o)),
        entry("d/keep", data=b"overwritten")), "symlink"),
    "symlink-then-dir-then-file": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(o)),
        entry("s", tarfile.DIRTYPE),
        entry("s/keep", data=b"inside")), None),
    "file-over-symlink": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=f"{o}/keep"),
        entry("s", data=b"overwritten")), None),
    "hardlink-dotdot": (lambda o: make_tar(
        entry("h", tarfile.LNKTYPE, linkname="../../outside/keep")), "escapes"),
    "hardlink-host-path": (lambda o: make_tar(
        entry("h", tarfile.LNKTYPE, linkname=f"{o}/keep")), "earlier entry"),
    "hardlink-etc-passwd": (lambda o: make_tar(
        entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")), "earlier entry"),
    "hardlink-through-symlink": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(o)),
        entry("h", tarfile.LNKTYPE, linkname="s/keep")), "symlink"),
    "hardlink-to-symlink-then-write": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=f"{o}/keep"),
        entry("h", tarfile.LNKTYPE, linkname="s"),
        entry("h", data=b"overwritten")), None),
    "opaque-through-symlink": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(o)),
        entry("s/.wh..wh..opq")), "symlink"),
    "whiteout-through-symlink": (lambda o: make_tar(
        entry("s", tarfile.SYMTYPE, linkname=str(o)),
        entry("s/.wh.keep")), "symlink"),
    "whiteout-dotdot": (lambda o: make_tar(entry("a/.wh..."), entry(".wh.")), "whiteout"),
    "nul-in-name": (_nul_name, "NUL"),
    "nul-in-linkname": (lambda o: make_tar(
        entry("l", tarfile.SYMTYPE, linkname="x", pax_headers={"linkpath": "a\x00b"})), "NUL"),
    "parent-is-file": (lambda o: make_tar(
        entry("f", data=b"x"), entry("f/g", data=b"y")), "not a directory"),
    "unknown-type": (lambda o: make_tar(entry("v", b"V")), "unsupported"),
    "truncated-data": (_truncated_data, "unexpected EOF"),
    "truncated-header": (_truncated_header, "unexpected EOF"),
    "garbage-header": (_garbage_header, "invalid header"),
    "huge-declared-size": (_huge_size, "unexpected EOF"),
    "huge-pax-header": (_huge_pax_header, "too large"),
    "corrupt-gzip": (_corrupt_gzip, "corrupt gzip"),
    "truncated-gzip": (_truncated_gzip, "unexpected EOF"),
    "not-a-tar": (lambda o: b"hello world, not a tar\n" * 100, "invalid"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_stay_inside_root(case: str, sandbox: tuple[Path, Path]) -> None:
    root, outside = sandbox
    top = root.parents[2]
    build, error = HOSTILE[case]
    data = build(outside)
    before = snapshot(top, skip=root)
    if error is None:
        apply_bytes(data, root)
    else:
        with pytest.raises(ArchiveError, match=error):
            apply_bytes(data, root)
    assert snapshot(top, skip=root) == before
    assert (outside / "keep").read_bytes() == b"sentinel"
    assert os.listxattr(outside) == []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            assert os.lstat(os.path.join(dirpath, name)).st_ino != os.lstat(outside / "keep").st_ino


def test_hostile_accepted_cases_land_inside(sandbox: tuple[Path, Path]) -> None:
    root, outside = sandbox
    apply_bytes(HOSTILE["absolute"][0](outside), root)
    assert (root / str(outside).lstrip("/") / "abs").read_bytes() == b"x"


def test_missing_hardlink_target_creates_nothing(sandbox: tuple[Path, Path]) -> None:
    root, _ = sandbox
    with pytest.raises(ArchiveError, match="earlier entry"):
        apply_bytes(make_tar(entry("h", tarfile.LNKTYPE, linkname="/etc/passwd")), root)
    assert os.listdir(root) == []


def test_device_entry_skipped_when_not_root(sandbox: tuple[Path, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root, outside = sandbox
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    data = make_tar(entry("sda", tarfile.BLKTYPE, devmajor=8, devminor=0),
                    entry("mem", tarfile.CHRTYPE, devmajor=1, devminor=1),
                    entry("after", data=b"ok"))
    stats = apply_bytes(data, root, same_owner=False)
    assert sorted(os.listdir(root)) == ["after"]
    assert stats.size == 2


# A fuzzer: random sequences of entries drawn from dangerous shapes. Whatever is accepted
# or rejected, the sentinel outside must never change.
_NAMES = st.lists(st.sampled_from(["a", "b", "..", ".", "", "s", ".wh.a", ".wh..wh..opq"]),
                  min_size=1, max_size=4).map("/".join)
_ENTRIES = st.tuples(
    st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
    _NAMES,
    st.sampled_from(["OUT", "OUT/keep", "../..", "a", "s", "/etc/passwd", "a/b"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ENTRIES, min_size=1, max_size=8))
def test_fuzzed_archives_never_write_outside(entries: list[tuple[bytes, str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp)
        root, outside = top / "x" / "root", top / "outside"
        root.mkdir(parents=True)
        outside.mkdir()
        (outside / "keep").write_bytes(b"sentinel")
        before = snapshot(top, skip=root)
        members = []
        for kind, name, link in entries:
            link = link.replace("OUT", str(outside))
            if not name.strip("/"):
                name = "x"
            members.append(entry(name, kind, data=b"data" if kind == tarfile.REGTYPE else b"",
                                 linkname=link))
        try:
            apply_bytes(make_tar(*members), root)
        except ArchiveError:
            pass
        assert snapshot(top, skip=root) == before
        assert (outside / "keep").read_bytes() == b"sentinel"
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = posixpath.join(dirpath, name)
                assert os.lstat(path).st_ino != os.lstat(outside / "keep").st_ino
