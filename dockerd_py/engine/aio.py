"""Bridges between async byte streams and blocking file objects.

Tar, gzip and hashing run in worker threads; request and response bodies are
async. `ThreadReader` lets a worker read an async iterator as a file;
`ThreadWriter` lets a worker write into an async consumer with backpressure
(a bounded queue), so neither side ever holds a whole body in memory. `run_all`
runs coroutines at once, none left running when it raises.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class ThreadReader:
    """A read-only file object over an async iterator, for use from one worker thread."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buf = memoryview(b"")
        self._eof = False

    async def _next(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""

    def _fill(self) -> bool:
        while not self._buf and not self._eof:
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if not chunk:
                self._eof = True
            self._buf = memoryview(chunk)
        return bool(self._buf)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while self._fill():
                parts.append(bytes(self._buf))
                self._buf = memoryview(b"")
            data = b"".join(parts)
        else:
            if not self._fill():
                return b""
            data = bytes(self._buf[:n])
            self._buf = self._buf[n:]
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to the end, so the client is not left blocked on a half-sent body."""
        while self._fill():
            self._buf = memoryview(b"")


class ThreadWriter:
    """A write-only file object feeding an async iterator (`chunks()`)."""

    _DONE = object()

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int = 16,
                 chunk_size: int = 256 * 1024) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[object] = asyncio.Queue(depth)
        self._pending = bytearray()
        self._chunk_size = chunk_size
        self.closed_by_reader = False

    def _put(self, item: object) -> None:
        if self.closed_by_reader:
            raise BrokenPipeError("reader went away")
        asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop).result()

    def write(self, data: bytes) -> int:
        self._pending += data
        if len(self._pending) >= self._chunk_size:
            self._put(bytes(self._pending))
            self._pending.clear()
        return len(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def finish(self, error: BaseException | None = None) -> None:
        if self._pending and error is None:
            self._put(bytes(self._pending))
            self._pending.clear()
        self._put(error if error is not None else self._DONE)

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while True:
                item = await self._queue.get()
                if item is self._DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.closed_by_reader = True
            while not self._queue.empty():  # unblock a writer waiting on a full queue
                self._queue.get_nowait()


async def produce(writer_fn: Callable[[ThreadWriter], None]) -> AsyncIterator[bytes]:
    """Run writer_fn(w) in a thread and yield what it writes."""
    loop = asyncio.get_running_loop()
    w = ThreadWriter(loop)

    def run() -> None:
        try:
            writer_fn(w)
        except BaseException as e:  # handed to the reader, which re-raises it
            try:
                w.finish(e)
            except BrokenPipeError:
                pass
            return
        try:
            w.finish()
        except BrokenPipeError:
            pass

    task = loop.run_in_executor(None, run)
    try:
        async for chunk in w.chunks():
            yield chunk
    finally:
        await task


async def run_all(*steps: Coroutine[Any, Any, Any]) -> list[Any]:
    """Run the steps at once; their results, in order. Every one has ended (none is left
    running to race the caller's cleanup) before the first failure, or the caller's
    cancellation, is raised."""
    tasks = [asyncio.ensure_future(s) for s in steps]
    try:
        await asyncio.wait(tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
        for t in tasks:
            if not t.cancelled():
                t.exception()  # retrieved: the cancellation is what is raised
        raise
    failures = [e for t in tasks if (e := t.exception()) is not None]
    if failures:
        raise failures[0]
    return [t.result() for t in tasks]
