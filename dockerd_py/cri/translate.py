"""CRI configs -> the engine's container create bodies (the Docker API's shape).

Everything here is client input: strings reach the engine's own validation (which
refuses what dockerd refuses), and what the engine does not check (paths, keys) is
checked here first.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..errors import InvalidParameter
from ..protos.cri import api_pb2 as pb
from . import meta

_HOSTNAME = re.compile(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})")
_SYSCTL = re.compile(r"[a-zA-Z0-9_]+([./][a-zA-Z0-9_-]+)*")

PROPAGATION = {pb.PROPAGATION_PRIVATE: "rprivate", pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
               pb.PROPAGATION_BIDIRECTIONAL: "rshared"}
SECCOMP_PROFILE_LIMIT = 1 << 20


def _path(value: str, what: str) -> str:
    if not value.startswith("/") or "\0" in value or ".." in value.split("/"):
        raise InvalidParameter(f"invalid {what} {value!r}: an absolute path is required")
    return os.path.normpath(value)


def _user(uid: pb.Int64Value | None, gid: pb.Int64Value | None, has_uid: bool,
          has_gid: bool, username: str = "") -> str:
    if username:
        if ":" in username or "\0" in username:
            raise InvalidParameter(f"invalid run_as_username {username!r}")
        user = username
    elif has_uid and uid is not None:
        user = str(uid.value)
    else:
        user = ""
    if has_gid and gid is not None:
        if not user:
            raise InvalidParameter("run_as_group requires run_as_user or run_as_username")
        user += f":{gid.value}"
    return user


def _seccomp(profile: pb.SecurityProfile, has: bool, legacy: str) -> list[str]:
    if not has:
        # No profile at all means unconfined in the CRI (kubelet always names one).
        if legacy in ("unconfined", ""):
            return ["seccomp=unconfined"]
        if legacy in ("runtime/default", "docker/default"):
            return []
        if legacy.startswith("localhost/"):
            return [_localhost_seccomp(legacy[len("localhost/"):])]
        raise InvalidParameter(f"unknown seccomp profile {legacy!r}")
    if profile.profile_type == pb.SecurityProfile.Unconfined:
        return ["seccomp=unconfined"]
    if profile.profile_type == pb.SecurityProfile.Localhost:
        return [_localhost_seccomp(profile.localhost_ref)]
    return []


def _localhost_seccomp(ref: str) -> str:
    path = _path(ref, "seccomp profile")
    try:
        with open(path, "rb") as f:
            data = f.read(SECCOMP_PROFILE_LIMIT + 1)
    except OSError as e:
        raise InvalidParameter(f"cannot load seccomp profile {path!r}: {e.strerror}") from None
    if len(data) > SECCOMP_PROFILE_LIMIT:
        raise InvalidParameter(f"seccomp profile {path!r} is too large")
    return "seccomp=" + data.decode(errors="replace")


def _sysctls(values: dict[str, str]) -> dict[str, str]:
    for key, value in values.items():
        if not _SYSCTL.fullmatch(key) or "\0" in value or "\n" in value:
            raise InvalidParameter(f"invalid sysctl {key!r}")
    return values


def _hostname(value: str) -> str:
    if value and not _HOSTNAME.fullmatch(value):
        raise InvalidParameter(f"invalid hostname {value!r}")
    return value


def _dns(cfg: pb.PodSandboxConfig) -> dict[str, Any]:
    if not cfg.HasField("dns_config"):
        return {}
    d = cfg.dns_config
    return {"Dns": list(d.servers), "DnsSearch": list(d.searches), "DnsOptions": list(d.options)}


def pod_namespaces(cfg: pb.PodSandboxConfig) -> pb.NamespaceOption:
    return cfg.linux.security_context.namespace_options


def host_network(cfg: pb.PodSandboxConfig) -> bool:
    return pod_namespaces(cfg).network == pb.NODE


def sandbox_body(cfg: pb.PodSandboxConfig, image: str, m: meta.Meta) -> dict[str, Any]:
    """Blocking: reads a localhost seccomp profile."""
    sc = cfg.linux.security_context
    ns = sc.namespace_options
    hostnet = ns.network == pb.NODE
    hc: dict[str, Any] = {
        "NetworkMode": "host" if hostnet else "none",
        "IpcMode": "host" if ns.ipc == pb.NODE else "shareable",
        "PidMode": "host" if ns.pid == pb.NODE else "",
        "UTSMode": "host" if hostnet else "",
        "Privileged": sc.privileged,
        "ReadonlyRootfs": sc.readonly_rootfs,
        "GroupAdd": [str(g) for g in sc.supplemental_groups],
        "Sysctls": _sysctls(dict(cfg.linux.sysctls)),
        "SecurityOpt": [] if sc.privileged else _seccomp(sc.seccomp, sc.HasField("seccomp"),
                                                         sc.seccomp_profile_path),
        "LogConfig": {"Type": "none"},
        **_dns(cfg),
    }
    if cfg.linux.cgroup_parent:
        hc["CgroupParent"] = _cgroup_parent(cfg.linux.cgroup_parent)
    config: dict[str, Any] = {
        "Image": image,
        "Labels": meta.labels_for(m),
        "User": _user(sc.run_as_user, sc.run_as_group, sc.HasField("run_as_user"),
                      sc.HasField("run_as_group")),
    }
    if not hostnet and cfg.hostname:
        config["Hostname"] = _hostname(cfg.hostname)
    return {**config, "HostConfig": hc}


def _cgroup_parent(value: str) -> str:
    if "\0" in value or ".." in value.split("/") or not value.strip("/"):
        raise InvalidParameter(f"invalid cgroup parent {value!r}")
    return value


def _resources(r: pb.LinuxContainerResources) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.cpu_period:
        out["CpuPeriod"] = r.cpu_period
    if r.cpu_quota:
        out["CpuQuota"] = r.cpu_quota
    if r.cpu_shares:
        out["CpuShares"] = r.cpu_shares
    if r.memory_limit_in_bytes:
        out["Memory"] = r.memory_limit_in_bytes
    if r.memory_swap_limit_in_bytes:
        out["MemorySwap"] = r.memory_swap_limit_in_bytes
    elif r.memory_limit_in_bytes:
        out["MemorySwap"] = r.memory_limit_in_bytes  # as containerd: no swap unless asked
    if r.cpuset_cpus:
        out["CpusetCpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        out["CpusetMems"] = r.cpuset_mems
    return out


def resources_update(r: pb.LinuxContainerResources) -> dict[str, Any]:
    """UpdateContainerResources -> the body of `docker update`."""
    return _resources(r)


def _oom_score_adj(value: int) -> int:
    """As containerd's restrict_oom_score_adj: never below the daemon's own."""
    try:
        with open("/proc/self/oom_score_adj") as f:
            own = int(f.read().strip())
    except (OSError, ValueError):
        own = 0
    return max(value, own)


def is_image_mount(mnt: pb.Mount) -> bool:
    return mnt.HasField("image") and bool(mnt.image.image)


def _mounts(cfg: pb.ContainerConfig, image_sources: dict[int, str]) -> list[dict[str, Any]]:
    out = []
    for i, mnt in enumerate(cfg.mounts):
        target = _path(mnt.container_path, "mount container_path")
        if is_image_mount(mnt):
            source = image_sources[i]  # imagevolumes.py made it
        else:
            source = _path(mnt.host_path, "mount host_path")
            if not os.path.exists(source):
                os.makedirs(source, mode=0o755, exist_ok=True)  # as containerd does
        out.append({"Type": "bind", "Source": source, "Target": target,
                    "ReadOnly": mnt.readonly,
                    "BindOptions": {"Propagation": PROPAGATION.get(mnt.propagation, "rprivate")}})
    return out


def _env(cfg: pb.ContainerConfig) -> list[str]:
    env = []
    for kv in cfg.envs:
        if not kv.key or "=" in kv.key or "\0" in kv.key or b"\0" in kv.value:
            raise InvalidParameter(f"invalid environment variable {kv.key!r}")
        env.append(f"{kv.key}={kv.value.decode(errors='replace')}")
    return env


def container_body(cfg: pb.ContainerConfig, pod: pb.PodSandboxConfig, sandbox_id: str,
                   image_id: str, m: meta.Meta, pod_hostnet: bool, pod_pid: int, pod_ipc: int,
                   pod_cgroup: str, image_sources: dict[int, str]) -> dict[str, Any]:
    """Blocking: reads a localhost seccomp profile, makes missing host paths."""
    lc = cfg.linux
    sc = lc.security_context
    ns = sc.namespace_options if sc.HasField("namespace_options") else None
    pid = ns.pid if ns is not None else pod_pid
    own = f"container:{sandbox_id}"
    hc: dict[str, Any] = {
        "NetworkMode": "host" if pod_hostnet else own,
        "IpcMode": "host" if pod_ipc == pb.NODE else own,
        "PidMode": "host" if pid == pb.NODE else own if pid == pb.POD else "",
        "UTSMode": "host" if pod_hostnet else "",
        "Privileged": sc.privileged,
        "ReadonlyRootfs": sc.readonly_rootfs,
        "CapAdd": list(sc.capabilities.add_capabilities),
        "CapDrop": list(sc.capabilities.drop_capabilities),
        "GroupAdd": [str(g) for g in sc.supplemental_groups],
        "Mounts": _mounts(cfg, image_sources),
        "Devices": [{"PathOnHost": _path(d.host_path, "device host_path"),
                     "PathInContainer": _path(d.container_path, "device container_path"),
                     "CgroupPermissions": d.permissions or "rwm"} for d in cfg.devices],
        "LogConfig": {"Type": "json-file"},
        **_resources(lc.resources),
    }
    if pid == pb.TARGET:
        raise InvalidParameter("target PID namespaces are not supported")
    if lc.resources.oom_score_adj:
        hc["OomScoreAdj"] = _oom_score_adj(lc.resources.oom_score_adj)
    security = [] if sc.privileged else _seccomp(sc.seccomp, sc.HasField("seccomp"),
                                                 sc.seccomp_profile_path)
    if sc.no_new_privs:
        security.append("no-new-privileges")
    hc["SecurityOpt"] = security
    if not sc.privileged:
        if sc.masked_paths:
            hc["MaskedPaths"] = [_path(p, "masked path") for p in sc.masked_paths]
        if sc.readonly_paths:
            hc["ReadonlyPaths"] = [_path(p, "readonly path") for p in sc.readonly_paths]
    if pod_cgroup:
        hc["CgroupParent"] = pod_cgroup
    hc.update(_dns(pod))
    config: dict[str, Any] = {
        "Image": image_id,
        "Cmd": list(cfg.args) or None,
        "Env": _env(cfg),
        "WorkingDir": cfg.working_dir,
        "Labels": meta.labels_for(m),
        "Tty": cfg.tty,
        "OpenStdin": cfg.stdin,
        "StdinOnce": cfg.stdin_once,
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "User": _user(sc.run_as_user, sc.run_as_group, sc.HasField("run_as_user"),
                      sc.HasField("run_as_group"), sc.run_as_username),
    }
    if cfg.command:
        config["Entrypoint"] = list(cfg.command)
    if cfg.working_dir:
        _path(cfg.working_dir, "working_dir")
    if not pod_hostnet and pod.hostname:
        config["Hostname"] = _hostname(pod.hostname)
    if cfg.stop_signal:
        config["StopSignal"] = pb.Signal.Name(cfg.stop_signal)[len("SIGNAL_"):]
    return {**config, "HostConfig": hc}
