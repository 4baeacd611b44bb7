"""`docker attach`: a stream of a container's stdio, also before its start.

When the container cannot be created in the runtime yet (its command is
missing, say), the client still attaches, as with dockerd: the stream
connects at the next start, or ends when that start fails.
"""

from __future__ import annotations

import asyncio
import contextlib

from ...errors import DaemonError
from ..runtime.attach import AttachStream
from ..runtime.contract import Supervisor
from ..runtime.process import Process
from .launch import Launcher
from .records import Container
from .store import ContainerStore


class Attachments:
    def __init__(self, store: ContainerStore, launcher: Launcher, monitor: Supervisor) -> None:
        self.store = store
        self.launcher = launcher
        self.monitor = monitor
        self._pending: dict[str, list[asyncio.Future[AttachStream | None]]] = {}

    async def attach(self, ref: str, *, live: bool = True
                     ) -> tuple[Container, AttachStream | DeferredAttach | None]:
        """The container's stdio; not live, only the attach is recorded (dockerd's
        `attach?stream=0`, after the logs it replays)."""
        c = self.store.get(ref)
        if not live:
            self.store.event(c, "attach")
            return c, None
        async with self.store.lock(c.id):
            try:
                proc = await self.launcher.ensure_created(self.store.get(c.id))
            except Exception:  # start reports why; this stream connects if a start works
                pending = asyncio.get_running_loop().create_future()
                self._pending.setdefault(c.id, []).append(pending)
                self.store.event(c, "attach")
                return c, DeferredAttach(pending)
        stream = await self.monitor.attach(proc)
        self.store.event(c, "attach")
        return c, stream

    async def resolve_pending(self, cid: str, proc: Process | None) -> None:
        """A start made the container (proc) or failed to (None): waiting streams learn."""
        for pending in self._pending.pop(cid, []):
            if pending.done():
                continue
            stream = None
            if proc is not None:
                with contextlib.suppress(DaemonError, OSError):
                    stream = await self.monitor.attach(proc)
            pending.set_result(stream)


class DeferredAttach:
    """An attach stream that connects when the container is next created in the
    runtime (None: that failed, and the stream is empty)."""

    def __init__(self, pending: asyncio.Future[AttachStream | None]) -> None:
        self._pending = pending

    async def recv(self) -> tuple[int, bytes] | None:
        stream = await self._pending
        return None if stream is None else await stream.recv()

    async def send(self, data: bytes) -> None:
        stream = await self._pending
        if stream is not None:
            await stream.send(data)

    def close_stdin(self) -> None:
        if self._pending.done() and self._pending.result() is not None:
            self._pending.result().close_stdin()  # type: ignore[union-attr]

    def close(self) -> None:
        if not self._pending.done():
            self._pending.cancel()
        elif self._pending.result() is not None:
            self._pending.result().close()  # type: ignore[union-attr]
