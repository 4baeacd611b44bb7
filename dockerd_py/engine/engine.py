"""The engine: every service of the daemon, built over one data root.

This is what the API layer holds; it owns opening (with crash recovery) and
closing the stores.
"""

from __future__ import annotations

import os
import uuid

from ..config import Config
from ..distribution.service import DistributionService
from .containers.exec import ExecService
from .containers.service import ContainerService
from .content import ContentStore
from .events import EventBus
from .images.service import ImageService
from .leases import LeaseManager
from .metadata.db import Database
from .networks.service import NetworkService
from .snapshots.overlay import OverlaySnapshotter
from .types import ImageRecord
from .volumes import VolumeService


class Engine:
    def __init__(self, config: Config) -> None:
        self.config = config
        root = config.data_root
        os.makedirs(root, mode=0o711, exist_ok=True)
        self.db = Database(os.path.join(root, "metadata.db"))
        self.content = ContentStore(os.path.join(root, "content"))
        self.snapshots = OverlaySnapshotter(os.path.join(root, "snapshots"), self.db)
        self.leases = LeaseManager()
        self.events = EventBus()
        self.images = ImageService(self.db, self.content, self.snapshots, self.leases,
                                   self.events)
        self.containers = ContainerService(config, self.db, self.images, self.snapshots,
                                           self.events)
        self.execs = ExecService(self.containers)
        self.volumes = self.containers.volumes = VolumeService(self.db, self.events, root)
        self.distribution = DistributionService(lambda: self.config, self.images)
        self.networks = self.containers.networks = NetworkService(config, self.db, self.events)
        self.networks.containers = self.containers
        from builder.service import BuildService  # the builder sits on the services above
        self.builder = BuildService(self)
        self.id = _engine_id(root)

    async def start(self) -> None:
        """Recover from whatever a crash left: partial ingests, staging
        directories, blobs and snapshots no record reaches."""
        await self.networks.load()
        await self.containers.restore()
        await self.networks.reconcile({c.id for c in self.containers.list() if c.state.running})
        await self.images.collect_garbage(startup=True)

    async def layer_dirs(self, image: ImageRecord) -> list[str]:
        """The unpacked layer directories of an image, top first."""
        if not image.top_chain:
            return []
        return [self.snapshots.fs_dir(i) for i in await self.snapshots.chain(image.top_chain)]

    async def close(self) -> None:
        await self.containers.close()
        await self.networks.close()
        await self.images.wait_gc()
        self.events.close()
        self.db.close()


def _engine_id(root: str) -> str:
    path = os.path.join(root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(value)
        os.rename(tmp, path)
        return value
