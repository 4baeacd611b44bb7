"""What a build reports while it runs: steps as BuildKit's vertexes, and their events.

The builder calls a `BuildObserver`; the legacy `POST /build` stream
(`legacy.LegacyRenderer`) and BuildKit's Status stream (the gRPC front end)
are two observers of the same events.

A vertex is one step. Its digest is stable: the same step of the same
Dockerfile (same stage, same position, same text, same parent step) has the
same digest in every build, as BuildKit's vertex digests are (they come from
the LLB, which names sources but never their content). Its name is
BuildKit's ("[stage-1 2/5] RUN make", "[internal] load metadata for ...").
Steps BuildKit shows no vertex for (ENV, LABEL, ... and the ARGs before the
first FROM) are vertexes with `hidden=True`: the legacy output has a "Step N/M"
line for them, a BuildKit client shows nothing.

Order of events for one vertex: started, then any of cached / status /
container / log / triggers, then completed (with the error that ended it, or
None, and the image the step left: None for steps that leave none). Vertexes
of concurrent stages interleave; `stage` tells them apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STDOUT, STDERR = 1, 2


@dataclass(frozen=True)
class Vertex:
    digest: str                  # "sha256:<hex>", stable across builds
    name: str                    # BuildKit's name of the step
    stage: int = -1              # index of the stage in the Dockerfile; -1: not a stage's
    inputs: tuple[str, ...] = ()  # digests of the vertexes this one follows
    hidden: bool = False         # a step BuildKit does not show (metadata, meta ARG)
    step: int = 0                # the legacy "Step N/M": N (0: no such line)
    total: int = 0               # M
    original: str = ""           # the instruction as written ("Step N/M : <original>")
    trigger: bool = False        # an ONBUILD trigger run by a FROM (no Step line of its own)


def vertex_digest(*parts: object) -> str:
    """A stable digest of what identifies a step."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def internal(name: str, *inputs: str) -> Vertex:
    """A vertex of the build's own work ("[internal] load build definition from
    Dockerfile", "exporting to image"): its digest is its name's."""
    return Vertex(vertex_digest("internal", name, inputs), name, inputs=tuple(inputs))


@dataclass(frozen=True)
class Warning:
    """A build check or parser warning (BuildKit's VertexWarning)."""

    short: str                   # "JSONArgsRecommended: JSON arguments recommended ... (line 3)"
    #                              ("": for the legacy output only; never sent on a
    #                              BuildKit build)
    rule: str = ""               # the check's name; "" for the parser's own warnings
    detail: tuple[str, ...] = ()  # the check's description, one entry per line
    url: str = ""                # the check's documentation
    line: int = 0                # 1-based line in the Dockerfile; 0: none
    level: int = 1               # 1: warning (BuildKit's only level in use)
    vertex: str = ""             # digest of the vertex it belongs to ("": the build's)
    legacy: str = ""             # what the legacy builder prints for it ("": nothing)


class BuildObserver(Protocol):
    """Receives a build's events. Implementations must not block: they are awaited
    on the daemon's event loop, in the order the events happen."""

    async def started(self, vertex: Vertex) -> None:
        """The step starts (its inputs are done)."""

    async def cached(self, vertex: Vertex) -> None:
        """The step's result came from the build cache."""

    async def status(self, vertex: Vertex, message: dict[str, Any]) -> None:
        """Progress of a transfer the step does (a pull, an ADD download), as a JSON
        message of the pull protocol: {"id", "status", "progressDetail": {current,
        total}, "progress"}; {"stream": text} for the legacy output's extra lines."""

    async def container(self, vertex: Vertex, container_id: str, running: bool) -> None:
        """The step's build container was started (running) or removed."""

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        """Output of the step's command: fd 1 stdout, 2 stderr."""

    async def triggers(self, vertex: Vertex, count: int) -> None:
        """A FROM's image has `count` ONBUILD triggers; their vertexes (trigger=True) follow
        before the FROM completes."""

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        """The step is over: error None on success; image_id the step's image ("" for
        scratch, None when it leaves none)."""

    async def warning(self, warning: Warning) -> None:
        """A build check or parser warning."""

    async def unused_args(self, names: Sequence[str]) -> None:
        """Build args no ARG consumed (the legacy builder warns about them)."""

    async def stage_done(self, stage: int, image_id: str) -> None:
        """A stage's last step is done; image_id its result."""

    async def done(self, image_id: str, tags: Sequence[str]) -> None:
        """The build succeeded: its image, tagged with tags (normalized references)."""


class NullObserver:
    """An observer that ignores everything: subclass it and override what you need."""

    ordered = False  # True: events of later stages are held until earlier ones are done

    async def started(self, vertex: Vertex) -> None:
        pass

    async def cached(self, vertex: Vertex) -> None:
        pass

    async def status(self, vertex: Vertex, message: dict[str, Any]) -> None:
        pass

    async def container(self, vertex: Vertex, container_id: str, running: bool) -> None:
        pass

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        pass

    async def triggers(self, vertex: Vertex, count: int) -> None:
        pass

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        pass

    async def warning(self, warning: Warning) -> None:
        pass

    async def unused_args(self, names: Sequence[str]) -> None:
        pass

    async def stage_done(self, stage: int, image_id: str) -> None:
        pass

    async def done(self, image_id: str, tags: Sequence[str]) -> None:
        pass
