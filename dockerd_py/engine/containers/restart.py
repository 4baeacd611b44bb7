"""Restart policies (`--restart`), as dockerd's restartmanager.

After an exit, a container whose policy asks for it turns "restarting" and is
started again after a back-off that doubles with each restart (0.1 s, 0.2 s,
... at most a minute). A stop, kill or rm during the back-off cancels it and
leaves the container "exited" and manually stopped; a start already under way
completes first. At daemon start, `always` and `unless-stopped` containers that
are not running are started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...errors import DaemonError
from .records import Container
from .store import ContainerStore

log = logging.getLogger(__name__)


def _policy(c: Container) -> dict[str, Any]:
    return dict(c.host_config.get("RestartPolicy") or {})


def should_restart(c: Container) -> bool:
    """Whether an exited container restarts by its policy."""
    policy = _policy(c)
    name = policy.get("Name") or "no"
    if c.state.manually_stopped or name == "no":
        return False
    if name == "on-failure":
        retries = policy.get("MaximumRetryCount") or 0
        return c.state.exit_code != 0 and (not retries or c.state.restart_count < retries)
    return True


def starts_with_daemon(c: Container) -> bool:
    """Whether a container that is not running starts when the daemon does."""
    name = _policy(c).get("Name") or "no"
    return not c.state.running and (
        name == "always" or (name == "unless-stopped" and not c.state.manually_stopped))


class Restarts:
    def __init__(self, store: ContainerStore,
                 start: Callable[[Container], Awaitable[Container]]) -> None:
        self.store = store
        self._start = start  # the lifecycle's start, called with the container's lock held
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def schedule(self, c: Container) -> None:
        delay = min(0.1 * 2 ** c.state.restart_count, 60.0)  # dockerd's backoff

        async def restart_now() -> None:
            async with self.store.lock(c.id):
                current = self.store.find(c.id)
                if current is None or current.state.status != "restarting":
                    return
                current = current.with_state(restart_count=current.state.restart_count + 1)
                try:
                    await self._start(current)
                    self.store.event(current, "restart")
                except DaemonError as e:
                    log.warning("restarting container %s failed: %s", c.id, e)

        async def later() -> None:
            await asyncio.sleep(delay)
            # Cancelling (stop, rm) during the back-off is fine; half-way through a
            # start it would leave runtime state behind, so the start is shielded.
            await asyncio.shield(restart_now())

        self._tasks[c.id] = asyncio.get_running_loop().create_task(later())

    async def cancel(self, cid: str) -> None:
        """Stop a pending restart; a start already under way completes first."""
        task = self._tasks.pop(cid, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        async with self.store.lock(cid):
            current = self.store.find(cid)
            if current is not None and current.state.status == "restarting":
                await self.store.save(current.with_state(status="exited", manually_stopped=True))

    def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
