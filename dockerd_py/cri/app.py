"""The CRI front end put together from the engine's services (daemon.py calls build)."""

from __future__ import annotations

import os
from pathlib import Path

from ..distribution.service import DistributionService
from ..engine.cni import CNI
from ..engine.containers.contract import Containers, Execs
from ..engine.events import EventBus
from ..engine.images.service import ImageService as Images
from ..engine.runtime.contract import Supervisor
from ..errors import Conflict
from .cni import CNIPlugins
from .containers import PodContainers
from .images import ImageServicer
from .imagevolumes import ImageVolumes
from .network import PodNetworks
from .runtime import RuntimeServicer
from .sandboxes import Sandboxes, recover
from .server import CRIServer
from .settings import CRISettings
from .stats import Stats
from .streaming.engine import EngineStreamingRuntime
from .streaming.server import StreamingServer, URLs
from .streams import Streams


def build(settings: CRISettings, *, containers: Containers, execs: Execs, images: Images,
          distribution: DistributionService, events: EventBus, monitor: Supervisor,
          handlers: list[str], fs_root: str) -> CRIServer:
    bins = [Path(d) for d in settings.cni_bin_dir.split(":") if d]
    backend = CNI(Path(settings.cni_conf_dir), bins, Path(settings.state_dir) / "cni")
    networks = PodNetworks(settings.state_dir, settings.run_dir, CNIPlugins(backend))
    volumes = ImageVolumes(images, settings.run_dir)
    sandboxes = Sandboxes(containers, images, distribution, networks, volumes,
                          settings.sandbox_image)
    pods = PodContainers(containers, execs, images, sandboxes, monitor, volumes)

    def netns_of(sandbox_id: str) -> Path:
        """The pod's pinned namespace, else (host network) its pause process's."""
        pinned = networks.netns_path(sandbox_id)
        if os.path.ismount(pinned):
            return Path(pinned)
        c = containers.get(sandbox_id)
        if not c.state.running or not c.state.pid:
            raise Conflict(f"pod sandbox {sandbox_id} is not running")
        return Path(f"/proc/{c.state.pid}/ns/net")

    # Exec, Attach and PortForward answer with URLs of our streaming server.
    server = StreamingServer(EngineStreamingRuntime(containers, execs, netns_of),
                             address=settings.stream_address)
    runtime = RuntimeServicer(containers, sandboxes, pods, Stats(containers, fs_root), events,
                              Streams(URLs(server)), handlers)
    image_service = ImageServicer(images, distribution, fs_root, settings.sandbox_image)
    return CRIServer(settings.socket, runtime, image_service, server,
                     startup=lambda: recover(sandboxes))
