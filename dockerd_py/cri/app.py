"""The CRI front end put together from the engine's services (daemon.py calls build)."""

from __future__ import annotations

from pathlib import Path

from ..distribution.service import DistributionService
from ..engine.cni import CNI
from ..engine.containers.contract import Containers, Execs
from ..engine.events import EventBus
from ..engine.images.service import ImageService as Images
from ..engine.runtime.contract import Supervisor
from .cni import CNIPlugins
from .containers import PodContainers
from .images import ImageServicer
from .network import PodNetworks
from .runtime import RuntimeServicer
from .sandboxes import Sandboxes
from .server import CRIServer
from .settings import CRISettings
from .stats import Stats
from .streams import StreamingURLs, Streams


def build(settings: CRISettings, *, containers: Containers, execs: Execs, images: Images,
          distribution: DistributionService, events: EventBus, monitor: Supervisor,
          handlers: list[str], fs_root: str, streaming: StreamingURLs | None = None
          ) -> CRIServer:
    bins = [Path(d) for d in settings.cni_bin_dir.split(":") if d]
    backend = CNI(Path(settings.cni_conf_dir), bins, Path(settings.state_dir) / "cni")
    networks = PodNetworks(settings.state_dir, settings.run_dir, CNIPlugins(backend))
    sandboxes = Sandboxes(containers, images, distribution, networks, settings.sandbox_image)
    pods = PodContainers(containers, execs, images, sandboxes, monitor)
    runtime = RuntimeServicer(containers, sandboxes, pods, Stats(containers, fs_root), events,
                              Streams(streaming), handlers)
    return CRIServer(settings.socket, runtime, ImageServicer(images, distribution, fs_root))
