"""`docker update`: new resource limits and restart policy for a container.

As dockerd (daemon/update.go, container.UpdateContainer): the request is checked
like a create's resources (minus the "Memory with MemorySwap" rule, an update may
change swap alone), then merged into the HostConfig field by field (a zero value
leaves the field as it was), refusing the combinations dockerd refuses. A running
(or paused) container gets the limits of the request at once through the
runtime's `update` (OCI linux.resources JSON); the HostConfig is what its next
start uses. Errors read "Cannot update container <id>: ...".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...errors import Conflict, DaemonError, InternalError, InvalidParameter, NotFound
from ..runtime import defaults
from ..runtime.contract import Supervisor
from ..runtime.hostlimits import host_limits
from .config import check_restart_policy
from .store import ContainerStore

# Resource fields a HostConfig carries and `update` may change (moby's Resources).
_NUMBERS = ("CpuShares", "Memory", "NanoCpus", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
            "CpuRealtimeRuntime", "MemoryReservation", "MemorySwap", "BlkioWeight",
            "KernelMemory")
_STRINGS = ("CpusetCpus", "CpusetMems")


def _int(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"json: cannot unmarshal {type(value).__name__} into Go struct "
                               f"field UpdateConfig.{key} of type int64")
    return value


def merge(hc: Mapping[str, Any], req: Mapping[str, Any]) -> dict[str, Any]:
    """container.UpdateContainer: the new HostConfig, or Conflict."""
    new = dict(hc)
    memory, swap = int(hc.get("Memory") or 0), int(hc.get("MemorySwap") or 0)
    if memory > 0 and swap == 0:
        # What dockerd stores at create for a memory limit without a swap limit.
        swap = new["MemorySwap"] = 2 * memory
    if req["MemorySwap"] > 0:
        # A swap limit under the memory limit (or with none) is refused by the kernel when
        # runc writes it (a 500): refuse it as dockerd refuses it at create.
        limit = req["Memory"] or memory
        if limit == 0:
            raise InvalidParameter("You should always set the Memory limit when using "
                                   "Memoryswap limit, see usage")
        if req["MemorySwap"] < limit:
            raise InvalidParameter("Minimum memoryswap limit should be larger than memory "
                                   "limit, see usage")
    if req["NanoCpus"] > 0 and int(hc.get("CpuPeriod") or 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if req["NanoCpus"] > 0 and int(hc.get("CpuQuota") or 0) > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if req["CpuPeriod"] > 0 and int(hc.get("NanoCpus") or 0) > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if req["CpuQuota"] > 0 and int(hc.get("NanoCpus") or 0) > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    for key in ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus",
                "CpusetMems"):
        if req[key]:
            new[key] = req[key]
    if req["Memory"]:
        if req["Memory"] > swap and not req["MemorySwap"]:
            raise Conflict("Memory limit should be smaller than already set memoryswap limit, "
                           "update the memoryswap at the same time")
        new["Memory"] = req["Memory"]
    for key in ("MemorySwap", "MemoryReservation", "KernelMemory", "CpuRealtimePeriod",
                "CpuRealtimeRuntime"):
        if req[key]:
            new[key] = req[key]
    if req["PidsLimit"] is not None:
        new["PidsLimit"] = req["PidsLimit"]
    policy = req["RestartPolicy"]
    if policy.get("Name"):
        if hc.get("AutoRemove") and policy["Name"] != "no":
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for "
                           "the container")
        new["RestartPolicy"] = {"Name": policy["Name"],
                                "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
    return new


def linux_resources(req: Mapping[str, Any]) -> dict[str, Any]:
    """moby's toContainerdResources: the request (not the merged config) as OCI
    linux.resources; a field left out is not changed by the runtime."""
    res: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    for key, name in (("Memory", "limit"), ("MemoryReservation", "reservation"),
                      ("MemorySwap", "swap")):
        if req[key]:
            memory[name] = req[key]
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if req["CpuShares"]:
        cpu["shares"] = req["CpuShares"]
    period = quota = 0
    if req["NanoCpus"]:
        period = defaults.CFS_PERIOD_US
        quota = req["NanoCpus"] * period // 10**9
    quota = quota or req["CpuQuota"]
    period = period or req["CpuPeriod"]
    if quota:
        cpu["quota"] = quota
    if period:
        cpu["period"] = period
    for key, name in (("CpuRealtimePeriod", "realtimePeriod"),
                      ("CpuRealtimeRuntime", "realtimeRuntime")):
        if req[key]:
            cpu[name] = req[key]
    for key, name in (("CpusetCpus", "cpus"), ("CpusetMems", "mems")):
        if req[key]:
            cpu[name] = req[key]
    if cpu:
        res["cpu"] = cpu
    if req["BlkioWeight"]:
        res["blockIO"] = {"weight": req["BlkioWeight"]}
    if req["PidsLimit"] is not None:
        # 0 is "unlimited" in the API; the runtime spells it -1 ("max").
        res["pids"] = {"limit": req["PidsLimit"] if req["PidsLimit"] > 0 else -1}
    return res


def parse_request(body: Any, api_version: tuple[int, int] = (1, 50)) -> dict[str, Any]:
    """The UpdateConfig body, normalised (every field present, zero = unchanged)."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidParameter("invalid JSON: the update config must be an object")
    req: dict[str, Any] = {key: _int(body, key) for key in _NUMBERS}
    for key in _STRINGS:
        value = body.get(key) or ""
        if not isinstance(value, str):
            raise InvalidParameter(f"json: cannot unmarshal {type(value).__name__} into Go "
                                   f"struct field UpdateConfig.{key} of type string")
        req[key] = value
    if api_version >= (1, 42):
        req["KernelMemory"] = 0  # removed in API 1.42, ignored as dockerd does
    pids = body.get("PidsLimit")
    if pids is not None and api_version >= (1, 40):
        pids = _int(body, "PidsLimit")
        req["PidsLimit"] = pids if pids > 0 else 0  # 0 and negatives mean unlimited
    else:
        req["PidsLimit"] = None
    policy = body.get("RestartPolicy") or {}
    if not isinstance(policy, dict):
        raise InvalidParameter("invalid JSON: RestartPolicy must be an object")
    req["RestartPolicy"] = policy
    return req


