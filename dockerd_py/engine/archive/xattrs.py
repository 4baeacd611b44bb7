"""Reading extended attributes without following a final symlink."""

from __future__ import annotations

import contextlib
import os

from .format import CAPABILITY_XATTR, OPAQUE_XATTR


def read_xattr(target: int | str, name: str) -> bytes | None:
    """An xattr of an open file, or of a path without following its last symlink."""
    try:
        if isinstance(target, int):
            return os.getxattr(target, name)
        return os.getxattr(target, name, follow_symlinks=False)
    except OSError:
        return None


def read_xattrs(path: str) -> dict[str, bytes]:
    """Every xattr of path (not following a final symlink), by name in sorted order."""
    found = {}
    with contextlib.suppress(OSError):  # ENOTSUP: no xattrs on this filesystem
        for name in sorted(os.listxattr(path, follow_symlinks=False)):
            with contextlib.suppress(OSError):  # ENODATA: removed meanwhile
                found[name] = os.getxattr(path, name, follow_symlinks=False)
    return found


def capability(target: int | str) -> bytes | None:
    """security.capability as go-archive writes it: a VFS_CAP_REVISION_3 value (namespaced
    root) is turned into revision 2."""
    value = read_xattr(target, CAPABILITY_XATTR)
    if value is None:
        return None
    if len(value) > 3 and value[3] == 3:
        value = value[:3] + b"\x02" + value[4:20]
    return value


def is_opaque(target: int | str) -> bool:
    """An overlay directory that hides what the layers below have at its path."""
    return read_xattr(target, OPAQUE_XATTR) == b"y"
