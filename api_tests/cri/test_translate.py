"""CRI configurations as engine create bodies (no daemon): namespaces joined, security
options, users, mounts; hostile values refused before they reach the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockerd_py.cri import meta, translate
from dockerd_py.errors import InvalidParameter
from dockerd_py.protos.cri import api_pb2 as pb

SID = "a" * 64
POD = meta.Meta(kind=meta.SANDBOX, name="p", namespace="ns", uid="u")


def body(cfg: pb.ContainerConfig, pod_pid: int = pb.POD, hostnet: bool = False,
         pod: pb.PodSandboxConfig | None = None, sources: dict[int, str] | None = None
         ) -> dict[str, object]:
    m = meta.Meta(kind=meta.CONTAINER, name="c", sandbox_id=SID)
    return translate.container_body(cfg, pod or pb.PodSandboxConfig(hostname="h"), SID,
                                    "sha256:" + "b" * 64, m, pod_hostnet=hostnet,
                                    pod_pid=pod_pid, pod_ipc=pb.POD, pod_cgroup="/kubepods/p1",
                                    image_sources=sources or {})


def test_container_joins_the_pod() -> None:
    b = body(pb.ContainerConfig(command=["sh"], args=["-c", "true"]))
    hc = b["HostConfig"]
    assert isinstance(hc, dict)
    assert hc["NetworkMode"] == hc["IpcMode"] == hc["PidMode"] == f"container:{SID}"
    assert hc["CgroupParent"] == "/kubepods/p1" and hc["SecurityOpt"] == ["seccomp=unconfined"]
    assert b["Entrypoint"] == ["sh"] and b["Cmd"] == ["-c", "true"] and b["Hostname"] == "h"
    own = body(pb.ContainerConfig(), pod_pid=pb.CONTAINER)["HostConfig"]
    assert isinstance(own, dict) and own["PidMode"] == ""
    host = body(pb.ContainerConfig(), hostnet=True)
    assert host["HostConfig"]["NetworkMode"] == "host" and "Hostname" not in host  # type: ignore[index]


def test_security_context() -> None:
    sc = pb.LinuxContainerSecurityContext(
        run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=50),
        no_new_privs=True, readonly_rootfs=True, supplemental_groups=[7],
        capabilities=pb.Capability(add_capabilities=["NET_ADMIN"], drop_capabilities=["ALL"]),
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        masked_paths=["/proc/kcore"], readonly_paths=["/proc/sys"])
    b = body(pb.ContainerConfig(linux=pb.LinuxContainerConfig(security_context=sc)))
    hc = b["HostConfig"]
    assert isinstance(hc, dict)
    assert b["User"] == "1000:50" and hc["GroupAdd"] == ["7"] and hc["ReadonlyRootfs"]
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["CapAdd"] == ["NET_ADMIN"] and hc["CapDrop"] == ["ALL"]
    assert hc["MaskedPaths"] == ["/proc/kcore"] and hc["ReadonlyPaths"] == ["/proc/sys"]
    with pytest.raises(InvalidParameter, match="run_as_group requires"):
        body(pb.ContainerConfig(linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                run_as_group=pb.Int64Value(value=1)))))


def test_resources() -> None:
    r = pb.LinuxContainerResources(cpu_quota=20000, cpu_period=100000, cpu_shares=512,
                                   memory_limit_in_bytes=64 << 20, cpuset_cpus="0")
    hc = body(pb.ContainerConfig(linux=pb.LinuxContainerConfig(resources=r)))["HostConfig"]
    assert isinstance(hc, dict)
    assert (hc["CpuQuota"], hc["CpuPeriod"], hc["CpuShares"]) == (20000, 100000, 512)
    assert hc["Memory"] == hc["MemorySwap"] == 64 << 20 and hc["CpusetCpus"] == "0"


@pytest.mark.parametrize("cfg", [
    pb.ContainerConfig(mounts=[pb.Mount(container_path="/x", host_path="relative")]),
    pb.ContainerConfig(mounts=[pb.Mount(container_path="/x/../../etc", host_path="/tmp")]),
    pb.ContainerConfig(devices=[pb.Device(container_path="/dev/x", host_path="dev/null")]),
    pb.ContainerConfig(envs=[pb.KeyValue(key="A=B", value=b"x")]),
    pb.ContainerConfig(envs=[pb.KeyValue(key="A", value=b"x\0y")]),
    pb.ContainerConfig(working_dir="relative"),
    pb.ContainerConfig(linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        run_as_username="a:b"))),
])
def test_hostile_container_values(cfg: pb.ContainerConfig) -> None:
    with pytest.raises(InvalidParameter):
        body(cfg)


def test_bind_mounts(tmp_path: Path) -> None:
    source = tmp_path / "made"
    b = body(pb.ContainerConfig(mounts=[pb.Mount(
        container_path="/data", host_path=str(source), readonly=True,
        propagation=pb.PROPAGATION_HOST_TO_CONTAINER)]))
    assert source.is_dir()  # a missing host path is made, as containerd does
    assert b["HostConfig"]["Mounts"] == [{  # type: ignore[index]
        "Type": "bind", "Source": str(source), "Target": "/data", "ReadOnly": True,
        "BindOptions": {"Propagation": "rslave"}}]


def test_sandbox_body() -> None:
    cfg = pb.PodSandboxConfig(
        hostname="pod-1", dns_config=pb.DNSConfig(servers=["10.0.0.10"], options=["ndots:5"]),
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent="/kubepods/pod1", sysctls={"net.ipv4.ip_forward": "1"},
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(pid=pb.NODE),
                seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))))
    b = translate.sandbox_body(cfg, "sha256:" + "c" * 64, POD)
    hc = b["HostConfig"]
    assert hc["NetworkMode"] == "none" and hc["IpcMode"] == "shareable"
    assert hc["PidMode"] == "host" and hc["CgroupParent"] == "/kubepods/pod1"
    assert hc["Dns"] == ["10.0.0.10"] and hc["DnsOptions"] == ["ndots:5"]
    assert hc["SecurityOpt"] == [] and b["Hostname"] == "pod-1"
    assert b["Labels"][meta.KIND] == meta.SANDBOX


@pytest.mark.parametrize("linux", [
    pb.LinuxPodSandboxConfig(cgroup_parent="/kubepods/../../x"),
    pb.LinuxPodSandboxConfig(sysctls={"net/../../../etc/x": "1"}),
    pb.LinuxPodSandboxConfig(sysctls={"kernel.x": "1\n2"}),
])
def test_hostile_sandbox_values(linux: pb.LinuxPodSandboxConfig) -> None:
    with pytest.raises(InvalidParameter):
        translate.sandbox_body(pb.PodSandboxConfig(linux=linux), "img", POD)
    with pytest.raises(InvalidParameter):
        translate.sandbox_body(pb.PodSandboxConfig(hostname="a b"), "img", POD)


@pytest.mark.parametrize("name", ["a_b", "-x", "a/b", ""])
def test_names_keep_to_their_grammar(name: str) -> None:
    with pytest.raises(InvalidParameter):
        meta.sandbox_name(name, "ns", "uid", 0)
