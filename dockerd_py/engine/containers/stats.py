"""`docker stats`: resource usage read from a container's cgroups, in dockerd's shape.

One sample reads the container's cgroup files (v1: cpuacct, cpu, memory, blkio,
pids hierarchies; v2: the unified directory) and /proc/stat for the host's CPU
time. The record is the one dockerd answers with (StatsResponse of API 1.50,
fields in the order Go marshals them, map keys sorted):

    name, id, read, preread, pids_stats, blkio_stats, num_procs, storage_stats,
    cpu_stats, precpu_stats, memory_stats[, networks]

The CLI computes CPU % = Δcpu_usage.total_usage / Δsystem_cpu_usage × online_cpus
× 100 from cpu_stats and precpu_stats, and memory as usage − inactive_file
(`total_inactive_file` on v1); the memory limit of a container without one is
the host's MemTotal, as dockerd reports it.

Streams follow moby daemon/stats.go: a sample every second; without streaming,
two samples and the second returned (so precpu_stats is filled); one-shot a
single sample; a container that does not run gives records with only name and
id (zeros), and a stream ends when the container is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncGenerator
from typing import Any

from ...errors import InvalidParameter, NotFound
from ..host import host as host_facts
from ..images.mediatypes import now_rfc3339
from . import netstats
from .records import ZERO_TIME, Container
from .store import ContainerStore

INTERVAL = 1.0                 # seconds between samples (dockerd's collector interval)
CLOCK_TICKS = 100              # USER_HZ: /proc/stat and cpuacct.stat count in these
_NS_PER_TICK = 1_000_000_000 // CLOCK_TICKS
_UNLIMITED = 1 << 62           # a limit above this is "no limit"

# memory.stat keys dockerd reports (containerd cgroups' v1 and v2 metrics).
_V1_MEMORY_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
    "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit",
    "total_cache", "total_rss", "total_rss_huge", "total_mapped_file", "total_dirty",
    "total_writeback", "total_pgpgin", "total_pgpgout", "total_pgfault", "total_pgmajfault",
    "total_inactive_anon", "total_active_anon", "total_inactive_file", "total_active_file",
    "total_unevictable",
)
_V2_MEMORY_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file",
    "active_file", "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault",
    "pgmajfault", "workingset_refault", "workingset_activate", "workingset_nodereclaim",
    "pgrefill", "pgscan", "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree",
    "pglazyfreed", "thp_fault_alloc", "thp_collapse_alloc",
)
_BLKIO_LISTS = (
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
    "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
    "io_time_recursive", "sectors_recursive",
)
# v1 blkio: list name -> files to try (CFQ first, then the throttle policy's counters).
_V1_BLKIO_FILES = {
    "io_service_bytes_recursive": ("blkio.io_service_bytes_recursive",
                                   "blkio.throttle.io_service_bytes_recursive",
                                   "blkio.throttle.io_service_bytes"),
    "io_serviced_recursive": ("blkio.io_serviced_recursive",
                              "blkio.throttle.io_serviced_recursive",
                              "blkio.throttle.io_serviced"),
    "io_queue_recursive": ("blkio.io_queued_recursive",),
    "io_service_time_recursive": ("blkio.io_service_time_recursive",),
    "io_wait_time_recursive": ("blkio.io_wait_time_recursive",),
    "io_merged_recursive": ("blkio.io_merged_recursive",),
    "io_time_recursive": ("blkio.time_recursive",),
    "sectors_recursive": ("blkio.sectors_recursive",),
}


class NotRunning(Exception):
    """The container's cgroup is gone (it stopped between the check and the read)."""


# --- small readers ---------------------------------------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError) as e:
        raise NotRunning(path) from e


def _read_int(path: str, default: int | None = None) -> int:
    try:
        text = _read(path).strip()
    except NotRunning:
        if default is None:
            raise
        return default
    if text == "max":
        return _UNLIMITED
    try:
        return int(text)
    except ValueError:
        return default or 0


