"""A container's logging driver (HostConfig.LogConfig): opened when it starts, read back.

The LogConfig is merged with the daemon's defaults and checked at create
(create.py); its values are read when the container starts (`settings`, whose
errors fail the start as dockerd's do), and `read` serves `docker logs` and
attach's replay from wherever the driver put the output: the files, the
journal, or nowhere (LogsNotReadable).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ..runtime import logs as runtime_logs
from .records import Container


def info(c: Container, log_dir: str) -> runtime_logs.LogInfo:
    command = list(c.config.get("Entrypoint") or []) + list(c.config.get("Cmd") or [])
    return runtime_logs.LogInfo(container_id=c.id, name=c.name, image_name=c.image,
                                image_id=c.image_id, command=" ".join(map(str, command)),
                                log_path=runtime_logs.log_path(log_dir))


def settings(c: Container, log_dir: str) -> runtime_logs.LogSettings:
    """The driver's settings for this run; InternalError (dockerd's 500) when the
    options' values are wrong."""
    cfg = c.host_config.get("LogConfig") or {}
    opts = {str(k): str(v) for k, v in (cfg.get("Config") or {}).items()}
    return runtime_logs.open_driver(runtime_logs.driver_of(c.host_config), opts,
                                    info(c, log_dir), runtime_logs.journald_enabled)


def read(c: Container, log_dir: str, stop: asyncio.Event,
         **options: Any) -> AsyncIterator[runtime_logs.Message]:
    """read_logs' messages from the container's driver; LogsNotReadable for `none`."""
    driver = runtime_logs.driver_of(c.host_config)
    if driver == "none":
        raise runtime_logs.LogsNotReadable(driver)
    if driver == "journald":
        return runtime_logs.read_journal(c.id, stop=stop, **options)
    return runtime_logs.read_logs(log_dir, stop=stop, **options)
