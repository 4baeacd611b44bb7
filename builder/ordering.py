"""Events of concurrent stages, delivered in stage order (for observers that want it).

The legacy output reads as a sequential build: the earliest unfinished stage
streams live, later stages' events are held until it is done. After a
failure, what the stages up to the failed one held is delivered, the rest
dropped. An observer without `ordered = True` gets every event at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .observer import BuildObserver, Vertex, Warning

Thunk = Callable[[], Awaitable[None]]


class OrderedObserver:
    def __init__(self, inner: BuildObserver, order: list[int]) -> None:
        self.inner = inner
        self._live = not getattr(inner, "ordered", False)
        self._order = order
        self._pos = 0
        self._held: dict[int, list[Thunk]] = {i: [] for i in order}
        self._done: set[int] = set()
        self._lock = asyncio.Lock()

    async def _route(self, stage: int, thunk: Thunk) -> None:
        if self._live or stage not in self._held:
            await thunk()
            return
        async with self._lock:
            if self._pos < len(self._order) and self._order[self._pos] == stage:
                await thunk()
            elif self._pos < len(self._order):
                self._held[stage].append(thunk)

    async def finish(self, stage: int) -> None:
        async with self._lock:
            self._done.add(stage)
            while self._pos < len(self._order) and self._order[self._pos] in self._done:
                self._pos += 1
                if self._pos < len(self._order):
                    await self._flush(self._order[self._pos])

    async def flush_until(self, failed: int) -> None:
        """After a failure: what the stages up to the failed one held back."""
        async with self._lock:
            if failed in self._order:
                for stage in self._order[self._pos:self._order.index(failed) + 1]:
                    await self._flush(stage)
            self._pos = len(self._order)

    async def _flush(self, stage: int) -> None:
        held, self._held[stage] = self._held[stage], []
        for thunk in held:
            await thunk()

    # -- the observer's events, routed by stage ------------------------------------

    async def started(self, vertex: Vertex) -> None:
        await self._route(vertex.stage, lambda: self.inner.started(vertex))

    async def cached(self, vertex: Vertex) -> None:
        await self._route(vertex.stage, lambda: self.inner.cached(vertex))

    async def status(self, vertex: Vertex, message: dict[str, Any]) -> None:
        await self._route(vertex.stage, lambda: self.inner.status(vertex, message))

    async def container(self, vertex: Vertex, container_id: str, running: bool) -> None:
        await self._route(vertex.stage,
                          lambda: self.inner.container(vertex, container_id, running))

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        await self._route(vertex.stage, lambda: self.inner.log(vertex, fd, data))

    async def triggers(self, vertex: Vertex, count: int) -> None:
        await self._route(vertex.stage, lambda: self.inner.triggers(vertex, count))

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        await self._route(vertex.stage, lambda: self.inner.completed(vertex, error, image_id))

    async def warning(self, warning: Warning) -> None:
        await self.inner.warning(warning)

    async def unused_args(self, names: Sequence[str]) -> None:
        await self.inner.unused_args(names)

    async def stage_done(self, stage: int, image_id: str) -> None:
        await self._route(stage, lambda: self.inner.stage_done(stage, image_id))

    async def done(self, image_id: str, tags: Sequence[str]) -> None:
        await self.inner.done(image_id, tags)
