"""The legacy builder's output (POST /build's JSON message stream) as an observer.

Renders the builder's events in dockerd 20.10's wording and message split
(progress.py): "Step N/M : X", " ---> Using cache", " ---> Running in ...",
the command's output (stderr in red), "Removing intermediate container ...",
" ---> <image>", and each stage's image as an aux message. Parser warnings are
gathered into one red message before the first step, as the reference writes
them; build checks are BuildKit's and are not shown here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from dockerd_py.engine.reference import parse_normalized

from . import progress
from .observer import STDOUT, NullObserver, Vertex, Warning

Sink = Callable[[progress.Message], Awaitable[None]]


class LegacyRenderer(NullObserver):
    ordered = True

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._warnings: list[str] = []

    async def _flush_warnings(self) -> None:
        if self._warnings:
            text, self._warnings = "".join(w + "\n" for w in self._warnings), []
            await self.sink(progress.stderr(text))

    async def warning(self, warning: Warning) -> None:
        if warning.legacy:
            self._warnings.append(warning.legacy)

    async def started(self, vertex: Vertex) -> None:
        await self._flush_warnings()
        if vertex.step and not vertex.trigger:
            for message in progress.step(vertex.step, vertex.total, vertex.original):
                await self.sink(message)

    async def cached(self, vertex: Vertex) -> None:
        await self.sink(progress.using_cache())

    async def status(self, vertex: Vertex, message: dict[str, Any]) -> None:
        await self.sink(message)

    async def container(self, vertex: Vertex, container_id: str, running: bool) -> None:
        await self.sink(progress.running_in(container_id) if running
                        else progress.removing(container_id))

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        await self.sink(progress.stdout(text) if fd == STDOUT else progress.stderr(text))

    async def triggers(self, vertex: Vertex, count: int) -> None:
        plural = "s" if count > 1 else ""
        await self.sink(progress.stream(f"# Executing {count} build trigger{plural}"))
        await self.sink(progress.stream("\n"))

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        if error is None and image_id is not None and not vertex.trigger:
            await self.sink(progress.image(image_id))

    async def unused_args(self, names: Sequence[str]) -> None:
        await self.sink(progress.unused_args(list(names)))

    async def stage_done(self, stage: int, image_id: str) -> None:
        await self.sink(progress.aux_id(image_id))

    async def done(self, image_id: str, tags: Sequence[str]) -> None:
        await self._flush_warnings()
        await self.sink(progress.built(image_id))
        for ref in tags:
            await self.sink(progress.tagged(parse_normalized(ref).familiar()))
