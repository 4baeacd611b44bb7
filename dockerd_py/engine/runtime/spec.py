"""Docker container configuration → OCI runtime spec (the bundle's config.json).

Pure: everything the daemon knows about the host arrives in `HostLimits`, everything
about the container in `SpecInput`; `build_spec` returns the document for runc or
crun, with dockerd's defaults (moby's `daemon/oci_linux.go`). `validate` runs the
checks dockerd makes when a container is created, so bad input fails at create time.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockerd_py.engine.runtime import defaults, devices, seccomp
from dockerd_py.engine.runtime.defaults import SpecError, num
from dockerd_py.engine.runtime.devices import DeviceNode
from dockerd_py.engine.runtime.users import ResolvedUser

__all__ = ["DeviceNode", "HostLimits", "MountSpec", "SpecError", "SpecInput", "build_spec",
           "validate"]

OCI_VERSION = "1.0.2-dev"  # what runc 1.1 writes and accepts
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
INIT_PATH_IN_CONTAINER = "/sbin/docker-init"
_MOUNT_PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _kernel_version() -> tuple[int, int]:
    parts = (os.uname().release.split("-")[0].split(".") + ["0"])[:2]
    return (int(parts[0]), int(parts[1])) if all(p.isdigit() for p in parts) else (99, 0)


@dataclass(frozen=True)
class HostLimits:
    """Facts about the host, discovered once by the daemon."""

    bounding_caps: frozenset[str]     # the daemon's CapBnd (defaults.caps_from_mask)
    nofile_hard: int                  # most RLIMIT_NOFILE a container can get
    nproc_hard: int
    can_lower_oom_score: bool         # False without CAP_SYS_RESOURCE
    cgroup_version: str               # "1" (also hybrid) or "2"
    seccomp_available: bool
    swap_limit: bool = True           # v1: memory.memsw.* exists (swap accounting on)
    ncpu: int = field(default_factory=lambda: os.cpu_count() or 0)
    machine: str = field(default_factory=lambda: os.uname().machine)
    kernel: tuple[int, int] = field(default_factory=_kernel_version)
    # e.g. /sys/devices/system/cpu/cpuN/thermal_throttle dirs that exist on this host
    extra_masked_paths: tuple[str, ...] = ()
    cpus: str = ""                    # the CPUs and memory nodes containers may use, as
    mems: str = ""                    # cpuset lists ("0-3"); "" = unknown
    blkio_weight: bool = True         # the cgroup takes a block I/O weight
    blkio_weight_device: bool = True  # ... and per-device weights


@dataclass(frozen=True)
class MountSpec:
    """A resolved bind, volume or tmpfs mount (from Binds, Mounts and volumes).

    options, bind/volume: "ro" (or "rro"), a propagation mode ("rslave", ...; binds
    default to "rprivate"), "bind" for a non-recursive bind; others are ignored.
    options, tmpfs: mount data and flags ("size=65536k", "mode=1777", "ro", "exec").
    """

    destination: str
    source: str
    type: str = "bind"  # "bind" | "volume" | "tmpfs"
    options: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SpecInput:
    container_id: str
    rootfs: str
    config: Mapping[str, Any]         # Config, image defaults merged
    host_config: Mapping[str, Any]    # HostConfig
    host: HostLimits
    mounts: Sequence[MountSpec] = ()
    user: ResolvedUser = ResolvedUser()
    etc_files: Mapping[str, str] = field(default_factory=dict)  # /etc/hosts etc. → host path
    shm_path: str | None = None       # daemon-mounted /dev/shm; None → tmpfs in the spec
    netns_path: str | None = None     # None → new netns (unless NetworkMode host); "host"
    link_env: Sequence[str] = ()      # the variables of --link, before Config.Env
    ns_paths: Mapping[str, str] = field(default_factory=dict)  # "ipc"/"pid" for container:<id>
    cgroup_parent: str = "dockerd-py"
    init_path: str | None = None      # static tini/catatonit on the host, for HostConfig.Init
    devices: Sequence[DeviceNode] = ()       # HostConfig.Devices, resolved by the caller
    host_devices: Sequence[DeviceNode] = ()  # every node under the host's /dev (privileged)


def _ns_mode(value: Any) -> tuple[str, str]:
    """("container", "abc") for "container:abc"; ("host", "") for "host"."""
    kind, _, ref = str(value or "").partition(":")
    return kind, ref


# Namespace modes: the kinds each HostConfig field accepts ("container" = "container:<id>").
_MODES = {
    "IpcMode": ("IPC", ("", "private", "shareable", "host", "none", "container")),
    "PidMode": ("PID", ("", "host", "container")),
    "UTSMode": ("UTS", ("", "host")),
    "CgroupnsMode": ("cgroup namespace", ("", "private", "host")),
}


def validate(config: Mapping[str, Any], hc: Mapping[str, Any], host: HostLimits) -> None:
    """dockerd's create-time checks of the configuration (raises SpecError)."""
    hostname = str(config.get("Hostname") or "")
    if len(hostname) > 64:
        raise SpecError(f'hostname "{hostname}" is too long (maximum 64 bytes)')
    workdir = str(config.get("WorkingDir") or "")
    if workdir and not workdir.startswith("/"):
        raise SpecError(f"the working directory '{workdir}' is invalid, "
                        "it needs to be an absolute path")
    # runc refuses a NUL only at start (a 500 then): the same words, at create.
    if "\0" in workdir:
        raise SpecError("mkdir " + workdir.replace("\0", "\\x00") + ": invalid argument")
    check_env(config.get("Env") or ())
    for key, (name, allowed) in _MODES.items():
        kind, ref = _ns_mode(hc.get(key))
        if kind not in allowed or (kind == "container" and not ref):
            raise SpecError(f"invalid {name} mode: {hc.get(key)}")
    if num(hc, "ShmSize") < 0:
        raise SpecError("SHM size can not be less than 0")
    defaults.check_resources(hc, host.ncpu, host.cpus, host.mems)
    _oom_score_adj(hc, host)
    _rlimits(hc, host)
    seccomp.parse_security_opts(hc.get("SecurityOpt") or ())
    defaults.capabilities(hc.get("CapAdd") or (), hc.get("CapDrop") or (),
                          bool(hc.get("Privileged")), host.bounding_caps)
    for dest, data in (hc.get("Tmpfs") or {}).items():
        # moby volume/mounts/linux_parser.go:ValidateTmpfsMountDestination
        if dest.startswith("/") and posixpath.normpath("/" + dest.lstrip("/")) == "/":
            raise SpecError("invalid specification: destination can't be '/'")
        if not dest.startswith("/"):
            raise SpecError(f"invalid mount path: '{dest}' mount path must be absolute")
        defaults.tmpfs_options(data or "")
    for rule in hc.get("DeviceCgroupRules") or ():
        defaults.parse_device_cgroup_rule(rule)
    devices.check(hc.get("Devices") or ())


