"""What the CRI server is configured with (daemon.json "cri", --cri-socket)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CRISettings:
    socket: str
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dir: str = "/usr/lib/cni"
    sandbox_image: str = "registry.k8s.io/pause:3.9"
    state_dir: str = ""          # <data-root>/cri: pod network results
    run_dir: str = ""            # <exec-root>/cri: pinned pod network namespaces
    stream_address: str = "127.0.0.1"
