"""The ADD results kept on disk, so that DEL and CHECK after a daemon restart run with
the configuration, arguments and result of the ADD (libcni's cniCacheV1 layout).

One file per (network, container, interface): <cache_dir>/results/<net>-<id>-<ifname>.
The parts are grammar-checked, so the name stays inside the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import fsync_dir
from . import confdir
from .confdir import ConfigError, NetworkList

KIND = "cniCacheV1"


@dataclass(frozen=True)
class Entry:
    network: NetworkList
    args: tuple[tuple[str, str], ...]
    capabilities: dict[str, Any]
    result: dict[str, Any]


def path(cache_dir: Path, network: str, container_id: str, ifname: str) -> Path:
    return cache_dir / "results" / f"{network}-{container_id}-{ifname}"


def save(cache_dir: Path, container_id: str, ifname: str, netns: str, entry: Entry) -> None:
    """Blocking: writes and syncs the file."""
    doc = {"kind": KIND, "containerId": container_id, "ifName": ifname,
           "networkName": entry.network.name, "netns": netns,
           "config": entry.network.to_json(), "cniArgs": [list(a) for a in entry.args],
           "capabilityArgs": entry.capabilities, "result": entry.result}
    target = path(cache_dir, entry.network.name, container_id, ifname)
    os.makedirs(target.parent, mode=0o700, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(json.dumps(doc).encode())
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, target)
    fsync_dir(str(target.parent))


def load(cache_dir: Path, network: str, container_id: str, ifname: str) -> Entry | None:
    """Blocking. None when there is no entry, or it is unreadable (a torn or foreign file:
    the caller falls back to the current configuration, as libcni does)."""
    target = path(cache_dir, network, container_id, ifname)
    try:
        doc = json.loads(target.read_bytes())
        if not isinstance(doc, dict) or doc.get("kind") != KIND \
                or doc.get("containerId") != container_id:
            return None
        net = confdir.from_list(doc.get("config"), str(target))
        args = tuple((str(k), str(v)) for k, v in doc.get("cniArgs") or [])
        caps = doc.get("capabilityArgs") or {}
        result = doc.get("result") or {}
        if not isinstance(caps, dict) or not isinstance(result, dict):
            return None
        return Entry(net, args, caps, result)
    except (OSError, ValueError, TypeError, ConfigError):
        return None


def remove(cache_dir: Path, network: str, container_id: str, ifname: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path(cache_dir, network, container_id, ifname))


def networks_of(cache_dir: Path, container_id: str, ifname: str) -> list[str]:
    """The network names with a cache entry for this container and interface (blocking)."""
    suffix = f"-{container_id}-{ifname}"
    try:
        names = os.listdir(cache_dir / "results")
    except OSError:
        return []
    return sorted(n[:-len(suffix)] for n in names if n.endswith(suffix) and len(n) > len(suffix))
