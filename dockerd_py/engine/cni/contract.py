"""What a front end hands the CNI layer for a pod, and what it gets back.

The values are checked against strict grammars (grammar.py) before any of them reaches
a plugin's environment; building one of these does not check anything by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...errors import DaemonError, Unavailable


class CNINotReady(Unavailable):
    """No usable network configuration: the runtime's NetworkReady condition is false."""

    def __init__(self, message: str = "cni config uninitialized") -> None:
        super().__init__(message)
        self.message = message


class CNIError(DaemonError):
    """A plugin failed; the message names it and carries its CNI error (code, msg, details)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PortMapping:
    protocol: str          # tcp, udp or sctp
    container_port: int
    host_port: int         # 0: not published (kubelet's convention, as containerd skips it)
    host_ip: str = ""      # "" or an IP literal


@dataclass(frozen=True)
class PodBandwidth:
    """Bits per second and bits, as the bandwidth plugin reads its runtimeConfig."""
    ingress_rate: int = 0
    ingress_burst: int = 0
    egress_rate: int = 0
    egress_burst: int = 0


@dataclass(frozen=True)
class PodDNS:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class PodNetwork:
    pod_id: str            # the sandbox id: hex (CNI_CONTAINERID)
    name: str
    namespace: str
    uid: str
    netns_path: str
    port_mappings: tuple[PortMapping, ...] = ()
    bandwidth: PodBandwidth | None = None
    dns: PodDNS | None = None


@dataclass(frozen=True)
class PodNetworkResult:
    ips: tuple[str, ...]               # primary (first IPv4) first, then the others
    interface: str                     # the pod's interface, eth0
    gateway: str                       # the primary address' gateway, "" when none
    raw: dict[str, Any] = field(default_factory=dict)   # the last plugin's CNI result
    mac: str = ""