def _read_keyed(path: str) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, cpuacct.stat); missing file: {}."""
    out: dict[str, int] = {}
    try:
        text = _read(path)
    except NotRunning:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[key] = int(value)
    return out


def _blkio_entries(path: str) -> list[dict[str, Any]] | None:
    """"8:0 Read 4096" lines -> entries; None when the file does not exist."""
    try:
        text = _read(path)
    except NotRunning:
        return None
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue  # the trailing "Total N"
        major, _, minor = parts[0].partition(":")
        with contextlib.suppress(ValueError):
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})
    return entries


def system_cpu_usage() -> tuple[int, int]:
    """(host CPU time in ns, online CPUs) from /proc/stat, as dockerd computes them:
    the first seven fields of the `cpu` line in ticks × 1e9 / CLK_TCK, and the number
    of `cpuN` lines."""
    usage = 0
    cpus = 0
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            if line[3] == " ":
                ticks = line.split()[1:8]
                usage = sum(int(t) for t in ticks) * _NS_PER_TICK
            elif line[3].isdigit():
                cpus += 1
    return usage, cpus


def _unescape(path: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


@functools.cache
def _cgroup_mounts() -> tuple[dict[str, tuple[str, str]], tuple[str, str] | None]:
    """v1 controller -> (mount point, mount root); and the cgroup2 (point, root)."""
    v1: dict[str, tuple[str, str]] = {}
    v2: tuple[str, str] | None = None
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        tail = right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, point = _unescape(fields[3]), _unescape(fields[4])
        if tail[0] == "cgroup2":
            if v2 is None or point == "/sys/fs/cgroup":
                v2 = (point, root)
        elif tail[0] == "cgroup":
            for option in tail[2].split(","):
                if option in ("cpu", "cpuacct", "memory", "blkio", "pids", "cpuset"):
                    v1.setdefault(option, (point, root))
    return v1, v2


def unified() -> bool:
    """Pure cgroup v2 (as dockerd and runc decide it)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _join(mount: tuple[str, str], cgroup_path: str) -> str:
    point, root = mount
    rel = cgroup_path
    if root != "/" and (rel == root or rel.startswith(root.rstrip("/") + "/")):
        rel = rel[len(root):]
    return os.path.join(point, rel.lstrip("/"))


def cgroup_dirs(c: Container) -> dict[str, str]:
    """Controller -> directory of the container's cgroup ("" -> the v2 directory).

    From /proc/<init pid>/cgroup when the process is there; otherwise the path
    the spec asked the runtime for (cgroupsPath /<parent>/<id>)."""
    v1_mounts, v2_mount = _cgroup_mounts()
    paths: dict[str, str] = {}
    if c.state.pid > 0:
        with contextlib.suppress(OSError):
            with open(f"/proc/{c.state.pid}/cgroup") as f:
                for line in f:
                    _, controllers, path = line.rstrip("\n").split(":", 2)
                    for name in controllers.split(",") if controllers else [""]:
                        paths[name] = path
    parent = str(c.host_config.get("CgroupParent") or "dockerd-py").strip("/")
    fallback = f"/{parent}/{c.id}" if parent else f"/{c.id}"
    out: dict[str, str] = {}
    if unified():
        mount = v2_mount or ("/sys/fs/cgroup", "/")
        out[""] = _join(mount, paths.get("", fallback))
        return out
    for name, mount in v1_mounts.items():
        out[name] = _join(mount, paths.get(name, fallback))
    return out


# --- records ---------------------------------------------------------------------------

def _cpu_stats(usage: dict[str, Any] | None = None, system: int = 0, online: int = 0,
               throttling: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu_usage": usage or {"total_usage": 0, "usage_in_kernelmode": 0,
                                                  "usage_in_usermode": 0}}
    if system:
        out["system_cpu_usage"] = system
    if online:
        out["online_cpus"] = online
    out["throttling_data"] = throttling or {"periods": 0, "throttled_periods": 0,
                                            "throttled_time": 0}
    return out


