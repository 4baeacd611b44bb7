"""The builder's events (builder/observer.py) as BuildKit's Status stream shows them.

Steps BuildKit shows no vertex for (hidden ones: ENV, LABEL, meta ARGs) are left out;
RUN output goes out live as vertex logs; a pull's progress as vertex statuses; build
checks as warnings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from builder.observer import NullObserver, Vertex, Warning

from .status import Progress

# pull-progress states after which a layer's status line is done
_DONE_STATES = {"Pull complete", "Download complete", "Already exists", "Downloaded",
                "Verifying Checksum", "Digest", "Status"}


_FAILED = re.compile(r"The command '(.*)' returned a non-zero code: (\d+)", re.S)


def error_text(error: BaseException) -> str:
    """The builder's error in the words of dockerd 20.10's BuildKit."""
    text = str(error) or type(error).__name__
    failed = _FAILED.fullmatch(text)
    if failed:
        return f"executor failed running [{failed.group(1)}]: exit code: {failed.group(2)}"
    return text


class StatusObserver(NullObserver):
    ordered = False     # BuildKit clients take concurrent vertexes as they come

    def __init__(self, progress: Progress, definition: str = "") -> None:
        self.progress = progress
        self.definition = definition    # the "load build definition" vertex
        self._shown: set[str] = set()

    async def started(self, vertex: Vertex) -> None:
        if vertex.hidden:
            return
        self._shown.add(vertex.digest)
        inputs = tuple(i for i in vertex.inputs if i in self._shown)
        await self.progress.started(vertex.digest, vertex.name, inputs)

    async def cached(self, vertex: Vertex) -> None:
        if vertex.digest in self._shown:
            await self.progress.cached(vertex.digest)

    async def status(self, vertex: Vertex, message: dict[str, Any]) -> None:
        if vertex.digest not in self._shown or "stream" in message:
            return
        sid = str(message.get("id") or message.get("status") or "")
        if not sid:
            return
        detail = message.get("progressDetail") or {}
        current = detail.get("current") if isinstance(detail, dict) else None
        total = detail.get("total") if isinstance(detail, dict) else None
        state = str(message.get("status", ""))
        await self.progress.status(
            vertex.digest, sid, current=int(current or 0), total=int(total or 0),
            done=state in _DONE_STATES or state.startswith(("Digest:", "Status:")))

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        if vertex.digest in self._shown:
            await self.progress.log(vertex.digest, fd, data)

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        if vertex.digest in self._shown:
            await self.progress.completed(vertex.digest,
                                          error_text(error) if error is not None else "")

    async def warning(self, warning: Warning) -> None:
        # a warning of the whole build belongs to its definition, as in BuildKit
        await self.progress.warning(warning.vertex or self.definition, warning.short,
                                    list(warning.detail), warning.url)

    async def unused_args(self, names: Sequence[str]) -> None:
        return None     # BuildKit does not warn about them
