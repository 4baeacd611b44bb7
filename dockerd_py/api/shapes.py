"""The shape of a container's Config and HostConfig as dockerd's inspect sends them (pure).

dockerd marshals Go structs: every field without `omitempty` is always there, with
its zero value when unset. Clients index into it (docker-py: `attrs["Config"]["Tty"]`),
so the stored request is laid over these defaults, in the struct's field order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.host import host
from ..engine.runtime.defaults import MASKED_PATHS, READONLY_PATHS
from ..engine.runtime.spec import DEFAULT_SHM_SIZE

# container.Config: the fields without omitempty.
_CONFIG: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}

# container.HostConfig with its Resources, in Go's field order.
_HOST_CONFIG: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
    "NetworkMode": "", "PortBindings": None, "RestartPolicy": {"Name": "no",
                                                               "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": None, "DnsOptions": None,
    "DnsSearch": None, "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private",
    "Cgroup": "", "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": DEFAULT_SHM_SIZE, "Isolation": "", "CpuShares": 0,
    "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": None, "BlkioDeviceReadBps": None, "BlkioDeviceWriteBps": None,
    "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None, "CpuPeriod": 0,
    "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "",
    "CpusetMems": "", "Devices": None, "DeviceCgroupRules": None, "DeviceRequests": None,
    "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None,
    "OomKillDisable": False, "PidsLimit": None, "Ulimits": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
    "ReadonlyPaths": None,
}


# Fields with omitempty: not shown when unset.
_CONFIG_OMITTED_EMPTY = ("ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled",
                         "MacAddress", "StopSignal", "StopTimeout", "Shell")


def config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A container's Config as inspect shows it."""
    out = {**_CONFIG, **stored}
    for key in _CONFIG_OMITTED_EMPTY:
        if not out.get(key) and out.get(key) != 0:
            out.pop(key, None)
    if out["Env"] == []:
        out["Env"] = None  # a nil slice in dockerd when neither image nor client set one
    return out


def host_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A container's HostConfig as inspect shows it: dockerd fills the cgroup namespace
    mode and, for an unprivileged container, the masked and read-only paths at create."""
    out = {**_HOST_CONFIG, **stored}
    if not out["CgroupnsMode"]:
        out["CgroupnsMode"] = "private" if host().cgroup_version == "2" else "host"
    if not out["Privileged"]:
        if out["MaskedPaths"] is None:
            out["MaskedPaths"] = list(MASKED_PATHS)
        if out["ReadonlyPaths"] is None:
            out["ReadonlyPaths"] = list(READONLY_PATHS)
    return out
