"""Engine records -> the CRI's messages (PodSandbox, ContainerStatus, ...)."""

from __future__ import annotations

from typing import Any, cast

from ..engine.containers.records import ZERO_TIME, Container
from ..engine.timestamps import rfc3339_nanos
from ..protos.cri import api_pb2 as pb
from .meta import Meta


def nanos(value: str) -> int:
    if not value or value == ZERO_TIME:
        return 0
    try:
        return max(rfc3339_nanos(value), 0)
    except ValueError:
        return 0


def sandbox_ready(c: Container) -> bool:
    return c.state.status in ("running", "paused") and c.state.pid > 0


def pod_metadata(m: Meta) -> pb.PodSandboxMetadata:
    return pb.PodSandboxMetadata(name=m.name, uid=m.uid, namespace=m.namespace,
                                 attempt=m.attempt)


def sandbox_state(c: Container) -> pb.PodSandboxState:
    return pb.SANDBOX_READY if sandbox_ready(c) else pb.SANDBOX_NOTREADY


def sandbox(c: Container, m: Meta) -> pb.PodSandbox:
    return pb.PodSandbox(id=c.id, metadata=pod_metadata(m), state=sandbox_state(c),
                         created_at=nanos(c.created), labels=m.labels,
                         annotations=m.annotations, runtime_handler=m.runtime_handler)


def sandbox_status(c: Container, m: Meta, ips: list[str]) -> pb.PodSandboxStatus:
    ns = m.extra.get("namespaces") or {}
    network = pb.PodSandboxNetworkStatus(
        ip=ips[0] if ips else "", additional_ips=[pb.PodIP(ip=ip) for ip in ips[1:]])
    return pb.PodSandboxStatus(
        id=c.id, metadata=pod_metadata(m), state=sandbox_state(c), created_at=nanos(c.created),
        network=network,
        linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(options=pb.NamespaceOption(
            network=ns.get("network", 0), pid=ns.get("pid", 0), ipc=ns.get("ipc", 0)))),
        labels=m.labels, annotations=m.annotations, runtime_handler=m.runtime_handler)


def container_state(c: Container) -> pb.ContainerState:
    status = c.state.status
    if status == "created":
        return pb.CONTAINER_CREATED
    if status in ("running", "paused", "restarting"):
        return pb.CONTAINER_RUNNING
    if status in ("exited", "dead", "removing"):
        return pb.CONTAINER_EXITED
    return pb.CONTAINER_UNKNOWN


def container_metadata(m: Meta) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(name=m.name, attempt=m.attempt)


def image_ref(c: Container, digests: tuple[str, ...]) -> str:
    return digests[0] if digests else c.image_id


def container(c: Container, m: Meta, digests: tuple[str, ...] = ()) -> pb.Container:
    return pb.Container(
        id=c.id, pod_sandbox_id=m.sandbox_id, metadata=container_metadata(m),
        image=pb.ImageSpec(image=m.image, user_specified_image=m.image),
        image_ref=image_ref(c, digests), image_id=c.image_id, state=container_state(c),
        created_at=nanos(c.created), labels=m.labels, annotations=m.annotations)


def _mounts(m: Meta) -> list[pb.Mount]:
    out = []
    for x in m.extra.get("mounts") or ():
        mnt = pb.Mount(container_path=x["container_path"], host_path=x["host_path"],
                       readonly=x["readonly"], propagation=x["propagation"],
                       image_sub_path=x.get("image_sub_path", ""))
        if x.get("image"):
            mnt.image.CopyFrom(pb.ImageSpec(image=x["image"], image_ref=x["image_ref"],
                                            user_specified_image=x["image"]))
        out.append(mnt)
    return out


def resources_of(hc: dict[str, Any]) -> pb.LinuxContainerResources:
    return pb.LinuxContainerResources(
        cpu_period=int(hc.get("CpuPeriod") or 0), cpu_quota=int(hc.get("CpuQuota") or 0),
        cpu_shares=int(hc.get("CpuShares") or 0),
        memory_limit_in_bytes=int(hc.get("Memory") or 0),
        memory_swap_limit_in_bytes=int(hc.get("MemorySwap") or 0),
        oom_score_adj=int(hc.get("OomScoreAdj") or 0),
        cpuset_cpus=str(hc.get("CpusetCpus") or ""), cpuset_mems=str(hc.get("CpusetMems") or ""))


def container_status(c: Container, m: Meta, digests: tuple[str, ...] = ()
                     ) -> pb.ContainerStatus:
    state = container_state(c)
    reason = ""
    if state == pb.CONTAINER_EXITED:
        reason = "OOMKilled" if c.state.oom_killed else (
            "Completed" if c.state.exit_code == 0 else "Error")
    return pb.ContainerStatus(
        id=c.id, metadata=container_metadata(m), state=state, created_at=nanos(c.created),
        started_at=nanos(c.state.started_at) if state != pb.CONTAINER_CREATED else 0,
        finished_at=nanos(c.state.finished_at) if state == pb.CONTAINER_EXITED else 0,
        exit_code=c.state.exit_code if state == pb.CONTAINER_EXITED else 0,
        image=pb.ImageSpec(image=m.image, user_specified_image=m.image),
        image_ref=image_ref(c, digests), image_id=c.image_id, reason=reason,
        message=c.state.error, labels=m.labels, annotations=m.annotations,
        mounts=_mounts(m), log_path=m.log_path,
        resources=pb.ContainerResources(linux=resources_of(c.host_config)),
        user=_user(c) if state == pb.CONTAINER_RUNNING else None,
        stop_signal=_signal(c))


def _user(c: Container) -> pb.ContainerUser | None:
    """The identity the container's process runs with (its /proc status)."""
    try:
        with open(f"/proc/{c.state.pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        uid = int(fields["Uid"].split()[0])
        gid = int(fields["Gid"].split()[0])
        groups = [int(g) for g in fields.get("Groups", "").split()]
    except (OSError, KeyError, ValueError, IndexError):
        return None
    return pb.ContainerUser(linux=pb.LinuxContainerUser(uid=uid, gid=gid,
                                                        supplemental_groups=groups))


def _signal(c: Container) -> pb.Signal:
    name = str(c.config.get("StopSignal") or "")
    try:
        return cast(pb.Signal, pb.Signal.Value("SIGNAL_" + name)) \
            if name.startswith("SIG") else pb.SIGNAL_RUNTIME_DEFAULT
    except ValueError:
        return pb.SIGNAL_RUNTIME_DEFAULT
