"""Docker container configuration → OCI config.json: the fields dockerd sets, per scenario.

The host in most tests is this kind of VM: every capability but CAP_SYS_RESOURCE,
nofile hard limit 20000, cgroup v1. The last tests run the generated specs with the
real runc (root only).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockerd_py.engine.runtime.defaults import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    caps_from_mask,
)
from dockerd_py.engine.runtime.spec import (
    DeviceNode,
    HostLimits,
    MountSpec,
    SpecError,
    SpecInput,
    build_spec,
)
from dockerd_py.engine.runtime.users import ResolvedUser, resolve_user
from dockerd_py.errors import InvalidParameter

CID = "0123456789abcdef" * 4
ROOTFS = "/var/lib/dockerd-py/containers/x/rootfs"
HOST = HostLimits(
    bounding_caps=frozenset(ALL_CAPABILITIES) - {"CAP_SYS_RESOURCE"},
    nofile_hard=20000,
    nproc_hard=96364,
    can_lower_oom_score=False,
    cgroup_version="1",
    seccomp_available=True,
    ncpu=4,
    machine="x86_64",
    kernel=(6, 1),
)
BUSYBOX = {"Cmd": ["sh", "-c", "exit 3"]}
DEFAULT_MOUNTS = ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                  "/dev/shm"]


def spec(config: dict[str, Any] | None = None, host: HostLimits = HOST,
         **kwargs: Any) -> dict[str, Any]:
    hc = kwargs.pop("hc", {})
    doc = build_spec(SpecInput(container_id=CID, rootfs=ROOTFS, config=config or BUSYBOX,
                               host_config=hc, host=host,
                               user=kwargs.pop("user", ResolvedUser(0, 0, (0,), "/root")),
                               **kwargs))
    json.dumps(doc)  # always serializable
    return doc


def mount(doc: dict[str, Any], dest: str) -> dict[str, Any]:
    (found,) = [m for m in doc["mounts"] if m["destination"] == dest]
    return found


def syscalls(doc: dict[str, Any]) -> set[str]:
    return {n for rule in doc["linux"]["seccomp"]["syscalls"] for n in rule["names"]}


def test_plain_busybox_exit_3() -> None:
    doc = spec()
    assert doc["ociVersion"] == "1.0.2-dev"
    p = doc["process"]
    assert p["args"] == ["sh", "-c", "exit 3"]
    assert p["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                        f"HOSTNAME={CID[:12]}", "HOME=/root"]
    assert p["cwd"] == "/" and p["terminal"] is False
    assert p["user"] == {"uid": 0, "gid": 0, "additionalGids": [0]}
    assert p["capabilities"] == {k: list(DEFAULT_CAPABILITIES)
                                 for k in ("bounding", "effective", "permitted")}
    assert not {"rlimits", "oomScoreAdj", "noNewPrivileges", "consoleSize"} & p.keys()
    assert doc["root"] == {"path": ROOTFS, "readonly": False}
    assert doc["hostname"] == CID[:12]
    assert [m["destination"] for m in doc["mounts"]] == DEFAULT_MOUNTS
    assert mount(doc, "/dev/shm")["options"] == [
        "nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]
    assert "ro" in mount(doc, "/sys")["options"]
    assert "ro" in mount(doc, "/sys/fs/cgroup")["options"]

    linux = doc["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["mount", "network", "uts", "pid", "ipc"]
    assert all("path" not in ns for ns in linux["namespaces"])
    assert linux["cgroupsPath"] == f"/dockerd-py/{CID}"
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["devices"] == []
    rules = linux["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert rules[-1] == {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"}
    assert linux["resources"].keys() == {"devices"}
    assert linux["sysctl"] == {"net.ipv4.ping_group_range": "0 2147483647",
                               "net.ipv4.ip_unprivileged_port_start": "0"}

    sc = linux["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = syscalls(doc)
    assert {"read", "execve", "arch_prctl", "chroot", "ptrace", "socket"} <= allowed
    assert not {"mount", "reboot", "bpf", "unshare", "kexec_load"} & allowed
    clone = [r for r in sc["syscalls"] if r["names"] == ["clone"]]
    assert clone == [{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0x7E020000, "op": "SCMP_CMP_MASKED_EQ"}]}]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in sc["syscalls"]
    assert "annotations" not in doc


def test_entrypoint_and_cmd_and_no_command() -> None:
    doc = spec({"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"], "WorkingDir": "/tmp"})
    assert doc["process"]["args"] == ["/bin/sh", "-c", "echo hi"]
    assert doc["process"]["cwd"] == "/tmp"
    with pytest.raises(SpecError, match="^no command specified$"):
        spec({"Cmd": [], "Entrypoint": None})
    with pytest.raises(SpecError, match="needs to be an absolute path"):
        spec({"Cmd": ["true"], "WorkingDir": "tmp"})


def test_tty_and_env() -> None:
    doc = spec({"Cmd": ["sh"], "Tty": True, "Hostname": "box",
                "Env": ["PATH=/bin", "HOSTNAME", "A=1=2", "HOME=/h"]},
               hc={"ConsoleSize": [40, 120]})
    p = doc["process"]
    assert p["terminal"] is True
    assert p["env"] == ["PATH=/bin", "TERM=xterm", "A=1=2", "HOME=/h"]
    assert p["consoleSize"] == {"height": 40, "width": 120}
    assert doc["hostname"] == "box"


def test_user_and_group_add() -> None:
    passwd = "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
    group = "root:x:0:\ndaemon:x:1:\nuser:x:1000:\n"
    user = resolve_user("1000:1000", passwd, group, ["daemon"])
    doc = spec(user=user, hc={"GroupAdd": ["daemon"]})
    assert doc["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 1]}
    assert "HOME=/home/user" in doc["process"]["env"]


def test_cap_add_and_drop() -> None:
    doc = spec(hc={"CapAdd": ["net_admin", "CAP_SYS_PTRACE", "Kill"],
                   "CapDrop": ["chown", "CAP_MKNOD"]})
    caps = doc["process"]["capabilities"]["bounding"]
    expected = [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_MKNOD")]
    assert caps == expected + ["CAP_NET_ADMIN", "CAP_SYS_PTRACE"]
    assert {"kcmp", "process_vm_readv"} <= syscalls(doc)  # unlocked by CAP_SYS_PTRACE


def test_cap_all() -> None:
    doc = spec(hc={"CapAdd": ["ALL"], "CapDrop": ["NET_RAW"]})
    caps = doc["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" not in caps and "CAP_SYS_RESOURCE" not in caps
    assert caps == [c for c in ALL_CAPABILITIES if c not in ("CAP_NET_RAW", "CAP_SYS_RESOURCE")]
    # CAP_SYS_ADMIN: mount and namespaces allowed, no clone filter.
    assert {"mount", "unshare", "setns"} <= syscalls(doc)
    assert not any(r["names"] == ["clone3"] and r["action"] == "SCMP_ACT_ERRNO"
                   for r in doc["linux"]["seccomp"]["syscalls"])

    doc = spec(hc={"CapDrop": ["all"], "CapAdd": ["chown"]})
    assert doc["process"]["capabilities"]["effective"] == ["CAP_CHOWN"]
    assert spec(hc={"CapDrop": ["ALL"]})["process"]["capabilities"]["bounding"] == []


def test_invalid_capabilities() -> None:
    with pytest.raises(SpecError, match='^unknown capability: "CAP_FOO"$') as e:
        spec(hc={"CapAdd": ["foo"]})
    assert isinstance(e.value, InvalidParameter)
    with pytest.raises(SpecError, match='not available in the current environment: '
                                        '"CAP_SYS_RESOURCE"'):
        spec(hc={"CapAdd": ["SYS_RESOURCE"]})
    # Dropping what the host lacks anyway is harmless.
    spec(hc={"CapDrop": ["SYS_RESOURCE"]})


def test_privileged_on_a_host_without_cap_sys_resource() -> None:
    tty = DeviceNode("/dev/tty0", "c", 4, 0, 0o620, 0, 5)
    doc = spec(hc={"Privileged": True}, host_devices=[tty])
    caps = doc["process"]["capabilities"]
    assert caps["bounding"] == [c for c in ALL_CAPABILITIES if c != "CAP_SYS_RESOURCE"]
    assert caps["effective"] == caps["permitted"] == caps["bounding"]
    linux = doc["linux"]
    assert not {"seccomp", "maskedPaths", "readonlyPaths"} & linux.keys()
    assert "ro" not in mount(doc, "/sys")["options"]
    assert "ro" not in mount(doc, "/sys/fs/cgroup")["options"]
    assert linux["devices"] == [{"path": "/dev/tty0", "type": "c", "major": 4, "minor": 0,
                                 "fileMode": 0o620, "uid": 0, "gid": 5}]
    assert linux["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_devices_and_cgroup_rules() -> None:
    fuse = DeviceNode("/dev/fuse", "c", 10, 229, permissions="rw")
    doc = spec(devices=[fuse], hc={"DeviceCgroupRules": ["c 42:* rmw", "b *:* m"]})
    rules = doc["linux"]["resources"]["devices"]
    assert rules[-3:] == [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
        {"allow": True, "type": "c", "major": 42, "access": "rmw"},
        {"allow": True, "type": "b", "access": "m"},
    ]
    assert doc["linux"]["devices"][0]["path"] == "/dev/fuse"
    with pytest.raises(SpecError, match="invalid device cgroup rule format: 'x 1:2 r'"):
        spec(hc={"DeviceCgroupRules": ["x 1:2 r"]})


def test_read_only_rootfs() -> None:
    doc = spec(hc={"ReadonlyRootfs": True, "Tmpfs": {"/run": ""}},
               etc_files={"/etc/hosts": "/c/hosts", "/etc/resolv.conf": "/c/resolv.conf"})
    assert doc["root"]["readonly"] is True
    for dest in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/run"):
        assert "ro" not in mount(doc, dest)["options"], dest
    for dest in ("/sys", "/sys/fs/cgroup"):
        assert mount(doc, dest)["options"].count("ro") == 1
    assert mount(doc, "/etc/hosts") == {"destination": "/etc/hosts", "type": "bind",
                                        "source": "/c/hosts",
                                        "options": ["rbind", "ro", "rprivate"]}


def test_tmpfs() -> None:
    doc = spec(hc={"Tmpfs": {"/run": "rw,noexec,nosuid,size=65536k", "/cache": "exec,mode=1777",
                             "/tmp": ""}})
    assert mount(doc, "/run") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nodev", "rprivate", "rw", "noexec", "nosuid",
                                              "size=65536k"]}
    assert mount(doc, "/cache")["options"] == ["nosuid", "nodev", "rprivate", "exec",
                                               "mode=1777"]
    assert mount(doc, "/tmp")["options"] == ["noexec", "nosuid", "nodev", "rprivate"]
    with pytest.raises(SpecError, match='invalid tmpfs option "bogus"'):
        spec(hc={"Tmpfs": {"/run": "bogus=1"}})
    with pytest.raises(SpecError, match="mount path must be absolute"):
        spec(hc={"Tmpfs": {"run": ""}})


def test_memory_cpus_pids() -> None:
    doc = spec(hc={"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512,
                   "CpusetCpus": "0-1", "PidsLimit": 50, "BlkioWeight": 300})
    res = doc["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["cpu"] == {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0-1"}
    assert res["pids"] == {"limit": 50}
    assert res["blockIO"] == {"weight": 300}
    res = spec(hc={"Memory": 64 << 20, "MemorySwap": -1, "CpuQuota": 50000,
                   "CpuPeriod": 200000, "PidsLimit": 0})["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20}
    assert res["cpu"] == {"quota": 50000, "period": 200000}
    assert "pids" not in res


@pytest.mark.parametrize(("hc", "message"), [
    ({"Memory": 1 << 20}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, "Minimum memoryswap limit should be larger"),
    ({"MemorySwap": 64 << 20}, "You should always set the Memory limit"),
    ({"MemorySwappiness": 101}, "valid memory swappiness range is 0-100"),
    ({"NanoCpus": 10**9, "CpuPeriod": 100000}, "Nano CPUs and CPU Period cannot both be set"),
    ({"NanoCpus": 8 * 10**9}, "range of CPUs is from 0.01 to 4.00"),
    ({"CpuPeriod": 10}, "CPU cfs period can not be less than 1ms"),
    ({"IpcMode": "weird"}, "invalid IPC mode: weird"),
    ({"PidMode": "container:"}, "invalid PID mode: container:"),
    ({"CgroupnsMode": "x"}, "invalid cgroup namespace mode: x"),
    ({"SecurityOpt": ["bogus"]}, 'invalid --security-opt 1: "bogus"'),
    ({"SecurityOpt": ["no-new-privileges=maybe"]}, "invalid --security-opt 2"),
])
def test_invalid_host_config(hc: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        spec(hc=hc)


def test_ulimits() -> None:
    doc = spec(hc={"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 20000},
                               {"Name": "core", "Soft": 0, "Hard": -1}]})
    assert doc["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 1024},
        {"type": "RLIMIT_CORE", "hard": 2**64 - 1, "soft": 0},
    ]
    with pytest.raises(SpecError, match=r"nofile=65536:65536 is above this host's hard limit "
                                        r"of 20000.*at most 20000"):
        spec(hc={"Ulimits": [{"Name": "nofile", "Soft": 65536, "Hard": 65536}]})
    with pytest.raises(SpecError, match="above this host's hard limit of 96364"):
        spec(hc={"Ulimits": [{"Name": "nproc", "Soft": -1, "Hard": -1}]})
    with pytest.raises(SpecError, match="soft limit must be less than or equal to hard limit"):
        spec(hc={"Ulimits": [{"Name": "nofile", "Soft": 200, "Hard": 100}]})
    with pytest.raises(SpecError, match="invalid ulimit type: files"):
        spec(hc={"Ulimits": [{"Name": "files", "Soft": 1, "Hard": 1}]})


def test_oom_score_adj() -> None:
    assert spec(hc={"OomScoreAdj": 500})["process"]["oomScoreAdj"] == 500
    with pytest.raises(SpecError, match="--oom-score-adj=-500 .*CAP_SYS_RESOURCE"):
        spec(hc={"OomScoreAdj": -500})
    capable = HostLimits(**{**HOST.__dict__, "can_lower_oom_score": True})
    assert spec(host=capable, hc={"OomScoreAdj": -500})["process"]["oomScoreAdj"] == -500
    with pytest.raises(SpecError, match=r"range for oom score adj is \[-1000, 1000\]"):
        spec(host=capable, hc={"OomScoreAdj": -1001})


def test_host_network() -> None:
    doc = spec(hc={"NetworkMode": "host"})
    assert [ns["type"] for ns in doc["linux"]["namespaces"]] == ["mount", "uts", "pid", "ipc"]
    assert "hostname" not in doc  # keeps the host's name
    assert "sysctl" not in doc["linux"]
    doc = spec({"Cmd": ["true"], "Domainname": "example.org"}, netns_path="/run/netns/x")
    assert {"type": "network", "path": "/run/netns/x"} in doc["linux"]["namespaces"]
    assert doc["linux"]["sysctl"]["kernel.domainname"] == "example.org"
    with pytest.raises(SpecError, match="non running container: web"):
        spec(hc={"NetworkMode": "container:web"})


def test_other_namespaces() -> None:
    doc = spec(hc={"PidMode": "host", "IpcMode": "container:db", "UTSMode": "host",
                   "Init": True}, ns_paths={"ipc": "/proc/42/ns/ipc"},
               init_path="/usr/bin/tini-static")
    assert doc["linux"]["namespaces"] == [{"type": "mount"}, {"type": "network"},
                                          {"type": "ipc", "path": "/proc/42/ns/ipc"}]
    assert doc["process"]["args"][0] == "sh"  # no init outside a private pid namespace
    v2 = HostLimits(**{**HOST.__dict__, "cgroup_version": "2"})
    assert {"type": "cgroup"} in spec(host=v2)["linux"]["namespaces"]
    assert {"type": "cgroup"} not in spec(host=v2, hc={"CgroupnsMode": "host"})["linux"][
        "namespaces"]
    assert {"type": "cgroup"} in spec(hc={"CgroupnsMode": "private"})["linux"]["namespaces"]


def test_init() -> None:
    doc = spec(hc={"Init": True}, init_path="/usr/bin/tini-static")
    assert doc["process"]["args"] == ["/sbin/docker-init", "--", "sh", "-c", "exit 3"]
    assert mount(doc, "/sbin/docker-init") == {
        "destination": "/sbin/docker-init", "type": "bind", "source": "/usr/bin/tini-static",
        "options": ["bind", "ro"]}
    with pytest.raises(SpecError, match="no init binary"):
        spec(hc={"Init": True})


def test_user_mounts_order_and_overrides() -> None:
    mounts = [
        MountSpec("/data/sub", "/h/sub", "bind", ("ro",)),
        MountSpec("/data", "/var/lib/dockerd-py/volumes/v/_data", "volume"),
        MountSpec("/etc/resolv.conf", "/h/resolv.conf", "bind", ("rslave",)),
        MountSpec("/scratch", "", "tmpfs", ("size=1m",)),
    ]
    doc = spec(mounts=mounts, shm_path="/c/shm",
               etc_files={"/etc/resolv.conf": "/c/resolv.conf", "/etc/hosts": "/c/hosts"})
    dests = [m["destination"] for m in doc["mounts"]]
    assert dests == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue",
                     "/data", "/scratch", "/dev/shm", "/data/sub", "/etc/resolv.conf",
                     "/etc/hosts"]  # by depth, stable
    assert mount(doc, "/data")["options"] == ["rbind"]
    assert mount(doc, "/data/sub")["options"] == ["rbind", "ro", "rprivate"]
    assert mount(doc, "/etc/resolv.conf")["source"] == "/h/resolv.conf"  # the user's wins
    assert mount(doc, "/dev/shm") == {"destination": "/dev/shm", "type": "bind",
                                      "source": "/c/shm", "options": ["rbind", "rprivate"]}
    assert mount(doc, "/scratch")["options"][-1] == "size=1m"
    assert doc["linux"]["rootfsPropagation"] == "rslave"

    no_ipc = spec(hc={"IpcMode": "none"}, shm_path="/c/shm")
    assert "/dev/shm" not in [m["destination"] for m in no_ipc["mounts"]]
    own_dev = spec(mounts=[MountSpec("/dev", "/h/dev")])
    assert [m["destination"] for m in own_dev["mounts"]] == ["/proc", "/sys", "/sys/fs/cgroup",
                                                             "/dev"]
    assert mount(spec(hc={"ShmSize": 1 << 20}), "/dev/shm")["options"][-1] == "size=1048576"


def test_security_options() -> None:
    doc = spec(hc={"SecurityOpt": ["no-new-privileges:true", "apparmor=unconfined",
                                   "label=disable"]})
    assert doc["process"]["noNewPrivileges"] is True
    assert "seccomp" not in spec(hc={"SecurityOpt": ["seccomp=unconfined"]})["linux"]
    no_seccomp = HostLimits(**{**HOST.__dict__, "seccomp_available": False})
    assert "seccomp" not in spec(host=no_seccomp)["linux"]
    custom = json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                     {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                      "includes": {"caps": ["CAP_SYS_ADMIN"]}}],
    })
    sc = spec(hc={"SecurityOpt": [f"seccomp={custom}"], "Privileged": True})["linux"]["seccomp"]
    assert sc == {"defaultAction": "SCMP_ACT_ALLOW",
                  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                  "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                               {"names": ["mount"], "action": "SCMP_ACT_ALLOW"}]}
    with pytest.raises(SpecError, match="Decoding seccomp profile failed"):
        spec(hc={"SecurityOpt": ["seccomp={"]})
    with pytest.raises(SpecError, match="cannot run a custom seccomp profile"):
        spec(host=no_seccomp, hc={"SecurityOpt": [f"seccomp={custom}"]})


def test_sysctls_annotations_cgroup_parent() -> None:
    doc = spec(hc={"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "1024"},
                   "Annotations": {"com.example/a": "b"}, "CgroupParent": "/custom/"})
    assert doc["linux"]["sysctl"]["net.ipv4.ip_unprivileged_port_start"] == "1024"
    assert doc["annotations"] == {"com.example/a": "b"}
    assert doc["linux"]["cgroupsPath"] == f"/custom/{CID}"
    assert spec(cgroup_parent="other")["linux"]["cgroupsPath"] == f"/other/{CID}"


def test_explicit_masked_and_readonly_paths() -> None:
    doc = spec(hc={"MaskedPaths": ["/proc/kcore"], "ReadonlyPaths": []})
    assert doc["linux"]["maskedPaths"] == ["/proc/kcore"]
    assert "readonlyPaths" not in doc["linux"]


# --- the real thing: runc runs what we generate ------------------------------------------

REPO = Path(__file__).resolve().parents[2]
TEST_CGROUP = "dockerd-py-unit-spec"
# runc and busybox-static come with `make deps`: only root is a fact of the host.
needs_runc = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def real_host() -> HostLimits:
    status = Path("/proc/self/status").read_text()
    bounding = next(line.split()[1] for line in status.splitlines()
                    if line.startswith("CapBnd:"))
    caps = caps_from_mask(int(bounding, 16))
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return HostLimits(
        bounding_caps=caps,
        nofile_hard=resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        nproc_hard=resource.getrlimit(resource.RLIMIT_NPROC)[1],
        can_lower_oom_score="CAP_SYS_RESOURCE" in caps,
        cgroup_version="2" if v2 else "1",
        seccomp_available=True,
    )


@pytest.fixture(scope="module")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("busybox")
    tar = work / "rootfs.tar"
    subprocess.run(["bash", str(REPO / "contrib/make-busybox-rootfs.sh"), str(tar)],
                   check=True, capture_output=True)
    rootfs = work / "rootfs"
    rootfs.mkdir()
    with tarfile.open(tar) as t:
        t.extractall(rootfs, filter="fully_trusted")
    return rootfs


@pytest.fixture
def runc_run(busybox_rootfs: Path, tmp_path: Path) -> Iterator[Any]:
    state = tmp_path / "runc-state"  # private state dir: no clash with the daemon's containers
    started: list[str] = []

    def run(hc: dict[str, Any], user: str = "", script: str = "") -> tuple[int, str]:
        cid = "spec-test-" + uuid.uuid4().hex[:12]
        started.append(cid)
        resolved = resolve_user(user, (busybox_rootfs / "etc/passwd").read_text(),
                                (busybox_rootfs / "etc/group").read_text(),
                                hc.get("GroupAdd") or ())
        script = script or "id; grep -E '^(CapEff|Seccomp):' /proc/self/status; exit 3"
        doc = build_spec(SpecInput(
            container_id=cid, rootfs=str(busybox_rootfs), config={"Cmd": ["sh", "-c", script]},
            host_config=hc, user=resolved, host=real_host(), cgroup_parent=TEST_CGROUP))
        bundle = tmp_path / cid
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(doc))
        out = subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), cid],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=60)
        return out.returncode, out.stdout + out.stderr

    yield run
    for cid in started:
        subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True)
    # runc removes each container's cgroup; the test parent is ours to remove.
    for parent in [*Path("/sys/fs/cgroup").glob(f"*/{TEST_CGROUP}"),
                   Path("/sys/fs/cgroup", TEST_CGROUP)]:
        try:
            parent.rmdir()
        except OSError:
            pass


@needs_runc
def test_runc_runs_the_default_spec(runc_run: Any) -> None:
    code, out = runc_run({})
    assert code == 3, out
    assert "uid=0(root) gid=0(root) groups=0(root)" in out
    assert "CapEff:\t00000000a80425fb" in out  # exactly the 14 defaults
    assert "Seccomp:\t2" in out


@needs_runc
def test_runc_runs_a_user_with_limits(runc_run: Any) -> None:
    code, out = runc_run(
        {"GroupAdd": ["daemon"], "ReadonlyRootfs": True, "Memory": 64 << 20, "PidsLimit": 50,
         "NanoCpus": 500_000_000, "Tmpfs": {"/run": "rw,noexec,nosuid,size=65536k"},
         "Ulimits": [{"Name": "nofile", "Soft": 1000, "Hard": 2000}],
         "SecurityOpt": ["no-new-privileges"]},
        user="1000:1000",
        script="id; grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; ulimit -n; "
               "touch /run/ok && echo tmpfs-ok; touch /x 2>/dev/null || echo ro-ok; "
               "echo HOME=$HOME; exit 3")
    assert code == 3, out
    assert "uid=1000(user) gid=1000(user) groups=1(daemon),1000(user)" in out
    assert "CapEff:\t0000000000000000" in out  # exec as non-root clears the effective set
    assert "NoNewPrivs:\t1" in out
    assert "\n1000\n" in out and "tmpfs-ok" in out and "ro-ok" in out
    assert "HOME=/home/user" in out


@needs_runc
def test_runc_runs_privileged_within_the_hosts_bounding_set(runc_run: Any) -> None:
    code, out = runc_run({"Privileged": True})
    assert code == 3, out
    expected = sum(1 << ALL_CAPABILITIES.index(c) for c in real_host().bounding_caps)
    assert f"CapEff:\t{expected:016x}" in out
    assert "Seccomp:\t0" in out
