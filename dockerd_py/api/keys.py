"""Application keys: the backends each group of routes calls, set by the composition
root (daemon.py). A handler asks for the one backend it needs."""

from aiohttp import web

from builder.service import BuildService

from ..config import ConfigSource
from ..distribution.service import DistributionService
from ..engine.containers.exec import ExecService
from ..engine.containers.service import ContainerService
from ..engine.events import EventBus
from ..engine.images.service import ImageService
from ..engine.networks.contract import Networks
from ..engine.runtime.runtimes import Runtimes
from ..engine.snapshots.contract import Snapshotter
from ..engine.volumes.contract import Volumes

CONFIG: web.AppKey[ConfigSource] = web.AppKey("config")  # the configuration in force
DAEMON_ID = web.AppKey("daemon_id", str)
IMAGES = web.AppKey("images", ImageService)
CONTAINERS = web.AppKey("containers", ContainerService)
EXECS = web.AppKey("execs", ExecService)
VOLUMES: web.AppKey[Volumes] = web.AppKey("volumes")
NETWORKS: web.AppKey[Networks] = web.AppKey("networks")
SNAPSHOTS: web.AppKey[Snapshotter] = web.AppKey("snapshots")
RUNTIMES = web.AppKey("runtimes", Runtimes)
EVENTS = web.AppKey("events", EventBus)
DISTRIBUTION = web.AppKey("distribution", DistributionService)
BUILDER = web.AppKey("builder", BuildService)
