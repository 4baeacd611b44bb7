"""Paths and files as Go sees them, for `docker cp`'s answers (pure).

The archive API's stat header carries a Go os.FileMode and an RFC 3339 time; cp reads a
path's trailing "/" or "/." as the user wrote it (filepath rules, not Python's).
"""

from __future__ import annotations

import datetime
import posixpath
import stat

_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE = 1 << 31, 1 << 27, 1 << 26, 1 << 25
_GO_SOCKET, _GO_SETUID, _GO_SETGID = 1 << 24, 1 << 23, 1 << 22
_GO_CHAR, _GO_STICKY = 1 << 21, 1 << 20
_GO_TYPES = {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFBLK: _GO_DEVICE,
             stat.S_IFCHR: _GO_DEVICE | _GO_CHAR, stat.S_IFIFO: _GO_PIPE,
             stat.S_IFSOCK: _GO_SOCKET}


def go_file_mode(st_mode: int) -> int:
    """An st_mode as Go's os.FileMode, which the archive stat header carries."""
    mode = (st_mode & 0o777) | _GO_TYPES.get(stat.S_IFMT(st_mode), 0)
    for bit, go_bit in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID),
                        (stat.S_ISVTX, _GO_STICKY)):
        if st_mode & bit:
            mode |= go_bit
    return mode


def go_base(path: str) -> str:
    """filepath.Base: the last element, trailing slashes ignored; "/" and "." as Go has them."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def absolute(path: str) -> str:
    """filepath.Join("/", path): cleaned and absolute."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def preserve_trailing(cleaned: str, original: str) -> str:
    """archive.PreserveTrailingDotOrSeparator: a cleaned path keeps the "/." or "/" the
    user wrote, which cp reads as "the directory's contents" / "must be a directory"."""
    if go_base(cleaned) != "." and go_base(original) == ".":
        cleaned = (cleaned if cleaned.endswith("/") else cleaned + "/") + "."
    if not cleaned.endswith("/") and original.endswith("/"):
        cleaned += "/"
    return cleaned


def rfc3339_ns(ns: int) -> str:
    when = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return when.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def go_error(op: str, path: str, e: OSError) -> str:
    text = e.strerror or str(e)
    return f"{op} {path}: {text[:1].lower()}{text[1:]}"