def empty(c: Container) -> dict[str, Any]:
    """dockerd's record for a container that does not run: name, id and zeros."""
    return {
        "name": "/" + c.name, "id": c.id, "read": ZERO_TIME, "preread": ZERO_TIME,
        "pids_stats": {}, "blkio_stats": {name: None for name in _BLKIO_LISTS},
        "num_procs": 0, "storage_stats": {}, "cpu_stats": _cpu_stats(),
        "precpu_stats": _cpu_stats(), "memory_stats": {},
    }


def _memory_limit(limit: int) -> int:
    host = host_facts().mem_total
    return host if host and limit > host else limit


def _pids(current: int, limit: int) -> dict[str, int]:
    out = {}
    if current:
        out["current"] = current
    if limit and limit < _UNLIMITED:
        out["limit"] = limit
    return out


def _sample_v1(dirs: dict[str, str]) -> dict[str, Any]:
    cpuacct, cpu = dirs.get("cpuacct", ""), dirs.get("cpu", "")
    memory, blkio, pids = dirs.get("memory", ""), dirs.get("blkio", ""), dirs.get("pids", "")
    total = _read_int(os.path.join(cpuacct, "cpuacct.usage"))  # NotRunning when gone
    usage: dict[str, Any] = {"total_usage": total}
    with contextlib.suppress(NotRunning):
        percpu = [int(v) for v in _read(os.path.join(cpuacct, "cpuacct.usage_percpu")).split()]
        if percpu:
            usage["percpu_usage"] = percpu
    ticks = _read_keyed(os.path.join(cpuacct, "cpuacct.stat"))
    usage["usage_in_kernelmode"] = ticks.get("system", 0) * _NS_PER_TICK
    usage["usage_in_usermode"] = ticks.get("user", 0) * _NS_PER_TICK
    throttle = _read_keyed(os.path.join(cpu, "cpu.stat")) if cpu else {}
    raw = _read_keyed(os.path.join(memory, "memory.stat"))
    mem: dict[str, Any] = {
        "usage": _read_int(os.path.join(memory, "memory.usage_in_bytes"), 0),
        "max_usage": _read_int(os.path.join(memory, "memory.max_usage_in_bytes"), 0),
        "stats": {key: raw.get(key, 0) for key in sorted(_V1_MEMORY_KEYS)},
        "failcnt": _read_int(os.path.join(memory, "memory.failcnt"), 0),
        "limit": _memory_limit(_read_int(os.path.join(memory, "memory.limit_in_bytes"), 0)),
    }
    blkio_stats: dict[str, Any] = {}
    for name in _BLKIO_LISTS:
        entries: list[dict[str, Any]] = []
        for candidate in _V1_BLKIO_FILES[name]:
            found = _blkio_entries(os.path.join(blkio, candidate)) if blkio else None
            if found is not None:
                entries = found
                break
        blkio_stats[name] = entries
    return {
        "pids_stats": _pids(_read_int(os.path.join(pids, "pids.current"), 0),
                            _read_int(os.path.join(pids, "pids.max"), 0)) if pids else {},
        "blkio_stats": blkio_stats,
        "cpu_usage": usage,
        "throttling": {"periods": throttle.get("nr_periods", 0),
                       "throttled_periods": throttle.get("nr_throttled", 0),
                       "throttled_time": throttle.get("throttled_time", 0)},
        "memory_stats": {k: v for k, v in mem.items() if v},
    }


