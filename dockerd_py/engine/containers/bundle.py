"""Getting a container ready for its runtime, and tidying up after it.

prepare(): mount the root filesystem, write /etc files, resolve the user
from the image's passwd/group and the host devices it maps, pin volume sub-paths,
mount a shareable /dev/shm, build the OCI spec and write config.json into the
monitor's bundle directory. teardown(): the reverse, idempotent.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from ...errors import InvalidParameter
from ..archive import RefusedFile, regular
from ..modes import makedirs
from ..mount import mount_all, mounts_under, unmount, unmount_under
from ..networks.contract import Attachment
from ..runtime import devices
from ..runtime.hostlimits import host_limits
from ..runtime.spec import MountSpec, SpecInput, build_spec
from ..runtime.users import Unreadable, resolve_user
from ..snapshots.contract import Mount
from ..volumes import safepath
from . import etcfiles, ipc
from .gopath import go_error
from .ipc import Sharing
from .records import Container

INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit")
# /etc/passwd and /etc/group: kilobytes in real images, and parsed in full (dockerd reads
# any size; a cap keeps a hostile image from costing the daemon memory and time).
ETC_FILE_LIMIT = 4 << 20


def read_in_root(rootfs: str, path: str) -> str | Unreadable | None:
    """A small text file of the container (/etc/passwd, /etc/group), resolved inside its
    root and read only if it is a regular file (archive/regular.py): None when nothing is
    there, Unreadable (in Go's words) when something else is, or a larger file."""
    try:
        data = regular.read_in_root(rootfs, path, ETC_FILE_LIMIT)
    except RefusedFile as e:
        return Unreadable(go_error(e.op, path, e))
    except OSError as e:  # a symlink loop, most likely
        return Unreadable(go_error("open", path, e))
    return None if data is None else data.decode("utf-8", "replace")


def init_binary() -> str | None:
    return next((p for p in INIT_BINARIES if os.access(p, os.X_OK)), None)


def _mount_specs(c: Container, state_dir: str) -> list[MountSpec]:
    """The container's mount points for the spec; a volume's sub-path is pinned first
    (safepath.py), and the pin is what the runtime mounts."""
    out = []
    for i, p in enumerate(c.mounts):
        options: list[str] = [] if p["RW"] else ["ro"]
        if p["Type"] == "tmpfs":
            data = [o for o in (p.get("Mode") or "").split(",") if o]
            out.append(MountSpec(p["Destination"], "tmpfs", "tmpfs", tuple(options + data)))
            continue
        if p.get("Propagation"):
            options.append(p["Propagation"])
        kind = "bind" if p["Type"] == "bind" else "volume"
        source = p["Source"]
        if kind == "volume" and p.get("Subpath"):
            source = safepath.pin(source, p["Subpath"], os.path.join(pins_dir(state_dir), str(i)))
        out.append(MountSpec(p["Destination"], source, kind, tuple(options)))
    return out


def pins_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "subpaths")


def release_pins(state_dir: str) -> None:
    """Once the runtime has mounted them (or failed to), the pins can go."""
    safepath.unpin_all(pins_dir(state_dir))


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
            net: Attachment | None = None, sharing: Sharing | None = None) -> dict[str, Any]:
    """Blocking. Returns the spec written to bundle_dir/config.json. `net` is the
    network service's Attachment (None: a new network namespace); `sharing` what the
    container takes from others (ipc.py). On failure, what it mounted is gone."""
    sharing = sharing or Sharing()
    rootfs = mount_rootfs(state_dir, mounts, snapshots_root)
    try:
        release_pins(state_dir)  # any a crash left: pins are made afresh for each start
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
        mapped, host_devices = devices.resolve(hc)
        shm = sharing.shm_path
        if hc.get("IpcMode") == "shareable" and not ipc.has_shm_mount(c):
            shm = ipc.mount_shareable(state_dir, hc)
        spec = build_spec(SpecInput(
            container_id=c.id, rootfs=rootfs, config=c.config, host_config=hc,
            host=host_limits(), mounts=_mount_specs(c, state_dir), user=user, etc_files=etc,
            netns_path=netns, ns_paths=sharing.ns_paths, shm_path=shm,
            cgroup_parent=cgroup_parent, link_env=net.link_env if net is not None else (),
            init_path=init_binary() if hc.get("Init") else None,
            devices=mapped, host_devices=host_devices))
        with open(os.path.join(bundle_dir, "config.json"), "w") as f:
            json.dump(spec, f)
        return spec
    except BaseException:
        teardown(state_dir)
        raise


def teardown(state_dir: str) -> None:
    """Unmount the root filesystem, the sub-path pins and a shareable /dev/shm
    (idempotent)."""
    unmount(os.path.join(state_dir, "rootfs"))
    release_pins(state_dir)
    ipc.unmount_shareable(state_dir)


def remove_state(state_dir: str) -> None:
    """Delete the container's directory, refusing to descend into a live mount."""
    rootfs = os.path.join(state_dir, "rootfs")
    unmount(rootfs)
    if os.path.ismount(rootfs):
        raise OSError(f"{rootfs} is still mounted")
    # A pin or a /dev/shm a crash left behind: never delete through it into a volume.
    unmount_under(state_dir)
    if left := mounts_under(state_dir):
        raise OSError(f"{left[0]} is still mounted")
    shutil.rmtree(state_dir, ignore_errors=True)
