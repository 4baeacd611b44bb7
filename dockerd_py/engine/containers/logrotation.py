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
import weakref
from typing import TYPE_CHECKING

from ...errors import DaemonError
from ..runtime import logs as runtime_logs
from ..runtime.process import Process
from .records import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger(__name__)

LOCAL_DEFAULT = runtime_logs.RotationPolicy(max_size=20 * 1024 * 1024, max_file=5)

_rotators: weakref.WeakKeyDictionary[ContainerService, runtime_logs.LogRotator] = (
    weakref.WeakKeyDictionary())


def policy(c: Container) -> runtime_logs.RotationPolicy:
    cfg = c.host_config.get("LogConfig") or {}
    opts = {str(k): str(v) for k, v in (cfg.get("Config") or {}).items()}
    found = runtime_logs.parse_log_opts(opts)
    if found.max_size is None and cfg.get("Type") == "local":
        return LOCAL_DEFAULT
    return found


def rotator(service: ContainerService) -> runtime_logs.LogRotator:
    found = _rotators.get(service)
    if found is None:
        found = _rotators[service] = runtime_logs.LogRotator()
    return found


def register(service: ContainerService, c: Container, proc: Process) -> None:
    """Hook: the container runs (started, or found running after a restart)."""
    try:
        rotation = policy(c)
    except DaemonError as e:  # validated at create; a record from elsewhere may not be
        log.warning("container %s: log options ignored: %s", c.id, e)
        return
    if rotation.max_size is None:
        return
    monitor = service.monitor
    try:
        rotator(service).add(c.id, service.log_dir(c.id), rotation,
                             lambda: monitor.reopen_log(proc))
    except OSError as e:
        log.warning("container %s: cannot watch its log for rotation: %s", c.id, e)


def discard(service: ContainerService, cid: str) -> None:
    """Hook: the container exited or is being removed."""
    found = _rotators.get(service)
    if found is not None:
        found.discard(cid)