def _sample_v2(path: str) -> dict[str, Any]:
    cpu = _read_keyed(os.path.join(path, "cpu.stat"))
    if not cpu and not os.path.isdir(path):
        raise NotRunning(path)
    usage = {"total_usage": cpu.get("usage_usec", 0) * 1000,
             "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
             "usage_in_usermode": cpu.get("user_usec", 0) * 1000}
    raw = _read_keyed(os.path.join(path, "memory.stat"))
    events = _read_keyed(os.path.join(path, "memory.events"))
    mem: dict[str, Any] = {
        "usage": _read_int(os.path.join(path, "memory.current"), 0),
        "stats": {key: raw.get(key, 0) for key in sorted(_V2_MEMORY_KEYS)},
        "failcnt": events.get("oom", 0),
        "limit": _memory_limit(_read_int(os.path.join(path, "memory.max"), 0)),
    }
    service_bytes: list[dict[str, Any]] | None = None
    with contextlib.suppress(NotRunning):
        for line in _read(os.path.join(path, "io.stat")).splitlines():
            device, *pairs = line.split()
            major, _, minor = device.partition(":")
            values = dict(p.split("=", 1) for p in pairs if "=" in p)
            with contextlib.suppress(ValueError):
                service_bytes = (service_bytes or []) + [
                    {"major": int(major), "minor": int(minor), "op": "read",
                     "value": int(values.get("rbytes", 0))},
                    {"major": int(major), "minor": int(minor), "op": "write",
                     "value": int(values.get("wbytes", 0))}]
    blkio_stats: dict[str, Any] = {name: None for name in _BLKIO_LISTS}
    blkio_stats["io_service_bytes_recursive"] = service_bytes
    return {
        "pids_stats": _pids(_read_int(os.path.join(path, "pids.current"), 0),
                            _read_int(os.path.join(path, "pids.max"), 0)),
        "blkio_stats": blkio_stats,
        "cpu_usage": usage,
        "throttling": {"periods": cpu.get("nr_periods", 0),
                       "throttled_periods": cpu.get("nr_throttled", 0),
                       "throttled_time": cpu.get("throttled_usec", 0) * 1000},
        "memory_stats": {k: v for k, v in mem.items() if v},
    }


def sample(c: Container) -> dict[str, Any]:
    """One record for a running container; empty(c) when it is not (or no longer) running."""
    if c.state.status not in ("running", "paused"):
        return empty(c)
    dirs = cgroup_dirs(c)
    try:
        raw = _sample_v2(dirs[""]) if "" in dirs else _sample_v1(dirs)
    except NotRunning:
        return empty(c)
    system, online = system_cpu_usage()
    read = now_rfc3339()
    if not online:
        online = len(raw["cpu_usage"].get("percpu_usage") or ())
    record = {
        "name": "/" + c.name, "id": c.id, "read": read, "preread": ZERO_TIME,
        "pids_stats": raw["pids_stats"], "blkio_stats": raw["blkio_stats"], "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_stats(raw["cpu_usage"], system, online, raw["throttling"]),
        "precpu_stats": _cpu_stats(), "memory_stats": raw["memory_stats"],
    }
    networks = netstats.read(c)
    if networks is not None:
        record["networks"] = networks
    return record


# --- the endpoint's streams ------------------------------------------------------------

def open_stats(store: ContainerStore, ref: str, *, stream: bool,
               one_shot: bool) -> AsyncGenerator[dict[str, Any], None]:
    """Validates now (404, 400 before any header is sent); the iterator yields the
    records to send, one JSON document each."""
    c = store.get(ref)
    if stream and one_shot:
        raise InvalidParameter("cannot have stream=true and one-shot=true")
    return _records(store, c.id, stream=stream, one_shot=one_shot)


def _current(store: ContainerStore, cid: str) -> Container | None:
    try:
        return store.get(cid)
    except NotFound:
        return None


async def _records(store: ContainerStore, cid: str, *, stream: bool,
                   one_shot: bool) -> AsyncGenerator[dict[str, Any], None]:
    c = _current(store, cid)
    if c is None:
        return
    if not stream and c.state.status not in ("running", "paused"):
        yield empty(c)
        return
    if one_shot:
        yield sample(c)
        return
    previous: dict[str, Any] | None = None
    need_previous = not stream
    while True:
        c = _current(store, cid)
        if c is None:
            return  # removed: dockerd ends the stream
        record = sample(c)
        if need_previous:
            need_previous = False
            previous = record
            await asyncio.sleep(INTERVAL)
            continue
        if previous is not None:
            record["preread"] = previous["read"]
            record["precpu_stats"] = previous["cpu_stats"]
        yield record
        if not stream:
            return
        previous = record
        await asyncio.sleep(INTERVAL)
