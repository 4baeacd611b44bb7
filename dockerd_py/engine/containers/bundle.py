"""Getting a container ready for its runtime, and tidying up after it.

prepare(): mount the root filesystem, write /etc files, resolve the user
from the image's passwd/group, build the OCI spec and write config.json into
the monitor's bundle directory. teardown(): the reverse, idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from ...errors import InvalidParameter
from ..modes import makedirs
from ..mount import mount_all, unmount
from ..networks.contract import Attachment
from ..runtime.hostlimits import host_limits
from ..runtime.spec import MountSpec, SpecInput, build_spec
from ..runtime.users import resolve_user
from ..snapshots.contract import Mount
from . import etcfiles
from .records import Container

INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit")


def read_in_root(rootfs: str, path: str) -> str | None:
    """A text file of the container, never following a link out of its root."""
    real = path_in_root(rootfs, path)
    if real is None:
        return None
    try:
        with open(real, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError:
        return None


def init_binary() -> str | None:
    return next((p for p in INIT_BINARIES if os.access(p, os.X_OK)), None)


def _mount_specs(c: Container) -> list[MountSpec]:
    out = []
    for p in c.mounts:
        options: list[str] = [] if p["RW"] else ["ro"]
        if p["Type"] == "tmpfs":
            data = [o for o in (p.get("Mode") or "").split(",") if o]
            out.append(MountSpec(p["Destination"], "tmpfs", "tmpfs", tuple(options + data)))
            continue
        if p.get("Propagation"):
            options.append(p["Propagation"])
        kind = "bind" if p["Type"] == "bind" else "volume"
        out.append(MountSpec(p["Destination"], p["Source"], kind, tuple(options)))
    return out


def mount_rootfs(state_dir: str, mounts: list[Mount], snapshots_root: str) -> str:
    """Mount the container's snapshot at <state_dir>/rootfs (idempotent); blocking."""
    rootfs = os.path.join(state_dir, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    if not os.path.ismount(rootfs):
        mount_all(mounts, rootfs, cwd=snapshots_root)
    return rootfs


def path_in_root(rootfs: str, path: str) -> str | None:
    """Host path of a container path, never resolving outside the root (None then)."""
    real = os.path.realpath(os.path.join(rootfs, path.lstrip("/")))
    return real if real == rootfs or real.startswith(rootfs.rstrip("/") + "/") else None


def prepare(c: Container, *, state_dir: str, bundle_dir: str, mounts: list[Mount],
            snapshots_root: str, cgroup_parent: str,
            net: Attachment | None = None) -> dict[str, Any]:
    """Blocking. Returns the spec written to bundle_dir/config.json. `net` is the
    network service's Attachment (None: a new network namespace)."""
    rootfs = mount_rootfs(state_dir, mounts, snapshots_root)
    try:
        for p in c.mounts:
            if p["Type"] == "bind" and not os.path.exists(p["Source"]):
                try:
                    makedirs(p["Source"], 0o755)  # as dockerd does for -v
                except OSError as e:
                    raise InvalidParameter(
                        f"error while creating mount source path '{p['Source']}': "
                        f"mkdir {p['Source']}: {(e.strerror or str(e)).lower()}") from None
        etc = etcfiles.write(state_dir, c.config, c.host_config,
                             net.addresses if net is not None else (),
                             nameservers=net.nameservers if net is not None else None,
                             link_hosts=net.link_hosts if net is not None else (),
                             host_gateway=net.host_gateway if net is not None else "")
        user = resolve_user(c.config.get("User") or "", read_in_root(rootfs, "/etc/passwd"),
                            read_in_root(rootfs, "/etc/group"),
                            c.host_config.get("GroupAdd") or ())
        hc = c.host_config
        netns = "host" if hc.get("NetworkMode") == "host" else None
        if net is not None:
            netns = net.netns_path
        spec = build_spec(SpecInput(
            container_id=c.id, rootfs=rootfs, config=c.config, host_config=hc,
            host=host_limits(), mounts=_mount_specs(c), user=user, etc_files=etc,
            netns_path=netns, cgroup_parent=cgroup_parent,
            init_path=init_binary() if hc.get("Init") else None))
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            json.dump(spec, f)
        return spec
    except BaseException:
        unmount(rootfs)
        raise


def teardown(state_dir: str) -> None:
    """Unmount the root filesystem (idempotent)."""
    unmount(os.path.join(state_dir, "rootfs"))


def remove_state(state_dir: str) -> None:
    """Delete the container's directory, refusing to descend into a live mount."""
    rootfs = os.path.join(state_dir, "rootfs")
    unmount(rootfs)
    if os.path.ismount(rootfs):
        raise OSError(f"{rootfs} is still mounted")
    shutil.rmtree(state_dir, ignore_errors=True)
