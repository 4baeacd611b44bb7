"""Pod networking through CNI plugins, as libcni and go-cni drive them for containerd."""

from .contract import (
    CNIError,
    CNINotReady,
    PodBandwidth,
    PodDNS,
    PodNetwork,
    PodNetworkResult,
    PortMapping,
)
from .service import CNI

__all__ = ["CNI", "CNIError", "CNINotReady", "PodBandwidth", "PodDNS", "PodNetwork",
           "PodNetworkResult", "PortMapping"]
