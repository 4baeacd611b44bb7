"""A volume's sub-path (`VolumeOptions.Subpath`), found without leaving the volume.

As moby's safepath: the sub-path is opened below the volume's directory by the kernel
(openat2 RESOLVE_BENEATH), so a link inside the volume is followed only while it stays
inside; one that leaves it ("/etc", "../../..") is refused, never rewritten. What was
opened is then pinned: its descriptor is bind-mounted on a pin of the container's, and
the runtime mounts the pin, so a process that swaps a directory of the volume for a
link between the check and the mount changes nothing. Pins go once the runtime has
made its own mount, or the start failed.

The sub-path's grammar (relative, no "..", no NUL) is checked at create (containers'
config.py); here it is only ever joined to a volume's directory.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from ...errors import InternalError, InvalidParameter, NotFound
from ..archive.dirfds import open_beneath
from ..mount import bind, unmount

_BASE = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MISSING = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


def open_subpath(base: str, subpath: str, flags: int = os.O_PATH) -> int:
    """A descriptor of base/subpath, opened with flags; the caller closes it.

    NotFound: something on the way is missing (moby's "cannot access path");
    InvalidParameter: the path leaves the volume ("path concatenation escapes ...")."""
    joined = posixpath.join(base, subpath)
    try:
        base_fd = os.open(base, _BASE)
    except OSError as e:
        raise NotFound(f"cannot access path {base}: {_text(e)}") from None
    rel = posixpath.relpath(posixpath.normpath(joined), base)  # lexically clean, as moby
    try:
        return open_beneath(base_fd, rel, flags | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.EXDEV:
            raise InvalidParameter("path concatenation escapes the base directory, "
                                   f"base: {base}, subpath: {subpath}") from None
        if e.errno in _MISSING:
            raise NotFound(f"cannot access path {posixpath.normpath(joined)}: "
                           f"{_first_failure(base_fd, base, rel, e)}") from None
        raise InternalError(f"openat2 {subpath}: {_text(e)}") from None
    finally:
        os.close(base_fd)


def _first_failure(base_fd: int, base: str, rel: str, error: OSError) -> str:
    """As Go's EvalSymlinks says it: the first component that cannot be reached."""
    prefix = ""
    for part in rel.split("/"):
        prefix = posixpath.join(prefix, part)
        try:
            os.close(open_beneath(base_fd, prefix))
        except OSError as e:
            return f"lstat {posixpath.join(base, prefix)}: {_text(e)}"
    return f"lstat {posixpath.join(base, rel)}: {_text(error)}"


def _text(e: OSError) -> str:
    text = e.strerror or str(e)
    return text[:1].lower() + text[1:]


def pin(base: str, subpath: str, at: str) -> str:
    """Bind what base/subpath is now on `at` (made here, a directory or an empty file
    like the target); returns `at`. Blocking."""
    fd = open_subpath(base, subpath)
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        os.makedirs(os.path.dirname(at), mode=0o700, exist_ok=True)
        if is_dir:
            os.mkdir(at, 0o700)
        else:
            os.close(os.open(at, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        try:
            bind(f"/proc/self/fd/{fd}", at)
        except BaseException:
            _remove(at)
            raise
    finally:
        os.close(fd)
    return at


def unpin_all(pins_dir: str) -> None:
    """Unmount and remove every pin under pins_dir (idempotent). Blocking."""
    try:
        names = os.listdir(pins_dir)
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(pins_dir, name)
        unmount(path)
        _remove(path)
    os.rmdir(pins_dir)


def _remove(path: str) -> None:
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass
