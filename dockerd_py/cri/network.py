"""Pod networks: the sandbox's network namespace, pinned, and what is plugged into it.

A fresh network namespace is made and pinned at <exec-root>/cri/netns/<sandbox id>
before the pause container exists (so it outlives the pause process for the CNI DEL,
and a restarted daemon finds it); the pause container joins it while the CNI plugin
chain adds the pod's interfaces (loopback first), both at once, as they are
independent. The addresses are kept in
<data-root>/cri/pods/<sandbox id>.json, which is what PodSandboxStatus reports after a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..engine.mount import unmount
from ..engine.networks import netns
from ..errors import InternalError

_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class PortMapping:
    protocol: str            # "tcp" | "udp" | "sctp"
    container_port: int
    host_port: int
    host_ip: str = ""


@dataclass(frozen=True)
class Pod:
    """What a CNI ADD/DEL is told about a pod."""

    id: str
    name: str
    namespace: str
    uid: str
    netns: str
    port_mappings: tuple[PortMapping, ...] = ()
    dns: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None


class Plugins(Protocol):
    """The CNI backend (engine/cni, through the adapter cri/cni.py)."""

    async def setup(self, pod: Pod) -> list[str]:
        """Add the pod to the network; its IP addresses, primary first."""

    async def teardown(self, pod: Pod) -> None:
        """Idempotent."""

    async def status(self) -> str | None:
        """None when ready, else why not."""

    def update_pod_cidr(self, cidr: str) -> None: ...


class PodNetworks:
    def __init__(self, state_dir: str, run_dir: str, plugins: Plugins) -> None:
        self.state_dir = os.path.join(state_dir, "pods")
        self.netns_dir = os.path.join(run_dir, "netns")
        self.plugins = plugins
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.netns_dir, mode=0o700, exist_ok=True)

    def netns_path(self, sandbox_id: str) -> str:
        if not _ID.fullmatch(sandbox_id):
            raise InternalError(f"invalid sandbox id {sandbox_id!r}")
        return os.path.join(self.netns_dir, sandbox_id)

    def _state(self, sandbox_id: str) -> str:
        return os.path.join(self.state_dir, self.netns_path(sandbox_id)[-64:] + ".json")

    def update_pod_cidr(self, cidr: str) -> None:
        self.plugins.update_pod_cidr(cidr)

    async def status(self) -> str | None:
        return await self.plugins.status()

    async def create_netns(self, pod: Pod) -> str:
        """A new network namespace pinned as the pod's; its path."""
        path = self.netns_path(pod.id)
        # Saved first: a failure half-way still has its DEL and unpin (teardown reads it).
        await asyncio.to_thread(self._save, pod, [], False)
        await asyncio.to_thread(netns.create, self.netns_dir, pod.id)
        return path

    async def setup(self, pod: Pod) -> list[str]:
        """Run the CNI ADD (lo and the pod network) in the namespace create_netns() made."""
        path = self.netns_path(pod.id)
        if not await asyncio.to_thread(os.path.ismount, path):
            raise InternalError(f"the network namespace of pod {pod.id} is not pinned")
        ips = await self.plugins.setup(Pod(pod.id, pod.name, pod.namespace, pod.uid, path,
                                           pod.port_mappings, pod.dns))
        await asyncio.to_thread(self._save, pod, ips, True)
        return ips

    def _save(self, pod: Pod, ips: Sequence[str], complete: bool) -> None:
        data = {"ips": list(ips), "name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                "ports": [pm.__dict__ for pm in pod.port_mappings], "complete": complete}
        tmp = self._state(pod.id) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.rename(tmp, self._state(pod.id))

    def known(self) -> set[str]:
        """The sandboxes that have network state here."""
        return {n[:-len(".json")] for n in os.listdir(self.state_dir)
                if n.endswith(".json") and _ID.fullmatch(n[:-len(".json")])}

    def complete(self, sandbox_id: str) -> bool:
        """Whether the pod's network was set up to the end (not cut short by a crash)."""
        return bool((_read(self._state(sandbox_id)) or {}).get("complete"))

    def ips(self, sandbox_id: str) -> list[str]:
        return [str(ip) for ip in (_read(self._state(sandbox_id)) or {}).get("ips") or ()]

    async def teardown(self, sandbox_id: str) -> None:
        """CNI DEL and the pin go; idempotent, also after a crash half-way."""
        state = self._state(sandbox_id)
        data = await asyncio.to_thread(_read, state)
        path = self.netns_path(sandbox_id)
        if data is not None:
            ports = tuple(PortMapping(**p) for p in data.get("ports") or ())
            netns = path if await asyncio.to_thread(os.path.ismount, path) else ""
            await self.plugins.teardown(Pod(sandbox_id, data["name"], data["namespace"],
                                            data["uid"], netns, ports))
        await asyncio.to_thread(_unpin, path)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, state)


def _read(state: str) -> dict[str, Any] | None:
    """A pod's saved network state; None when absent or unreadable (blocking)."""
    try:
        with open(state) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _unpin(path: str) -> None:
    unmount(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
