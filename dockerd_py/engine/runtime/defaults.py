"""dockerd's fixed defaults for a Linux container, and the small parsers around them.

Pure data and functions: capabilities, the default mounts, masked and read-only
paths, device cgroup rules, tmpfs option merging. `spec.py` assembles them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dockerd_py.errors import InvalidParameter

from . import cpuset


class SpecError(InvalidParameter):
    """The container's configuration cannot become a runnable OCI spec on this host."""


# Kernel capability numbers, in order (capability.h). The number is the bit in CapBnd.
ALL_CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + name
    for name in """
    CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
    SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
    SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
    MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
    CHECKPOINT_RESTORE
    """.split()
)
_CAP_NUMBER = {name: i for i, name in enumerate(ALL_CAPABILITIES)}

# The 14 capabilities every container gets (moby's order, as `docker inspect` shows them).
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)


def caps_from_mask(mask: int) -> frozenset[str]:
    """Capability names of a CapBnd/CapEff bit mask (bits the table does not name are ignored)."""
    return frozenset(name for i, name in enumerate(ALL_CAPABILITIES) if mask >> i & 1)


def _normalize_caps(names: Iterable[str], available: frozenset[str], *, adding: bool) -> list[str]:
    out = []
    for raw in names:
        name = raw.upper()
        if name != "ALL" and not name.startswith("CAP_"):
            name = "CAP_" + name
        if name != "ALL" and name not in _CAP_NUMBER:
            raise SpecError(f'unknown capability: "{name}"')
        # Dropping a capability the host lacks is harmless, so only adds are refused.
        if adding and name != "ALL" and name not in available:
            raise SpecError(
                "capability not supported by your kernel or not available in the "
                f'current environment: "{name}"'
            )
        out.append(name)
    return out


def capabilities(
    cap_add: Sequence[str], cap_drop: Sequence[str], privileged: bool, available: frozenset[str]
) -> list[str]:
    """The container's capability set, as moby's TweakCapabilities computes it.

    "All" means the daemon's own bounding set (`available`), never a fixed list: a
    host without CAP_SYS_RESOURCE cannot hand it to a privileged container.
    """
    everything = sorted(available & _CAP_NUMBER.keys(), key=_CAP_NUMBER.__getitem__)
    if privileged:
        return everything
    drops = _normalize_caps(cap_drop, available, adding=False)
    adds = _normalize_caps(cap_add, available, adding=True)
    if "ALL" in adds:
        chosen = [c for c in everything if c not in drops]
    elif "ALL" in drops:
        chosen = adds
    else:
        chosen = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    return [c for c in dict.fromkeys(chosen) if c in available]


def default_mounts() -> list[dict[str, Any]]:
    """The filesystems every container starts with (before user mounts override them)."""

    def mount(dest: str, typ: str, source: str, *options: str) -> dict[str, Any]:
        return {"destination": dest, "type": typ, "source": source, "options": list(options)}

    return [
        mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        mount("/dev/pts", "devpts", "devpts",
              "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
        mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        # runc mounts a cgroup2 fs (v2) or binds the container's v1 hierarchies here.
        mount("/sys/fs/cgroup", "cgroup", "cgroup", "ro", "nosuid", "noexec", "nodev"),
        mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        mount("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777"),
    ]


# Default mounts that stay writable under --read-only.
READONLY_ROOTFS_EXEMPT = frozenset({"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"})

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)


def _rule(allow: bool, typ: str | None, major: int | None, minor: int | None,
          access: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": allow}
    if typ is not None:
        rule["type"] = typ
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = access
    return rule


def default_device_rules() -> list[dict[str, Any]]:
    """Device cgroup: deny everything, then allow the standard nodes (runc adds pts/ptmx/full).

    /dev/fuse (10:229) is denied explicitly so that runc's own defaults cannot re-allow it.
    """
    # zero, null, urandom, random, tty, console
    allowed = [(1, 5), (1, 3), (1, 9), (1, 8), (5, 0), (5, 1)]
    return (
        [_rule(False, None, None, None, "rwm")]
        + [_rule(True, "c", major, minor, "rwm") for major, minor in allowed]
        + [_rule(False, "c", 10, 229, "rwm")]
    )


_CGROUP_RULE = re.compile(r"([acb]) ([0-9]{1,10}|\*):([0-9]{1,10}|\*) ([rwm]{1,3})")  # fullmatch


def parse_device_cgroup_rule(text: str) -> dict[str, Any]:
    """`--device-cgroup-rule 'c 1:3 mr'` → an allow rule ("*" = any major/minor)."""
    m = _CGROUP_RULE.fullmatch(text) if isinstance(text, str) else None  # no final newline
    if not m:
        raise SpecError(f"invalid device cgroup rule format: '{text}'")
    typ, major, minor, access = m.groups()
    return _rule(True, typ,
                 None if major == "*" else int(major),
                 None if minor == "*" else int(minor), access)


# Mount flags by the flag they set or clear: a later option for the same flag wins.
_FLAG_KEYS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid",
    "dev": "nodev", "nodev": "nodev", "exec": "noexec", "noexec": "noexec",
    "sync": "sync", "async": "sync", "dirsync": "dirsync", "remount": "remount",
    "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "relatime": "relatime",
    "norelatime": "relatime", "strictatime": "strictatime", "nostrictatime": "strictatime",
}
# Propagation/bind modes: only one may survive.
_PROPAGATION = frozenset({
    "bind", "rbind", "unbindable", "runbindable", "private", "rprivate",
    "shared", "rshared", "slave", "rslave",
})
_TMPFS_DATA = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})

