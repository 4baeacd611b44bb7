"""Log rotation for running containers: LogConfig max-size / max-file, as json-file.

conmon writes <state dir>/container.log; runtime/logs.LogRotator watches it and,
at max-size, shifts container.log -> .1 -> ... (keeping max-file files) and asks
conmon to reopen. A container is registered when it starts (or is found running
after a daemon restart) and dropped when it exits or is removed. Options come from
HostConfig.LogConfig.Config (the daemon's log-opts were merged in at create);
the `local` driver rotates by default (20 MiB, 5 files), like dockerd's.
"""

from __future__ import annotations

import logging

from ...errors import DaemonError
from ..runtime import logs as runtime_logs
from ..runtime.contract import Supervisor
from ..runtime.process import Process
from .records import Container
from .store import ContainerStore

log = logging.getLogger(__name__)

LOCAL_DEFAULT = runtime_logs.RotationPolicy(max_size=20 * 1024 * 1024, max_file=5)


def policy(c: Container) -> runtime_logs.RotationPolicy:
    cfg = c.host_config.get("LogConfig") or {}
    opts = {str(k): str(v) for k, v in (cfg.get("Config") or {}).items()}
    found = runtime_logs.parse_log_opts(opts)
    if found.max_size is None and cfg.get("Type") == "local":
        return LOCAL_DEFAULT
    return found


class LogRotation:
    """The lifecycle hooks that keep running containers' logs rotated."""

    def __init__(self, store: ContainerStore, monitor: Supervisor) -> None:
        self.store = store
        self.monitor = monitor
        self._rotator = runtime_logs.LogRotator()

    async def started(self, c: Container, proc: Process) -> None:
        self.restored(c, proc)

    def restored(self, c: Container, proc: Process) -> None:
        try:
            rotation = policy(c)
        except DaemonError as e:  # validated at create; a record from elsewhere may not be
            log.warning("container %s: log options ignored: %s", c.id, e)
            return
        if rotation.max_size is None:
            return
        monitor = self.monitor
        try:
            self._rotator.add(c.id, self.store.log_dir(c.id), rotation,
                              lambda: monitor.reopen_log(proc))
        except OSError as e:
            log.warning("container %s: cannot watch its log for rotation: %s", c.id, e)

    async def exited(self, cid: str) -> None:
        self.removed(cid)

    def removed(self, cid: str) -> None:
        self._rotator.discard(cid)
