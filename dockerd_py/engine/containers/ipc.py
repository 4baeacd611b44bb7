"""Namespaces one container takes from another, and the /dev/shm that goes with IPC.

As dockerd (daemon/container_operations_unix.go, 20.10's wording):
  * `PidMode`/`IpcMode` `container:<name>` are stored as `container:<id>` at create,
    and a container that does not exist is refused then (400);
  * at start the donor must be running: its /proc/<pid>/ns/{pid,ipc} is joined;
  * `IpcMode: shareable`: the daemon mounts a tmpfs for the container's /dev/shm
    (<state dir>/shm, mode 1777, ShmSize) so that another container can bind it; a
    container joining its IPC namespace gets that /dev/shm; joining one whose IPC is
    not shareable (private, none) fails;
  * `IpcMode: host`: no IPC namespace, and the host's /dev/shm;
  * private: a tmpfs of the runtime's own; none: no /dev/shm at all (spec.py).
A user mount on /dev/shm wins over all of these.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...errors import InternalError, InvalidParameter, NotFound
from ..mount import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount_tmpfs, unmount
from .records import Container

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_HOPS = 16  # containers joining a joiner: more than anyone chains


class Lookup(Protocol):
    def get(self, ref: str) -> Container: ...

    def find(self, cid: str) -> Container | None: ...

    def state_dir(self, cid: str) -> str: ...


@dataclass(frozen=True)
class Sharing:
    """What a starting container takes from others: namespace paths by kind ("pid",
    "ipc") and the /dev/shm to bind (None: the spec's own tmpfs, or none)."""

    ns_paths: Mapping[str, str] = field(default_factory=dict)
    shm_path: str | None = None


def _donor(kind: str, hc: Mapping[str, Any]) -> str:
    mode, _, ref = str(hc.get(kind) or "").partition(":")
    return ref if mode == "container" else ""


def adapt(lookup: Lookup, hc: dict[str, Any]) -> None:
    """At create: container:<name> → container:<id>; a missing container is a 400."""
    for kind in ("PidMode", "IpcMode"):
        ref = _donor(kind, hc)
        if ref:
            try:
                hc[kind] = "container:" + lookup.get(ref).id
            except NotFound as e:
                raise InvalidParameter(str(e)) from None


def has_shm_mount(c: Container) -> bool:
    return any(p.get("Destination") == "/dev/shm" for p in c.mounts) or \
        "/dev/shm" in (c.host_config.get("Tmpfs") or {})


def shm_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "shm")


def _running(lookup: Lookup, ref: str, missing: str, prefix: str = "") -> Container:
    """The donor, running; `missing` prefixes a lookup failure, `prefix` every error."""
    try:
        donor = lookup.get(ref)
    except NotFound as e:
        raise InternalError(f"{missing}{ref}: {e}") from None
    if donor.state.status == "restarting":
        raise InternalError(f"{prefix}Container {donor.id} is restarting, wait until the "
                            "container is running")
    if donor.state.status not in ("running", "paused") or not donor.state.pid:
        raise InternalError(f"{prefix}container {donor.id} is not running")
    return donor


def _shared_shm(lookup: Lookup, c: Container) -> str | None:
    """The /dev/shm a container lets others join: its shareable tmpfs, its own donor's,
    or the host's; None when its IPC is private."""
    for _ in range(_HOPS):
        mode = str(c.host_config.get("IpcMode") or "")
        if mode == "host":
            return "/dev/shm"
        if mode == "shareable":
            path = shm_dir(lookup.state_dir(c.id))
            return path if os.path.ismount(path) else None
        donor = lookup.find(_donor("IpcMode", c.host_config))
        if donor is None:
            return None
        c = donor
    return None


def sharing(lookup: Lookup, c: Container) -> Sharing:
    """At start: the namespaces and /dev/shm the container joins (dockerd's 500s)."""
    hc = c.host_config
    ns: dict[str, str] = {}
    shm: str | None = None
    if ref := _donor("PidMode", hc):
        donor = _running(lookup, ref, "cannot join PID of a non running container: ")
        ns["pid"] = f"/proc/{donor.state.pid}/ns/pid"
    if ref := _donor("IpcMode", hc):
        donor = _running(lookup, ref, "can't join IPC of container ",
                         f"can't join IPC of container {ref}: ")
        shm = _shared_shm(lookup, donor)
        if shm is None:
            raise InternalError(f"can't join IPC of container {donor.id}: non-shareable IPC "
                                "(hint: use IpcMode:shareable for the donor container)")
        ns["ipc"] = f"/proc/{donor.state.pid}/ns/ipc"
    elif hc.get("IpcMode") == "host":
        if not os.path.isdir("/dev/shm"):
            raise InternalError("/dev/shm is not mounted, but must be for --ipc=host")
        shm = "/dev/shm"
    if has_shm_mount(c):
        shm = None
    return Sharing(ns, shm)


def mount_shareable(state_dir: str, hc: Mapping[str, Any]) -> str:
    """The tmpfs a shareable container's /dev/shm is (idempotent); blocking."""
    path = shm_dir(state_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    if not os.path.ismount(path):
        size = int(hc.get("ShmSize") or 0) or DEFAULT_SHM_SIZE
        mount_tmpfs(path, f"mode=1777,size={size}", MS_NOEXEC | MS_NOSUID | MS_NODEV)
    return path


def unmount_shareable(state_dir: str) -> None:
    path = shm_dir(state_dir)
    unmount(path)
    with contextlib.suppress(OSError):  # gone already
        os.rmdir(path)
