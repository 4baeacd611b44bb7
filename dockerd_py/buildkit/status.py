"""Solve progress as BuildKit's Status stream carries it.

A Job is one Solve, by its ref. Its Progress turns build events (a vertex
started, cached, its output, completed or failed, a warning) into
StatusResponse messages; Status(ref) streams them, from the first, to every
watcher, and ends when the solve ends. Status may be called before Solve has
registered the ref (buildx starts both at once), so a watcher waits for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

from google.protobuf.timestamp_pb2 import Timestamp

from dockerd_py.protos.buildkit.control import control_pb2 as pb

JOB_WAIT = 30.0         # how long Status waits for its Solve to start


def _now() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def vertex_digest(*parts: str) -> str:
    """A stable digest for a vertex named by its parts (BuildKit's are op digests)."""
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


class Job:
    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.messages: list[pb.StatusResponse] = []
        self.done = False
        self._changed = asyncio.Condition()

    async def publish(self, message: pb.StatusResponse) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def finish(self) -> None:
        async with self._changed:
            self.done = True
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[pb.StatusResponse]:
        pos = 0
        while True:
            async with self._changed:
                while not self.done and pos >= len(self.messages):
                    await self._changed.wait()
                batch = self.messages[pos:]
                pos = len(self.messages)
                done = self.done
            for message in batch:
                yield message
            if done and pos == len(self.messages):
                return


class Jobs:
    """Jobs by ref. An ended job stays a while (LINGER), so that a Status call that
    arrives after its Solve ended (an early refusal) gets the whole stream at once
    instead of waiting for a job that will never come."""

    LINGER = 30.0

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._changed = asyncio.Condition()

    async def start(self, ref: str) -> Job:
        async with self._changed:
            old = self._jobs.get(ref)
            if old is not None and not old.done:
                raise ValueError(f"a build with ref {ref} is already running")
            job = self._jobs[ref] = Job(ref)
            self._changed.notify_all()
            return job

    async def end(self, job: Job) -> None:
        await job.finish()
        async with self._changed:
            self._changed.notify_all()
        asyncio.get_running_loop().call_later(self.LINGER, self._forget, job)

    def _forget(self, job: Job) -> None:
        if self._jobs.get(job.ref) is job:
            del self._jobs[job.ref]

    async def get(self, ref: str, wait: float = JOB_WAIT) -> Job | None:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: ref in self._jobs), wait)
            except TimeoutError:
                return None
            return self._jobs[ref]


class Progress:
    """Build events of one job, as Status messages."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._vertexes: dict[str, pb.Vertex] = {}
        self._order: list[str] = []
        self._statuses: dict[tuple[str, str], pb.VertexStatus] = {}

    async def _send(self, *, vertexes: list[pb.Vertex] | None = None,
                    logs: list[pb.VertexLog] | None = None,
                    warnings: list[pb.VertexWarning] | None = None) -> None:
        await self.job.publish(pb.StatusResponse(vertexes=vertexes, logs=logs,
                                                 warnings=warnings))

    async def started(self, digest: str, name: str, inputs: tuple[str, ...] = ()) -> None:
        v = self._vertexes.get(digest)
        if v is not None and not v.HasField("completed"):
            return      # already running (several stages share a base image's metadata)
        if v is None:
            v = self._vertexes[digest] = pb.Vertex(digest=digest, name=name,
                                                   inputs=list(inputs))
            self._order.append(digest)
        v.ClearField("completed")   # run again: a new interval, as BuildKit's
        v.started.CopyFrom(_now())
        await self._send(vertexes=[v])

    async def cached(self, digest: str) -> None:
        # the same `started`: clients key a vertex's intervals by it, and an interval
        # left open would keep the vertex running in their eyes
        v = self._vertexes[digest]
        v.cached = True
        v.completed.CopyFrom(v.started)
        await self._send(vertexes=[v])

    async def log(self, digest: str, stream: int, data: bytes) -> None:
        if not data:
            return
        entry = pb.VertexLog(vertex=digest, stream=stream, msg=data)
        entry.timestamp.CopyFrom(_now())
        await self._send(logs=[entry])

    async def completed(self, digest: str, error: str = "") -> None:
        v = self._vertexes[digest]
        if v.HasField("completed"):
            return
        v.completed.CopyFrom(_now())
        if error:
            v.error = error
        await self._send(vertexes=[v])

    async def status(self, digest: str, sid: str, *, current: int = 0, total: int = 0,
                     done: bool = False) -> None:
        """A sub-status of a vertex ("transferring context: 2kB", "naming to ...")."""
        now = _now()
        st = self._statuses.get((digest, sid))
        if st is None:
            st = self._statuses[(digest, sid)] = pb.VertexStatus(ID=sid, vertex=digest)
            st.started.CopyFrom(now)
        st.current, st.total = current, total
        st.timestamp.CopyFrom(now)
        if done:
            st.completed.CopyFrom(now)
        msg = pb.StatusResponse()
        msg.statuses.append(st)
        await self.job.publish(msg)

    async def warning(self, digest: str, short: str, detail: list[str] | None = None,
                      url: str = "") -> None:
        w = pb.VertexWarning(vertex=digest, level=1, short=short.encode(),
                             detail=[d.encode() for d in detail or ()], url=url)
        await self._send(warnings=[w])

    async def fail_open(self, error: str) -> None:
        """The build failed: vertexes still open end with it (as BuildKit's)."""
        for digest in self._order:
            v = self._vertexes[digest]
            if not v.HasField("completed"):
                await self.completed(digest, error)

    async def complete_open(self) -> None:
        for digest in self._order:
            if not self._vertexes[digest].HasField("completed"):
                await self.completed(digest)
