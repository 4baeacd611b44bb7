"""The CNI backend (engine/cni) as the pod networks use it."""

from __future__ import annotations

from ..engine import cni
from .network import Pod


class CNIPlugins:
    def __init__(self, backend: cni.CNI) -> None:
        self.backend = backend

    @staticmethod
    def _network(pod: Pod) -> cni.PodNetwork:
        ports = tuple(cni.PortMapping(p.protocol, p.container_port, p.host_port, p.host_ip)
                      for p in pod.port_mappings)
        dns = cni.PodDNS(*pod.dns) if pod.dns is not None else None
        return cni.PodNetwork(pod.id, pod.name, pod.namespace, pod.uid, pod.netns, ports,
                              dns=dns)

    async def setup(self, pod: Pod) -> list[str]:
        result = await self.backend.setup(self._network(pod))
        return list(result.ips)

    async def teardown(self, pod: Pod) -> None:
        await self.backend.teardown(self._network(pod))

    async def status(self) -> str | None:
        try:
            await self.backend.status()
        except cni.CNINotReady as e:
            return e.message
        return None

    def update_pod_cidr(self, cidr: str) -> None:
        self.backend.update_pod_cidr(cidr)
