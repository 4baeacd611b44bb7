"""The builds in flight, by ref: what Control.Solve started and the gateway calls
(LLBBridge, named by the "buildkit-controlapi-buildid" metadata) work on.

buildx runs its build function on the client: Control.Solve arrives with no
frontend and waits; the client then asks LLBBridge.Solve to run the Dockerfile
frontend (its result is kept here under a ref id) and hands the final result
back with LLBBridge.Return, which Control.Solve exports.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import grpc

from dockerd_py.protos.buildkit.control import control_pb2 as pb

from .sessions import LiveSession
from .status import Progress

GATEWAY_WAIT = 10.0     # how long a gateway call waits for its Solve to register


@dataclass(frozen=True)
class BuildResult:
    """What the Dockerfile frontend produced: an image of the store."""

    image_id: str
    config: bytes           # the image config, as buildx reads containerimage.config


@dataclass
class Returned:
    ref: str = ""           # a result ref id, "" for no result
    error: str = ""
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


class ReturnedError(Exception):
    """The client's build function failed (LLBBridge.Return with an error)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Build:
    def __init__(self, request: pb.SolveRequest, progress: Progress) -> None:
        self.ref = request.Ref
        self.request = request
        self.session: LiveSession | None = None     # found once the request is checked
        self.progress = progress
        self.results: dict[str, BuildResult] = {}
        self.returned: asyncio.Future[Returned] = asyncio.get_running_loop().create_future()
        self.ended = ""         # why the build is over ("" while it runs)
        self.ready = asyncio.Event()    # checked and its session found (or ended)
        self.cache_from: tuple[str, ...] = ()   # --cache-from images (cacheopts.py)
        self.inline_cache = False               # --cache-to type=inline
        self.started = time.time()              # the cache entries it uses are newer

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended = why
        self.ready.set()

    def keep(self, result: BuildResult) -> str:
        rid = secrets.token_hex(16)
        self.results[rid] = result
        return rid


class Builds:
    """Builds by ref; an ended one stays a while (LINGER) so that the client's late
    gateway calls end at once with its error instead of waiting for it."""

    LINGER = 30.0

    def __init__(self) -> None:
        self._builds: dict[str, Build] = {}
        self._changed = asyncio.Condition()

    async def add(self, build: Build) -> None:
        async with self._changed:
            self._builds[build.ref] = build
            self._changed.notify_all()

    async def remove(self, build: Build) -> None:
        asyncio.get_running_loop().call_later(self.LINGER, self._forget, build)

    def _forget(self, build: Build) -> None:
        if self._builds.get(build.ref) is build:
            del self._builds[build.ref]

    async def get(self, ref: str, wait: float = GATEWAY_WAIT) -> Build | None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: ref in self._builds),
                                       wait)
            except TimeoutError:
                return None
            return self._builds[ref]
