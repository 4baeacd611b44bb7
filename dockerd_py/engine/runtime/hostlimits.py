"""Discover the host facts the spec generator needs (read once at startup)."""

from __future__ import annotations

import functools
import os
import resource

from .defaults import caps_from_mask
from .spec import HostLimits


def _status_field(name: str) -> str:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpuset(name: str) -> str:
    """The daemon's cgroup cpuset list (v2 effective, v1), else the online list."""
    cgroup = "/sys/fs/cgroup"
    for path in (f"{cgroup}/cpuset.{name}.effective", f"{cgroup}/cpuset/cpuset.{name}",
                 "/sys/devices/system/" + ("cpu" if name == "cpus" else "node") + "/online"):
        try:
            with open(path) as f:
                if text := f.read().strip():
                    return text
        except OSError:
            continue
    return ""


def _blkio(v2: bool, name: str) -> bool:
    """Whether the blkio (v1) or io (v2) controller takes `name` ("weight",
    "weight_device"), as moby's sysinfo decides."""
    if v2:
        try:
            with open("/sys/fs/cgroup/cgroup.controllers") as f:
                return "io" in f.read().split()
        except OSError:
            return False
    return any(os.path.exists(f"/sys/fs/cgroup/blkio/blkio.{kind}{name}")
               for kind in ("", "bfq."))


@functools.cache
def host_limits() -> HostLimits:
    bounding = caps_from_mask(int(_status_field("CapBnd") or "0", 16))
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return HostLimits(
        bounding_caps=bounding,
        nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        nproc_hard=resource.getrlimit(resource.RLIMIT_NPROC)[1],
        can_lower_oom_score="CAP_SYS_RESOURCE" in bounding,
        cgroup_version="2" if v2 else "1",
        seccomp_available=bool(_status_field("Seccomp")),
        swap_limit=v2 or os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"),
        cpus=_cpuset("cpus"),
        mems=_cpuset("mems"),
        blkio_weight=_blkio(v2, "weight"),
        blkio_weight_device=_blkio(v2, "weight_device"),
    )
