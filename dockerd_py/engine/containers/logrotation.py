"""Log rotation for running containers: the json-file and local drivers' max-size,
max-file and compress.

conmon writes <state dir>/container.log; runtime/logs.LogRotator watches it and,
at max-size, shifts container.log -> .1 -> ... (keeping max-file files) and asks
conmon to reopen. A container is registered when it starts (or is found running
after a daemon restart) and dropped when it exits or is removed. The policy is
the driver's (logdriver.settings): json-file rotates only with a max-size, local
by default (20 MB, 5 files, compressed), as dockerd's.
"""

from __future__ import annotations

import logging
import os

from ...errors import DaemonError
from ..runtime import logs as runtime_logs
from ..runtime.contract import Supervisor
from ..runtime.process import Process
from . import logdriver
from .records import Container
from .store import ContainerStore

log = logging.getLogger(__name__)


class LogRotation:
    """The lifecycle hooks that keep running containers' logs rotated."""

    def __init__(self, store: ContainerStore, monitor: Supervisor) -> None:
        self.store = store
        self.monitor = monitor
        self._rotator = runtime_logs.LogRotator()

    async def started(self, c: Container, proc: Process) -> None:
        self.restored(c, proc)

    def restored(self, c: Container, proc: Process) -> None:
        if runtime_logs.driver_of(c.host_config) not in runtime_logs.FILE_DRIVERS:
            return
        try:
            rotation = logdriver.settings(c, self.store.log_dir(c.id)).rotation
        except DaemonError as e:  # read at its start; a record from elsewhere may not be
            log.warning("container %s: log options ignored: %s", c.id, e)
            return
        if rotation is None or rotation.max_size is None:
            return
        if os.path.islink(runtime_logs.log_path(self.store.log_dir(c.id))):
            return  # a log a front end placed (the CRI's) is rotated by its owner (kubelet)
        monitor = self.monitor
        try:
            self._rotator.add(c.id, self.store.log_dir(c.id), rotation,
                              lambda: monitor.reopen_log(proc),
                              lambda: monitor.exit_status(proc) is None)
        except OSError as e:
            log.warning("container %s: cannot watch its log for rotation: %s", c.id, e)

    async def exited(self, cid: str) -> None:
        self.removed(cid)

    def removed(self, cid: str) -> None:
        self._rotator.discard(cid)