TMPFS_BASE_OPTIONS = ("noexec", "nosuid", "nodev", "rprivate")


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """Deduplicate tmpfs options as moby does: the last option for a flag or key wins."""
    seen: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option in ("defaults", ""):
            continue
        if option in _FLAG_KEYS or option in _PROPAGATION:
            key = "propagation" if option in _PROPAGATION else _FLAG_KEYS[option]
        else:
            key, sep, _ = option.partition("=")
            if not sep or key not in _TMPFS_DATA:
                raise SpecError(f'invalid tmpfs option "{key}"')
        if key not in seen:
            seen.add(key)
            merged.insert(0, option)
    return merged


def tmpfs_options(data: str | Sequence[str]) -> list[str]:
    """`--tmpfs /run:rw,size=64m` data → the mount options of the spec."""
    extra = [o for o in data.split(",") if o] if isinstance(data, str) else list(data)
    return merge_tmpfs_options([*TMPFS_BASE_OPTIONS, *extra])


# --- cgroup resources and rlimits ------------------------------------------------------

CFS_PERIOD_US = 100_000  # --cpus N → quota N × period
MIN_MEMORY = 6 * 1024 * 1024
RLIMIT_INFINITY = 2**64 - 1
RLIMIT_NAMES = frozenset({
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
    "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
})


def num(hc: Mapping[str, Any], key: str) -> int:
    return int(hc.get(key) or 0)


def discard_unsupported(hc: dict[str, Any], blkio_weight: bool,
                        blkio_weight_device: bool) -> list[str]:
    """As dockerd: block I/O weights the host's cgroups cannot take are dropped from hc,
    with a warning each, rather than failing the container at start."""
    warnings = []
    if num(hc, "BlkioWeight") > 0 and not blkio_weight:
        warnings.append("Your kernel does not support Block I/O weight or the cgroup is not "
                        "mounted. Weight discarded.")
        hc["BlkioWeight"] = 0
    if hc.get("BlkioWeightDevice") and not blkio_weight_device:
        warnings.append("Your kernel does not support Block I/O weight_device or the cgroup "
                        "is not mounted. Weight-device discarded.")
        hc["BlkioWeightDevice"] = []
    return warnings