def check_env(entries: Sequence[Any]) -> None:
    """runc's refusal of a NUL in the environment, at create instead of at start."""
    for entry in map(str, entries):
        if "\0" in entry:
            shown = entry.replace("\0", "\\x00")
            raise SpecError(f'environment variable value can\'t contain null(\\x00): "{shown}"')


def _oom_score_adj(hc: Mapping[str, Any], host: HostLimits) -> int:
    score = num(hc, "OomScoreAdj")
    if not -1000 <= score <= 1000:
        raise SpecError(f"Invalid value {score}, range for oom score adj is [-1000, 1000]")
    if score < 0 and not host.can_lower_oom_score:
        raise SpecError(
            f"--oom-score-adj={score} is not possible on this host: lowering a process's OOM "
            "score needs CAP_SYS_RESOURCE, which the daemon does not have; use a value >= 0")
    return score


def _rlimits(hc: Mapping[str, Any], host: HostLimits) -> list[dict[str, Any]]:
    ceilings = {"nofile": host.nofile_hard, "nproc": host.nproc_hard}
    return defaults.rlimits(hc.get("Ulimits") or (), ceilings)


def _process_args(inp: SpecInput, pid_private: bool) -> list[str]:
    def words(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else [str(v) for v in value or ()]

    args = words(inp.config.get("Entrypoint")) + words(inp.config.get("Cmd"))
    if not args:
        raise SpecError("no command specified")
    if inp.host_config.get("Init") and pid_private:
        if not inp.init_path:
            raise SpecError("--init was requested but no init binary (docker-init, "
                            "tini-static or catatonit) was found on the host")
        args = [INIT_PATH_IN_CONTAINER, "--", *args]
    return args


def _env(config: Mapping[str, Any], hostname: str, home: str,
         link_env: Sequence[str] = ()) -> list[str]:
    """PATH, HOSTNAME and TERM defaults, the links' variables, then Config.Env ("KEY"
    alone unsets), as dockerd's CreateDaemonEnvironment."""
    env = {"PATH": DEFAULT_PATH_ENV, "HOSTNAME": hostname}
    if config.get("Tty"):
        env["TERM"] = "xterm"
    for entry in link_env:
        key, _, value = entry.partition("=")
        env[key] = value
    for entry in config.get("Env") or ():
        key, found, value = str(entry).partition("=")
        if found:
            env[key] = value
        else:
            env.pop(key, None)
    env.setdefault("HOME", home or "/")  # what runc would set from the image's passwd
    return [f"{k}={v}" for k, v in env.items()]


def _depth(path: str) -> int:
    return posixpath.normpath(path).count("/")


def _bind(m: MountSpec) -> dict[str, Any]:
    opts = ["bind" if "bind" in m.options else "rbind"]
    if "rro" in m.options:
        opts.append("rro")
    elif "ro" in m.options:
        opts.append("ro")
    propagation = next((o for o in m.options if o in _MOUNT_PROPAGATION),
                       "rprivate" if m.type == "bind" else "")
    if propagation:
        opts.append(propagation)
    return {"destination": m.destination, "type": "bind", "source": m.source, "options": opts}


def _tmpfs(dest: str, data: str | Sequence[str]) -> dict[str, Any]:
    return {"destination": dest, "type": "tmpfs", "source": "tmpfs",
            "options": defaults.tmpfs_options(data)}


def _user_mounts(inp: SpecInput, ipc_none: bool) -> list[dict[str, Any]]:
    """Every mount the container adds, sorted by depth so parents mount before children.

    Within a depth, moby's order: the daemon's /dev/shm, --tmpfs, binds and volumes,
    then /etc/resolv.conf, hostname and hosts (which a user mount replaces).
    """
    hc = inp.host_config
    tmpfs = hc.get("Tmpfs") or {}
    mounts = [_tmpfs(dest, tmpfs[dest] or "") for dest in sorted(tmpfs)]
    for m in inp.mounts:
        if m.destination in tmpfs:
            continue  # --tmpfs wins over a volume at the same path (moby)
        mounts.append(_tmpfs(m.destination, m.options) if m.type == "tmpfs" else _bind(m))
    taken = {m["destination"] for m in mounts}
    if inp.shm_path and not ipc_none and "/dev/shm" not in taken:
        mounts.insert(0, _bind(MountSpec("/dev/shm", inp.shm_path)))
    etc_mode = ("ro",) if hc.get("ReadonlyRootfs") else ()
    mounts += [_bind(MountSpec(dest, src, "bind", etc_mode))
               for dest, src in inp.etc_files.items() if dest not in taken]
    return sorted(mounts, key=lambda m: _depth(m["destination"]))


def _mounts(inp: SpecInput, init: bool, ipc_none: bool,
            writable_cgroups: bool) -> list[dict[str, Any]]:
    """Default mounts (minus those a user mount replaces), then the user's."""
    hc = inp.host_config
    user = _user_mounts(inp, ipc_none)
    taken = {m["destination"] for m in user}
    base = defaults.default_mounts()
    if init:
        base.append({"destination": INIT_PATH_IN_CONTAINER, "type": "bind",
                     "source": inp.init_path, "options": ["bind", "ro"]})
    kept = []
    for m in base:
        dest = m["destination"]
        if dest in taken or ("/dev" in taken and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if ipc_none:
                continue
            m["options"].append(f"size={num(hc, 'ShmSize') or DEFAULT_SHM_SIZE}")
        if hc.get("ReadonlyRootfs") and dest not in defaults.READONLY_ROOTFS_EXEMPT:
            if "ro" not in m["options"]:
                m["options"].append("ro")
        if (dest == "/sys" and hc.get("Privileged")) or (m["type"] == "cgroup"
                                                         and writable_cgroups):
            m["options"] = [o for o in m["options"] if o != "ro"]
        kept.append(m)
    return kept + user


def _root_propagation(mounts: Sequence[Mapping[str, Any]]) -> str | None:
    """Shared/slave binds need a matching propagation on the root (the caller checks
    that such a bind's source is on a shared mount, as dockerd does)."""
    options = {o for m in mounts if m["type"] == "bind" for o in m["options"]}
    if options & {"shared", "rshared"}:
        return "shared"
    if options & {"slave", "rslave"}:
        return "rslave"
    return None


def _namespaces(inp: SpecInput) -> list[dict[str, str]]:
    hc = inp.host_config

    def joined(kind: str, mode: str) -> dict[str, str] | None:
        what, ref = _ns_mode(hc.get(mode))
        if what == "host":
            return None
        if what == "container":
            path = inp.ns_paths.get(kind)
            if not path:
                raise SpecError(f"cannot join the {kind} namespace of container {ref}: "
                                "it is not running")
            return {"type": kind, "path": path}
        return {"type": kind}

    net_kind, net_ref = _ns_mode(hc.get("NetworkMode"))
    if net_kind == "host" or inp.netns_path == "host":
        network = None
    elif inp.netns_path:
        network = {"type": "network", "path": inp.netns_path}
    elif net_kind == "container":
        raise SpecError(f"cannot join network of a non running container: {net_ref}")
    else:
        network = {"type": "network"}
    cgroupns = hc.get("CgroupnsMode") or ("private" if inp.host.cgroup_version == "2"
                                          else "host")
    found = [
        {"type": "mount"}, network,
        None if _ns_mode(hc.get("UTSMode"))[0] == "host" else {"type": "uts"},
        joined("pid", "PidMode"), joined("ipc", "IpcMode"),
        {"type": "cgroup"} if cgroupns == "private" else None,
    ]
    return [ns for ns in found if ns]


def _devices(inp: SpecInput, privileged: bool) -> tuple[list[dict[str, Any]], list[Any]]:
    def node(d: DeviceNode) -> dict[str, Any]:
        return {"path": d.path, "type": d.type, "major": d.major, "minor": d.minor,
                "fileMode": d.file_mode, "uid": d.uid, "gid": d.gid}

    if privileged:
        host_paths = {d.path for d in inp.host_devices}
        nodes = [*inp.host_devices, *(d for d in inp.devices if d.path not in host_paths)]
        return [node(d) for d in nodes], [{"allow": True, "access": "rwm"}]
    rules = defaults.default_device_rules()
    rules += [{"allow": True, "type": d.type, "major": d.major, "minor": d.minor,
               "access": d.permissions} for d in inp.devices]
    rules += [defaults.parse_device_cgroup_rule(r)
              for r in inp.host_config.get("DeviceCgroupRules") or ()]
    return [node(d) for d in inp.devices], rules


def build_spec(inp: SpecInput) -> dict[str, Any]:
    """The OCI config.json document for the container."""
    cfg, hc, host = inp.config, inp.host_config, inp.host
    validate(cfg, hc, host)
    privileged = bool(hc.get("Privileged"))
    security = seccomp.parse_security_opts(hc.get("SecurityOpt") or ())
    pid_private = not _ns_mode(hc.get("PidMode"))[0]
    ipc_none = hc.get("IpcMode") == "none"
    net_kind = _ns_mode(hc.get("NetworkMode"))[0]
    host_net = net_kind == "host" or inp.netns_path == "host"
    uts_host = _ns_mode(hc.get("UTSMode"))[0] == "host"

    # With the host's network or UTS namespace the container keeps the host's name.
    hostname = str(cfg.get("Hostname") or ("" if host_net or uts_host
                                           else inp.container_id[:12]))
    caps = defaults.capabilities(hc.get("CapAdd") or (), hc.get("CapDrop") or (),
                                 privileged, host.bounding_caps)
    process: dict[str, Any] = {
        "terminal": bool(cfg.get("Tty")),
        "user": {"uid": inp.user.uid, "gid": inp.user.gid},
        "args": _process_args(inp, pid_private),
        "env": _env(cfg, hostname, inp.user.home, inp.link_env),
        "cwd": str(cfg.get("WorkingDir") or "/"),
        "capabilities": {"bounding": caps, "effective": list(caps), "permitted": list(caps)},
    }
    if inp.user.additional_gids:
        process["user"]["additionalGids"] = list(inp.user.additional_gids)
    size = hc.get("ConsoleSize") or (0, 0)
    if cfg.get("Tty") and (size[0] or size[1]):
        process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
    rlimits = _rlimits(hc, host)
    if rlimits:
        process["rlimits"] = rlimits
    if security.no_new_privileges:
        process["noNewPrivileges"] = True
    oom = _oom_score_adj(hc, host)
    if oom:
        process["oomScoreAdj"] = oom

    writable_cgroups = (privileged if security.writable_cgroups is None
                        else security.writable_cgroups)
    init = bool(hc.get("Init")) and pid_private
    mounts = _mounts(inp, init, ipc_none, writable_cgroups)

    sysctl: dict[str, str] = {}
    if net_kind not in ("host", "container") and not host_net:
        sysctl["net.ipv4.ping_group_range"] = "0 2147483647"  # ping without CAP_NET_RAW
        sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"   # bind <1024 without caps
    if cfg.get("Domainname"):
        sysctl["kernel.domainname"] = str(cfg["Domainname"])  # no OCI field for it
    sysctl.update({str(k): str(v) for k, v in (hc.get("Sysctls") or {}).items()})

    devices, device_rules = _devices(inp, privileged)
    resources = {"devices": device_rules,
                 **defaults.resources(hc, host.cgroup_version, host.swap_limit)}
    parent = str(hc.get("CgroupParent") or inp.cgroup_parent).strip("/")
    linux: dict[str, Any] = {
        "cgroupsPath": f"/{parent}/{inp.container_id}" if parent else f"/{inp.container_id}",
        "resources": resources,
        "namespaces": _namespaces(inp),
        "devices": devices,
    }
    propagation = _root_propagation(mounts)
    if propagation:
        linux["rootfsPropagation"] = propagation
    if sysctl:
        linux["sysctl"] = sysctl
    masked = hc.get("MaskedPaths")
    readonly = hc.get("ReadonlyPaths")
    if masked is None:
        masked = [] if privileged else [*defaults.MASKED_PATHS, *host.extra_masked_paths]
    if readonly is None:
        readonly = [] if privileged else list(defaults.READONLY_PATHS)
    if masked:
        linux["maskedPaths"] = list(masked)
    if readonly:
        linux["readonlyPaths"] = list(readonly)
    profile = seccomp.select_profile(security, privileged, caps,
                                     available=host.seccomp_available,
                                     machine=host.machine, kernel=host.kernel)
    if profile:
        linux["seccomp"] = profile

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": inp.rootfs, "readonly": bool(hc.get("ReadonlyRootfs"))},
    }
    if hostname and not uts_host:
        spec["hostname"] = hostname
    spec["mounts"] = mounts
    spec["linux"] = linux
    if hc.get("Annotations"):
        spec["annotations"] = {str(k): str(v) for k, v in hc["Annotations"].items()}
    return spec
