"""Facts about the host that `docker info` reports (read once, cached)."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    name: str
    kernel: str
    operating_system: str
    os_version: str
    architecture: str
    ncpu: int
    mem_total: int
    cgroup_version: str
    http_proxy: str
    https_proxy: str
    no_proxy: str


def _os_release() -> dict[str, str]:
    values = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, sep, value = line.strip().partition("=")
                if sep:
                    values[key] = value.strip('"')
    except OSError:
        pass
    return values


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@functools.cache
def host() -> Host:
    release = _os_release()
    uname = os.uname()
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    return Host(
        name=socket.gethostname(),
        kernel=uname.release,
        operating_system=release.get("PRETTY_NAME", "Linux"),
        os_version=release.get("VERSION_ID", ""),
        architecture=uname.machine,
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version="2" if v2 else "1",
        http_proxy=os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        https_proxy=os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        no_proxy=os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
    )


@functools.cache
def binary_version(name: str) -> tuple[str, str]:
    """(path, first line of `name --version`) or ("", "") when not installed."""
    path = shutil.which(name) or ""
    if not path:
        return "", ""
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=5)
        return path, (out.stdout.splitlines() or [""])[0]
    except (OSError, subprocess.TimeoutExpired):
        return path, ""


def backing_fs(path: str) -> str:
    """The file system type under a path, as `docker info` names it."""
    best, fstype = "", "unknown"
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and path.startswith(parts[1]) and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        pass
    return {"ext4": "extfs", "ext3": "extfs", "ext2": "extfs"}.get(fstype, fstype)


def ip_forward() -> bool:
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def open_fds() -> int:
    """How many files this process has open."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0
