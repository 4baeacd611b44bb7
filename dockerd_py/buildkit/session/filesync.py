"""File transfer over a session: the build context from the client (FileSync.DiffCopy,
the daemon receiving), exports back to it (FileSend.DiffCopy, the daemon sending).

Receiving, the event loop only moves raw messages: a thread of the transfer's own
parses and applies them (receive.py), and asks for file data through the loop. The
number of messages in flight between the two is bounded, so a fast client waits on
gRPC's flow control rather than filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import threading
from collections.abc import AsyncIterable, Iterable
from pathlib import Path
from typing import Any

from builder.dockerignore import Matcher
from dockerd_py.protos.buildkit.session import filesync_pb2
from dockerd_py.protos.fsutil import wire_pb2

from .calls import EOF, open_stream
from .receive import TreeWriter
from .record import FILESEND_DIFFCOPY, FILESYNC_DIFFCOPY, Session, SessionError
from .send import TreeSender
from .wire import (
    DEFAULT_LIMITS,
    KEY_DIR_NAME,
    KEY_EXCLUDE,
    KEY_EXPORTER_ID,
    KEY_FOLLOW,
    KEY_INCLUDE,
    Limits,
    encode_metadata,
    patterns,
)

P = wire_pb2.Packet
_IN_FLIGHT = 256       # messages between the gRPC reader and the writing thread
_RELEASE_EVERY = 32
_SEND_CHUNK = 1 << 20  # file data per DATA packet we send (gRPC's limit is 4 MiB)
_TAR_CHUNK = 3 << 20   # as buildkit's streamWriterCloser splits a file
_STATS_BATCH = 512
_DIR_NAME = re.compile(r"[A-Za-z0-9_.:/@-]{1,255}")
_ROOT = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_EXPORTER = ((KEY_EXPORTER_ID, "0"),)   # the request's one exporter (buildkit numbers them)


def _packet(kind: int, **fields: Any) -> bytes:
    data: bytes = P(type=kind, **fields).SerializeToString()  # type: ignore[arg-type]
    return data


async def sync_directory(session: Session, name: str, dest: Path, *,
                         include: Iterable[str] = (), exclude: Iterable[str] = (),
                         follow_paths: Iterable[str] = (), limits: Limits = DEFAULT_LIMITS) -> None:
    """Make dest a copy of the client's directory `name` ("context", "dockerfile", a
    --build-context name) filtered by the .dockerignore-style patterns. dest is made if
    missing; what it holds from an earlier sync is reused where unchanged. On an error
    dest is left incomplete: the caller discards it."""
    session.require(FILESYNC_DIFFCOPY, "file sync")
    if not _DIR_NAME.fullmatch(name):
        raise SessionError(f"invalid local directory name {name[:100]!r}")
    inc, exc = patterns(include, "include patterns"), patterns(exclude, "exclude patterns")
    follow = patterns(follow_paths, "follow paths")
    opts = {KEY_DIR_NAME: [name]}
    for key, values in ((KEY_INCLUDE, inc), (KEY_EXCLUDE, exc), (KEY_FOLLOW, follow)):
        if values:
            opts[key] = values
    root_fd = await asyncio.to_thread(_open_dest, dest)
    try:
        writer = TreeWriter(root_fd, lambda sid: None, limits=limits,
                            include=Matcher(inc) if inc else None,
                            exclude=Matcher(exc) if exc else None)
        stream = open_stream(session, FILESYNC_DIFFCOPY, None, None, encode_metadata(opts))
        await _Receiving(stream, writer).run()
    finally:
        os.close(root_fd)


def _open_dest(dest: Path) -> int:
    with contextlib.suppress(FileExistsError):
        os.mkdir(dest, 0o755)
    return os.open(dest, _ROOT)


class _Receiving:
    """One DiffCopy as fsutil's receiver runs it: REQ every file wanted, FIN once all have
    arrived, then read to the end of the stream."""

    def __init__(self, stream: Any, writer: TreeWriter) -> None:
        self.stream, self.writer = stream, writer
        self.loop = asyncio.get_running_loop()
        self.outgoing: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.room = asyncio.Semaphore(_IN_FLIGHT)
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.stop = threading.Event()
        writer.request = self._request

    def _request(self, sid: int) -> None:  # on the writing thread
        self.loop.call_soon_threadsafe(self.outgoing.put_nowait, _packet(P.PACKET_REQ, ID=sid))

    def _work(self) -> None:
        """The writing thread: apply messages until everything asked for has arrived."""
        error: BaseException | None = None
        try:
            taken = 0
            while not self.stop.is_set():
                raw = self.inbox.get()
                taken += 1
                if taken == _RELEASE_EVERY or self.inbox.empty():  # one wake-up per batch
                    self.loop.call_soon_threadsafe(self._release, taken)
                    taken = 0
                if raw is None:
                    raise SessionError("the client ended the file transfer early")
                if self.writer.packet(raw):
                    self.writer.finish()
                    break
        except BaseException as e:  # handed to the event loop
            error = e
        finally:
            self.writer.close()
        self.loop.call_soon_threadsafe(self._settle, error)

    def _release(self, n: int) -> None:
        for _ in range(n):
            self.room.release()

    def _settle(self, error: BaseException | None) -> None:
        if self.done.done() or self.stop.is_set():
            return  # the transfer already ended otherwise (cancelled, the call failed)
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)

    async def _read(self) -> None:
        while True:
            message = await self.stream.read()
            if message is EOF:
                break
            if self.done.done():
                continue  # the sender's FIN
            await self.room.acquire()
            self.inbox.put(message)
        self.inbox.put(None)

    async def _write(self) -> None:
        while (raw := await self.outgoing.get()) is not None:
            await self.stream.write(raw)

    async def run(self) -> None:
        thread = threading.Thread(target=self._work, name="filesync-receive", daemon=True)
        thread.start()
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write())
        try:
            await asyncio.wait({self.done, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and reader.exception() is not None and not self.done.done():
                raise _rpc(reader.exception())
            await self.done
            self.outgoing.put_nowait(_packet(P.PACKET_FIN))
            self.outgoing.put_nowait(None)
            await writer
            await reader  # to the sender's FIN and the end of the call
            with contextlib.suppress(Exception):
                await self.stream.done_writing()
        except BaseException as e:
            await self._abort(e, reader, writer)
            if isinstance(e, (SessionError, asyncio.CancelledError)):
                raise
            raise _rpc(e) from None
        finally:
            self.stop.set()
            self.inbox.put(None)
            await asyncio.to_thread(thread.join)
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    async def _abort(self, error: BaseException, reader: asyncio.Task[None],
                     writer: asyncio.Task[None]) -> None:
        """Tell the sender why (fsutil prints "error from receiver: ..."), and give it a
        moment to end the call on that, so the cancel that follows does not overtake it.
        The ERR goes through the writing task: gRPC refuses concurrent writes."""
        if not isinstance(error, asyncio.CancelledError) and not self.stream.done() \
                and not writer.done():
            self.stop.set()
            self.outgoing.put_nowait(_packet(P.PACKET_ERR, data=str(error)[:2000].encode()))
            self.outgoing.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(writer), 5)
                await asyncio.wait_for(self.stream.done_writing(), 5)
            self.inbox.put(None)  # the writing thread may be gone: room for the reader
            self._release(_IN_FLIGHT)
            await asyncio.wait({reader}, timeout=5)
        self.stream.cancel()


def _rpc(error: BaseException | None) -> SessionError:
    if isinstance(error, SessionError):
        return error
    details = getattr(error, "details", None)
    text = details() if callable(details) else str(error)
    return SessionError(f"file transfer failed: {text}")


async def send_directory(session: Session, src: Path) -> None:
    """`--output type=local`: send the tree src to the client's directory (fsutil's
    sender, as buildkit's CopyToCaller)."""
    session.require(FILESEND_DIFFCOPY, "local export")
    stream = open_stream(session, FILESEND_DIFFCOPY, None, None, _EXPORTER)
    sender = await asyncio.to_thread(TreeSender, str(src))
    lock = asyncio.Lock()
    requests: asyncio.Queue[int | None] = asyncio.Queue()

    async def write(raw: bytes) -> None:
        async with lock:
            await stream.write(raw)

    async def listing() -> None:
        stats = sender.stats()
        while batch := await asyncio.to_thread(_take, stats, _STATS_BATCH):
            for raw in batch:
                await write(raw)
        await write(_packet(P.PACKET_STAT))

    async def contents() -> None:
        while (file_id := await requests.get()) is not None:
            fd = await asyncio.to_thread(sender.open, file_id)
            try:
                while fd is not None and (data := await asyncio.to_thread(
                        os.read, fd, _SEND_CHUNK)):
                    await write(_packet(P.PACKET_DATA, ID=file_id, data=data))
            finally:
                if fd is not None:
                    os.close(fd)
            await write(_packet(P.PACKET_DATA, ID=file_id))

    async def answers() -> None:
        while (message := await stream.read()) is not EOF:
            p = P.FromString(message)
            if p.type == P.PACKET_REQ:
                if not sender.has(p.ID):
                    raise SessionError(f"local export: invalid file id {p.ID} requested")
                requests.put_nowait(p.ID)
            elif p.type == P.PACKET_ERR:
                raise SessionError("local export: error from receiver: "
                                   + p.data[:1000].decode("utf-8", "replace"))
            elif p.type == P.PACKET_FIN:
                requests.put_nowait(None)
                await sending  # every requested file is written before FIN
                await write(_packet(P.PACKET_FIN))
                await stream.done_writing()
                return
        raise SessionError("local export: the client ended the transfer early")

    walking = asyncio.create_task(listing())
    sending = asyncio.create_task(contents())
    try:
        await answers()
        await walking
        while await stream.read() is not EOF:
            pass
    except BaseException as e:
        stream.cancel()
        if isinstance(e, (SessionError, asyncio.CancelledError)):
            raise
        raise _rpc(e) from None
    finally:
        for task in (walking, sending):
            task.cancel()
        await asyncio.gather(walking, sending, return_exceptions=True)
        await asyncio.to_thread(sender.close)


def _take(stats: Any, n: int) -> list[bytes]:
    out = []
    for st in stats:
        out.append(_packet(P.PACKET_STAT, stat=st))
        if len(out) == n:
            break
    return out


async def send_tar(session: Session, chunks: AsyncIterable[bytes]) -> None:
    """`--output type=tar`: stream the bytes to the client's file as BytesMessages
    (buildkit's CopyFileWriter), then wait for it to close it."""
    session.require(FILESEND_DIFFCOPY, "file export")
    stream = open_stream(session, FILESEND_DIFFCOPY,
                         filesync_pb2.BytesMessage.SerializeToString,
                         filesync_pb2.BytesMessage.FromString, _EXPORTER)
    try:
        async for chunk in chunks:
            for start in range(0, len(chunk), _TAR_CHUNK):
                await stream.write(filesync_pb2.BytesMessage(data=chunk[start:start + _TAR_CHUNK]))
        await stream.done_writing()
        while await stream.read() is not EOF:
            pass
    except BaseException as e:
        stream.cancel()
        if isinstance(e, (SessionError, asyncio.CancelledError)):
            raise
        raise _rpc(e) from None
