"""What travels in a DiffCopy stream (tonistiigi/fsutil), and its strict grammar.

A Stat's mode is Go's os.FileMode: the permission bits plus Go's own type and special
bits (below), not a st_mode. Paths are "/"-separated and relative to the synced
directory, which itself is never sent; a sender walks it as Go's filepath.WalkDir does
(each directory before its entries, entries by byte order of their names).
"""

from __future__ import annotations

import os
import stat
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from .record import SessionError

MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_TYPE = MODE_DIR | MODE_SYMLINK | MODE_DEVICE | MODE_NAMED_PIPE | MODE_SOCKET | (
    MODE_CHAR_DEVICE) | (1 << 30) | (1 << 29) | (1 << 28) | (1 << 19)
_KNOWN = MODE_DIR | MODE_SYMLINK | MODE_DEVICE | MODE_NAMED_PIPE | MODE_SETUID | MODE_SETGID | (
    MODE_CHAR_DEVICE) | MODE_STICKY | 0o777

# gRPC metadata of a FileSync.DiffCopy call (buildkit's session/filesync)
KEY_DIR_NAME = "dir-name"
KEY_INCLUDE = "include-patterns"
KEY_EXCLUDE = "exclude-patterns"
KEY_FOLLOW = "followpaths"
KEY_EXPORTER_ID = "buildkit-attachable-exporter-id"

MAX_PATH = 4096
MAX_NAME = 255
MAX_XATTRS = 64
MAX_XATTR_VALUE = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one transfer may make: beyond any of these the stream is refused."""
    max_entries: int = 4_000_000
    max_bytes: int = 1 << 40  # all file data together
    max_packet: int = 4 << 20  # gRPC's default largest message


class Refused(SessionError):
    """The stream broke the protocol or tried to leave its directory."""


def go_mode(st_mode: int) -> int:
    """Go's os.FileMode of a st_mode, as fsutil puts it on the wire (sockets dropped)."""
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    if kind == stat.S_IFDIR:
        mode |= MODE_DIR
    elif kind == stat.S_IFLNK:
        mode |= MODE_SYMLINK
    elif kind == stat.S_IFBLK:
        mode |= MODE_DEVICE
    elif kind == stat.S_IFCHR:
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif kind == stat.S_IFIFO:
        mode |= MODE_NAMED_PIPE
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def unix_perm(go: int) -> int:
    """The chmod bits of a Go FileMode (permissions, setuid, setgid, sticky)."""
    perm = go & 0o777
    if go & MODE_SETUID:
        perm |= stat.S_ISUID
    if go & MODE_SETGID:
        perm |= stat.S_ISGID
    if go & MODE_STICKY:
        perm |= stat.S_ISVTX
    return perm


def kind_of(go: int, path: str) -> str:
    """"dir", "symlink", "file", "block", "char" or "fifo"; anything else is refused."""
    if go & ~_KNOWN:
        raise Refused(f"{path!r}: unsupported file mode {go:#o}")
    types = go & MODE_TYPE
    if types == 0:
        return "file"
    found = {MODE_DIR: "dir", MODE_SYMLINK: "symlink", MODE_DEVICE: "block",
             MODE_DEVICE | MODE_CHAR_DEVICE: "char", MODE_NAMED_PIPE: "fifo"}.get(types)
    if found is None:
        raise Refused(f"{path!r}: unsupported file mode {go:#o}")
    return found


def check_path(path: str, what: str = "path") -> None:
    """A clean relative path of at least one component, none of them "." or ".."."""
    raw = path.encode("utf-8", "surrogateescape")
    if not path or len(raw) > MAX_PATH or "\0" in path:
        raise Refused(f"invalid {what} {path[:200]!r}")
    for part in path.split("/"):
        if part in ("", ".", "..") or len(part.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise Refused(f"invalid {what} {path[:200]!r}")


def encode_metadata(values: dict[str, list[str]]) -> tuple[tuple[str, str], ...]:
    """buildkit's encodeOpts: a key whose values hold non-ASCII text has them all
    query-escaped, and "<key>-encoded: 1" is added."""
    out: list[tuple[str, str]] = []
    for key, items in values.items():
        encode = any(not item.isascii() for item in items)
        for item in items:
            out.append((key, urllib.parse.quote_plus(item) if encode else item))
        if encode:
            out.append((key + "-encoded", "1"))
    return tuple(out)


def patterns(items: Iterable[str], what: str) -> list[str]:
    """Patterns for metadata: printable text, bounded."""
    found = list(items)
    if len(found) > 10_000:
        raise SessionError(f"too many {what}")
    for item in found:
        if not item or len(item) > MAX_PATH or not item.isprintable():
            raise SessionError(f"invalid {what} entry {item[:100]!r}")
    return found


def device_numbers(major: int, minor: int, path: str) -> int:
    if not 0 <= major < 1 << 12 or not 0 <= minor < 1 << 20:
        raise Refused(f"{path!r}: invalid device numbers {major}:{minor}")
    return os.makedev(major, minor)


def split_device(rdev: int) -> tuple[int, int]:
    """fsutil's major/minor (the classic 12:20 split of a Linux dev_t)."""
    return (rdev >> 8) & 0xFFF, (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)


DEFAULT_LIMITS = Limits()
