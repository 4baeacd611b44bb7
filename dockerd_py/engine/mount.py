"""mount(2)/umount(2) for container root filesystems and the mounts around them, and what
/proc/self/mountinfo says is mounted (blocking; call from threads)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import subprocess
from collections.abc import Sequence

from ..errors import InternalError
from .snapshots.contract import Mount

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
MS_RDONLY = 0x1
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise InternalError(f"{what}: {os.strerror(err)}")


def mount_all(mounts: Sequence[Mount], target: str, *, cwd: str | None = None) -> None:
    """Mount a snapshot's mounts at target. Overlays whose lowerdirs are relative
    (very many layers) are mounted by a child process with cwd set, so the
    daemon's own working directory never changes."""
    for m in mounts:
        if m.type == "bind":
            flags = MS_BIND | (MS_REC if "rbind" in m.options else 0)
            _check(_libc.mount(m.source.encode(), target.encode(), None, flags, None),
                   f"bind mount {m.source} on {target}")
            if "ro" in m.options:
                _check(_libc.mount(None, target.encode(), None,
                                   MS_BIND | MS_RDONLY | 0x20, None),  # MS_REMOUNT
                       f"remount {target} read-only")
            continue
        data = ",".join(m.options)
        relative = any(o.startswith("lowerdir=") and not o[9:].startswith("/")
                       for o in m.options)
        if relative:
            subprocess.run(["mount", "-t", m.type, "-o", data, m.source, target], cwd=cwd,
                           check=True, capture_output=True)
            continue
        _check(_libc.mount(m.source.encode(), target.encode(), m.type.encode(), 0,
                           data.encode()), f"mount {m.type} on {target}")


def bind(source: str, target: str) -> None:
    """A non-recursive bind mount (source may be /proc/self/fd/N: the object itself)."""
    _check(_libc.mount(source.encode(), target.encode(), None, MS_BIND, None),
           f"bind mount {source} on {target}")


def mount_tmpfs(target: str, data: str, flags: int = 0) -> None:
    _check(_libc.mount(b"shm", target.encode(), b"tmpfs", flags, data.encode()),
           f"mount tmpfs on {target}")


def unmount(target: str) -> None:
    """Detach target (and anything mounted below it); absent or unmounted is fine.

    Asks the kernel rather than os.path.ismount, which cannot see a bind mount of a
    directory on the same filesystem (a snapshot without parents); stacked mounts
    come off one per call until umount2 says there is none."""
    while _libc.umount2(target.encode(), MNT_DETACH) == 0:
        pass
    err = ctypes.get_errno()
    if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
        raise InternalError(f"unmount {target}: {os.strerror(err)}")


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> set[str]:
    """Every mount point of the daemon's mount namespace."""
    try:
        with open("/proc/self/mountinfo") as f:
            return {_unescape(fields[4]) for line in f if len(fields := line.split()) > 4}
    except OSError:
        return set()


def mounts_under(path: str) -> list[str]:
    """Mount points at or below path (never a sibling that merely shares its prefix)."""
    prefix = path.rstrip("/") + "/"
    return sorted(p for p in mount_points() if p == path or p.startswith(prefix))


def unmount_under(path: str) -> list[str]:
    """Detach every mount at or below path, deepest first; returns the mount points found
    (a crash left them: nothing outside path is touched)."""
    found = mounts_under(path)
    for point in sorted(found, key=lambda p: p.count("/"), reverse=True):
        unmount(point)
    return found