def check_resources(hc: Mapping[str, Any], ncpu: int, cpus: str = "", mems: str = "") -> None:
    """dockerd's checks of the resource fields of a HostConfig (`ncpu` 0 = unknown; `cpus`
    and `mems` the host's cpuset lists, "" = unknown)."""
    memory, swap = num(hc, "Memory"), num(hc, "MemorySwap")
    reservation, swappiness = num(hc, "MemoryReservation"), hc.get("MemorySwappiness")
    if memory != 0 and memory < MIN_MEMORY:     # negative too, as dockerd
        raise SpecError("Minimum memory limit allowed is 6MB")
    if memory > 0 and 0 < swap < memory:
        raise SpecError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise SpecError("You should always set the Memory limit when using Memoryswap limit, "
                        "see usage")
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise SpecError(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    # Values the kernel refuses when runc writes them (a runtime error, 500): 400 first.
    if reservation < 0:
        raise SpecError(f"invalid memory reservation ({reservation}): value must be a "
                        "positive integer")
    if swap < -1:
        raise SpecError(f"invalid memory swap limit ({swap}): value must be a positive "
                        "integer, or -1 for unlimited swap")
    if 0 < reservation < MIN_MEMORY:
        raise SpecError("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise SpecError("Minimum memory limit can not be less than memory reservation limit, "
                        "see usage")
    nano, period, quota = num(hc, "NanoCpus"), num(hc, "CpuPeriod"), num(hc, "CpuQuota")
    if nano > 0 and period > 0:
        raise SpecError("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise SpecError("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if ncpu and (nano < 0 or nano > ncpu * 10**9):
        raise SpecError(f"range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                        f"{ncpu} CPUs available")
    if period and not 1000 <= period <= 1_000_000:
        raise SpecError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than "
                        "1s (i.e. 1000000)")
    if 0 < quota < 1000 or quota < -1:  # -1: no quota
        raise SpecError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if num(hc, "CpuShares") < 0:
        raise SpecError(f"invalid CPU shares ({num(hc, 'CpuShares')}): "
                        "value must be a positive integer")
    rt_period, rt_runtime = num(hc, "CpuRealtimePeriod"), num(hc, "CpuRealtimeRuntime")
    for value, what in ((rt_period, "period"), (rt_runtime, "runtime")):
        if value < 0:
            raise SpecError(f"invalid CPU real-time {what} ({value}): value must be a "
                            "positive integer")
    if rt_period and rt_runtime > rt_period:
        raise SpecError("cpu real-time runtime cannot be higher than cpu real-time period")
    if rt_runtime:
        # The daemon gives its containers' cgroup parent no real-time budget (dockerd's
        # --cpu-rt-runtime): the kernel refuses any, which was a runtime error (500).
        raise SpecError("CPU real-time runtime is not available: the daemon allots no "
                        "real-time CPU time to containers")
    if num(hc, "IOMaximumBandwidth") or num(hc, "IOMaximumIOps"):
        raise SpecError("Invalid QoS settings: linux does not support Maximum IO Bandwidth or "
                        "Maximum IO IOps")
    cpuset.check(str(hc.get("CpusetCpus") or ""), cpus, "cpus")
    cpuset.check(str(hc.get("CpusetMems") or ""), mems, "mems")
    weight = num(hc, "BlkioWeight")
    if weight and not 10 <= weight <= 1000:
        raise SpecError("Range of blkio weight is from 10 to 1000")


def resources(hc: Mapping[str, Any], cgroup_version: str, swap_limit: bool) -> dict[str, Any]:
    """`linux.resources` memory/cpu/pids/blockIO; only what was asked for."""
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if num(hc, "Memory") > 0:
        memory["limit"] = num(hc, "Memory")
        if swap_limit:
            # dockerd stores MemorySwap = 2 × Memory at create when it is left unset;
            # -1 (unlimited) is left out.
            swap = num(hc, "MemorySwap") or 2 * memory["limit"]
            if swap > 0:
                memory["swap"] = swap
    if num(hc, "MemoryReservation") > 0:
        memory["reservation"] = num(hc, "MemoryReservation")
    swappiness = hc.get("MemorySwappiness")
    if swappiness is not None and 0 <= swappiness <= 100 and cgroup_version == "1":
        memory["swappiness"] = int(swappiness)
    if hc.get("OomKillDisable") is not None and cgroup_version == "1":
        memory["disableOOMKiller"] = bool(hc["OomKillDisable"])
    cpu: dict[str, Any] = {}
    if num(hc, "CpuShares"):
        cpu["shares"] = num(hc, "CpuShares")
    if num(hc, "NanoCpus") > 0:
        cpu["quota"] = num(hc, "NanoCpus") * CFS_PERIOD_US // 10**9
        cpu["period"] = CFS_PERIOD_US
    if num(hc, "CpuPeriod"):
        cpu["period"] = num(hc, "CpuPeriod")
    if num(hc, "CpuQuota"):
        cpu["quota"] = num(hc, "CpuQuota")
    for key, name in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if hc.get(key):
            cpu[name] = str(hc[key])
    if memory:
        res["memory"] = memory
    if cpu:
        res["cpu"] = cpu
    if num(hc, "PidsLimit") > 0:
        res["pids"] = {"limit": num(hc, "PidsLimit")}
    if num(hc, "BlkioWeight"):
        res["blockIO"] = {"weight": num(hc, "BlkioWeight")}
    return res


def rlimits(ulimits: Iterable[Mapping[str, Any]],
            ceilings: Mapping[str, int]) -> list[dict[str, Any]]:
    """`--ulimit` values → `process.rlimits`; nothing else (containers inherit the rest).

    `ceilings` maps a name to the most the runtime can set. Without CAP_SYS_RESOURCE no
    hard limit can be raised, and runc would only say "setrlimit: operation not
    permitted"; name the ceiling instead.
    """
    by_name: dict[str, dict[str, Any]] = {}
    for ul in ulimits:
        name = str(ul.get("Name") or "")
        if name not in RLIMIT_NAMES:
            raise SpecError(f"invalid ulimit type: {name}")
        soft, hard = int(ul.get("Soft") or 0), int(ul.get("Hard") or 0)
        soft_v = RLIMIT_INFINITY if soft < 0 else soft  # -1 = unlimited
        hard_v = RLIMIT_INFINITY if hard < 0 else hard
        if soft_v > hard_v:
            raise SpecError("ulimit soft limit must be less than or equal to hard limit: "
                            f"{soft} > {hard}")
        ceiling = ceilings.get(name)
        if ceiling is not None and 0 <= ceiling < hard_v:
            raise SpecError(
                f"--ulimit {name}={soft}:{hard} is above this host's hard limit of {ceiling}: "
                f"the daemon cannot raise {name} beyond it (no CAP_SYS_RESOURCE); "
                f"use a value of at most {ceiling}")
        by_name[name] = {"type": "RLIMIT_" + name.upper(), "hard": hard_v, "soft": soft_v}
    return list(by_name.values())
