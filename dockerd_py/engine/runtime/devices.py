"""Host device nodes for a container: `HostConfig.Devices` and `--privileged`.

`check` is the create-time grammar of a device mapping (pure); the rest reads the
host's /dev when the container starts, as dockerd's DevicesFromPath and containerd's
HostDevices do: a mapping names a device node (a link to one is followed) or a
directory whose nodes are all taken; a privileged container gets every node under /dev
but those runc makes itself (pts, shm, mqueue, console).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InternalError
from .defaults import SpecError

_TYPES = {stat.S_IFCHR: "c", stat.S_IFBLK: "b", stat.S_IFIFO: "p"}
# Not walked for a privileged container: runc mounts these, or they are not devices.
_SKIPPED_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


@dataclass(frozen=True)
class DeviceNode:
    """A device node as stat(2) found it on the host, at `path` in the container."""

    path: str
    type: str  # "c" | "b" | "p"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
    permissions: str = "rwm"  # cgroup access (HostConfig.Devices[].CgroupPermissions)


def _valid_mode(mode: str) -> bool:
    """r, w and m, each at most once (the CLI's validDeviceMode)."""
    return bool(mode) and set(mode) <= set("rwm") and len(set(mode)) == len(mode)


def _path(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or "\0" in text:
        raise SpecError(f"{text} is not an absolute path")
    return text


def check(mappings: Iterable[Any]) -> list[tuple[str, str, str]]:
    """HostConfig.Devices → (path on host, path in container, cgroup permissions).

    Stricter than dockerd, which passes any string to the runtime and fails at start:
    both paths absolute (the container's defaults to the host's, as the CLI fills it),
    permissions from "rwm" (the CLI's words for the ones it refuses)."""
    out = []
    for m in mappings or ():
        if not isinstance(m, Mapping):
            raise SpecError("invalid device mapping: an object with PathOnHost is expected")
        host = _path(m.get("PathOnHost"))
        inside = _path(m.get("PathInContainer") or host)
        mode = m.get("CgroupPermissions")
        if not isinstance(mode, str) or not _valid_mode(mode):
            raise SpecError(f"bad mode specified: {mode if isinstance(mode, str) else ''}")
        out.append((host, posixpath.normpath(inside), mode))
    return out


def _node(path: str, inside: str, permissions: str) -> DeviceNode | None:
    st = os.lstat(path)
    kind = _TYPES.get(stat.S_IFMT(st.st_mode))
    if kind is None:
        return None
    return DeviceNode(inside, kind, os.major(st.st_rdev), os.minor(st.st_rdev),
                      stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, permissions)


def _walk(top: str) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(top):  # links to directories not followed
        dirnames.sort()
        for name in sorted(filenames):
            yield os.path.join(dirpath, name)


def from_path(host: str, inside: str, permissions: str) -> list[DeviceNode]:
    """The node(s) one mapping gives, with dockerd's error when there are none."""
    resolved = os.path.realpath(host) if os.path.islink(host) else host
    try:
        node = _node(resolved, inside, permissions)
    except OSError as e:
        raise InternalError(_gather_error(host, e.strerror or str(e))) from None
    if node is not None:
        return [node]
    found = []
    if os.path.isdir(resolved):
        for path in _walk(resolved):
            try:
                child = _node(path, inside + path[len(resolved):], permissions)
            except OSError:
                continue
            if child is not None:
                found.append(child)
    if not found:
        raise InternalError(_gather_error(host, "not a device node"))
    return found


def _gather_error(host: str, reason: str) -> str:
    reason = reason[:1].lower() + reason[1:]
    return f'error gathering device information while adding custom device "{host}": {reason}'


def host_devices(root: str = "/dev") -> list[DeviceNode]:
    """Every device node under the host's /dev, for a privileged container."""
    out: list[DeviceNode] = []

    def walk(directory: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if entry.name not in _SKIPPED_DIRS:
                    walk(entry.path)
                continue
            if entry.name == "console":
                continue
            try:
                node = _node(entry.path, entry.path, "rwm")
            except OSError:
                continue
            if node is not None:
                out.append(node)

    walk(root)
    return out


def resolve(hc: Mapping[str, Any]) -> tuple[list[DeviceNode], list[DeviceNode]]:
    """(the mapped devices, the host's devices) of a container about to start. Blocking.

    Privileged: every host device, and the mappings that rename one (rwm, as dockerd)."""
    mappings: Sequence[tuple[str, str, str]] = check(hc.get("Devices") or ())
    if not hc.get("Privileged"):
        return [d for m in mappings for d in from_path(*m)], []
    renamed = [d for host, inside, _ in mappings if host != inside
               for d in from_path(host, inside, "rwm")]
    return renamed, host_devices()