def validate(req: Mapping[str, Any]) -> None:
    """verifyContainerSettings(update=true) for the fields an update carries."""
    checked = dict(req)
    if not req["Memory"] and (req["MemorySwap"] or 0) >= -1:
        checked["MemorySwap"] = 0  # an update may set swap without memory
    host = host_limits()
    defaults.check_resources(checked, host.ncpu, host.cpus, host.mems)
    if req["RestartPolicy"].get("Name"):
        check_restart_policy({"RestartPolicy": req["RestartPolicy"]})


async def update(store: ContainerStore, monitor: Supervisor, ref: str, body: Any,
                 api_version: tuple[int, int] = (1, 50)) -> list[str] | None:
    """POST /containers/{id}/update; returns the warnings (None: dockerd's null)."""
    req = parse_request(body, api_version)
    c = store.get(ref)
    host = host_limits()
    warnings = defaults.discard_unsupported(req, host.blkio_weight, host.blkio_weight_device)
    validate(req)
    async with store.lock(c.id):
        c = store.get(c.id)
        if c.state.status in ("removing", "dead"):
            raise Conflict(f'Cannot update container {c.id}: container is marked for removal '
                           'and cannot be "update"')
        try:
            new_hc = merge(c.host_config, req)
        except DaemonError as e:
            raise type(e)(f"Cannot update container {c.id}: {e}") from None
        if c.state.status in ("running", "paused"):
            resources = linux_resources(req)
            if resources:
                try:
                    runtime = monitor.load(c.id).oci_runtime()
                    await runtime.update(c.id, resources)
                except (NotFound, Conflict):
                    pass  # it stopped meanwhile: the next start uses the new config
                except DaemonError as e:
                    raise InternalError(f"Cannot update container {c.id}: "
                                        f"{_runtime_message(e)}") from None
        c = await store.save(dataclasses.replace(c, host_config=new_hc))
    store.event(c, "update")
    return warnings or None


def _runtime_message(e: DaemonError) -> str:
    """The runtime's own words, without oci.py's "runtime update of container X failed"."""
    text = str(e)
    _, sep, rest = text.partition(" failed: ")
    return rest if sep else text
