"""Application keys: the backends each group of routes calls, set by the composition
root (daemon.py). A handler asks for the one backend it needs, by its contract."""

from aiohttp import web

from builder.service import BuildService

from ..config import ConfigSource
from ..distribution.service import DistributionService
from ..engine.containers.contract import Containers, Execs, Files
from ..engine.events import EventBus
from ..engine.images.contract import Images
from ..engine.networks.contract import Networks
from ..engine.runtime.contract import RuntimeRegistry
from ..engine.snapshots.contract import Snapshotter
from ..engine.volumes.contract import Volumes

CONFIG: web.AppKey[ConfigSource] = web.AppKey("config")  # the configuration in force
DAEMON_ID = web.AppKey("daemon_id", str)
IMAGES: web.AppKey[Images] = web.AppKey("images")
CONTAINERS: web.AppKey[Containers] = web.AppKey("containers")
EXECS: web.AppKey[Execs] = web.AppKey("execs")
FILES: web.AppKey[Files] = web.AppKey("files")
VOLUMES: web.AppKey[Volumes] = web.AppKey("volumes")
NETWORKS: web.AppKey[Networks] = web.AppKey("networks")
SNAPSHOTS: web.AppKey[Snapshotter] = web.AppKey("snapshots")
RUNTIMES: web.AppKey[RuntimeRegistry] = web.AppKey("runtimes")
EVENTS = web.AppKey("events", EventBus)
DISTRIBUTION = web.AppKey("distribution", DistributionService)
BUILDER = web.AppKey("builder", BuildService)
