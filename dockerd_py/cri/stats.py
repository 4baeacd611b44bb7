"""Container and pod statistics from the engine's cgroup samples (Docker's stats shape)."""

from __future__ import annotations

import asyncio
import builtins
import time
from typing import Any

from ..engine.containers import netstats
from ..engine.containers import stats as engine_stats
from ..engine.containers.contract import Containers
from ..engine.containers.records import Container
from ..errors import DaemonError
from ..protos.cri import api_pb2 as pb
from . import lookup, meta, views


def _u(value: int) -> pb.UInt64Value:
    return pb.UInt64Value(value=max(int(value), 0))


def _cpu(sample: dict[str, Any], ts: int) -> pb.CpuUsage:
    total = int(((sample.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0))
    return pb.CpuUsage(timestamp=ts, usage_core_nano_seconds=_u(total))


def _memory(sample: dict[str, Any], ts: int) -> pb.MemoryUsage:
    mem = sample.get("memory_stats") or {}
    detail = mem.get("stats") or {}
    usage = int(mem.get("usage", 0))
    inactive = int(detail.get("inactive_file", detail.get("total_inactive_file", 0)))
    limit = int(mem.get("limit", 0))
    working = max(usage - inactive, 0)
    out = pb.MemoryUsage(timestamp=ts, working_set_bytes=_u(working), usage_bytes=_u(usage),
                         rss_bytes=_u(int(detail.get("anon", detail.get("rss", 0)))),
                         page_faults=_u(int(detail.get("pgfault", 0))),
                         major_page_faults=_u(int(detail.get("pgmajfault", 0))))
    if limit:
        out.available_bytes.value = max(limit - working, 0)
    return out


def _interfaces(pid: int) -> list[pb.NetworkInterfaceUsage]:
    """The pod's interfaces (its pause process's /proc/net/dev), loopback left out."""
    try:
        with open(f"/proc/{pid}/net/dev") as f:
            counters = netstats.parse(f.read())
    except OSError:
        return []
    return [pb.NetworkInterfaceUsage(name=name, rx_bytes=_u(v["rx_bytes"]),
                                     rx_errors=_u(v["rx_errors"]), tx_bytes=_u(v["tx_bytes"]),
                                     tx_errors=_u(v["tx_errors"]))
            for name, v in counters.items()]


class Stats:
    def __init__(self, containers: Containers, fs_root: str) -> None:
        self.containers = containers
        self.fs_root = fs_root

    async def container(self, c: Container, m: meta.Meta) -> pb.ContainerStats:
        sample = await asyncio.to_thread(engine_stats.sample, c)
        ts = time.time_ns()
        try:
            rw, _ = await self.containers.sizes(c)
        except DaemonError:
            rw = 0
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=c.id, metadata=views.container_metadata(m),
                                              labels=m.labels, annotations=m.annotations),
            cpu=_cpu(sample, ts), memory=_memory(sample, ts),
            writable_layer=pb.FilesystemUsage(
                timestamp=ts, fs_id=pb.FilesystemIdentifier(mountpoint=self.fs_root),
                used_bytes=_u(rw), inodes_used=_u(0)))

    async def one(self, ref: str) -> pb.ContainerStats:
        c, m = lookup.container(self.containers, ref)
        return await self.container(c, m)

    async def list(self, f: pb.ContainerStatsFilter | None
                   ) -> builtins.list[pb.ContainerStats]:
        out = []
        for c, m in lookup.all_of(self.containers, meta.CONTAINER):
            if f is not None:
                if f.id and not c.id.startswith(f.id):
                    continue
                if f.pod_sandbox_id and not m.sandbox_id.startswith(f.pod_sandbox_id):
                    continue
                if not lookup.labels_match(m.labels, f.label_selector):
                    continue
            if c.state.status != "running":
                continue
            out.append(await self.container(c, m))
        return out

    async def pod(self, c: Container, m: meta.Meta) -> pb.PodSandboxStats:
        stats = [await self.container(cc, mm) for cc, mm in lookup.members(self.containers, c.id)
                 if cc.state.status == "running"]
        ts = time.time_ns()
        pause = await asyncio.to_thread(engine_stats.sample, c)
        cpu = _cpu(pause, ts)
        mem = _memory(pause, ts)
        for s in stats:
            cpu.usage_core_nano_seconds.value += s.cpu.usage_core_nano_seconds.value
            mem.working_set_bytes.value += s.memory.working_set_bytes.value
            mem.usage_bytes.value += s.memory.usage_bytes.value
            mem.rss_bytes.value += s.memory.rss_bytes.value
        procs = int((pause.get("pids_stats") or {}).get("current", 0))
        network = pb.NetworkUsage(timestamp=ts)
        hostnet = (m.extra.get("namespaces") or {}).get("network") == pb.NODE
        if not hostnet and c.state.pid > 0:
            network.interfaces.extend(await asyncio.to_thread(_interfaces, c.state.pid))
            for iface in network.interfaces:
                if iface.name == "eth0":
                    network.default_interface.CopyFrom(iface)
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(id=c.id, metadata=views.pod_metadata(m),
                                               labels=m.labels, annotations=m.annotations),
            linux=pb.LinuxPodSandboxStats(
                cpu=cpu, memory=mem, containers=stats,
                process=pb.ProcessUsage(timestamp=ts, process_count=_u(procs)),
                network=network))

    async def pods(self, f: pb.PodSandboxStatsFilter | None
                   ) -> builtins.list[pb.PodSandboxStats]:
        out = []
        for c, m in lookup.all_of(self.containers, meta.SANDBOX):
            if f is not None:
                if f.id and not c.id.startswith(f.id):
                    continue
                if not lookup.labels_match(m.labels, f.label_selector):
                    continue
            if views.sandbox_ready(c):
                out.append(await self.pod(c, m))
        return out
