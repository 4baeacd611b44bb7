"""Connection hijacking for ``POST /containers/{id}/attach`` and ``POST /exec/{id}/start``.

The handler validates first (404/409 still go out as JSON), then ``hijack()`` answers
``101 UPGRADED`` (``200 OK`` without an ``Upgrade`` request header) and takes the socket
from aiohttp: a raw byte pipe where a peer half-close means "stdin ended", and
``closed`` means the client really left (connection lost, or EPOLLHUP as moby's
``notifyClosed`` watches). aiohttp neither writes to nor closes the socket afterwards; the
handler stays alive while the stream runs and returns ``Hijacked.response``.

Importing this module adjusts aiohttp's server side so that stdin, and even EOF, sent
right behind the request survive until hijack(); see ``_install_aiohttp_patches``.
"""

from __future__ import annotations

import asyncio
import fcntl
import select
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web, web_protocol
from aiohttp.http_parser import HttpRequestParserPy
from aiohttp.web_protocol import RequestHandler

from .server import api_version
from .streams import MEDIA_MULTIPLEXED, MEDIA_RAW, EscapeDetector, frames

READ_LIMIT = 64 * 1024          # most bytes one read() returns
READ_HIGH_WATER = 256 * 1024    # unread stdin above this pauses the socket
CLOSE_GRACE = 5.0               # how long close() lets buffered output flush
HEAD_WAIT = 0.5                 # longest wait for a client to read our response head
_OWN_HEADERS = {"content-type", "connection", "upgrade", "content-length", "transfer-encoding"}


class _StreamProtocol(asyncio.Protocol):
    """The hijacked socket's protocol: unread stdin, EOF, write flow control, hang-up."""

    def __init__(self, transport: asyncio.Transport | None, origin: RequestHandler) -> None:
        self.transport = transport          # None: the client left before hijack()
        self.origin = origin                # aiohttp's protocol, told when the socket is gone
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.eof = transport is None        # no more stdin: half-closed or gone
        self.write_paused = origin.writing_paused
        self.read_paused = False
        self.closed = asyncio.Event()       # the client went away
        self.lost = asyncio.Event()         # connection_lost() was called
        if transport is None:
            self.closed.set()
            self.lost.set()
        self._waiters: list[asyncio.Future[None]] = []
        self._epoll: select.epoll | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self.read_paused and self.transport:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True                         # keep the socket open: output goes on

    def connection_lost(self, exc: Exception | None) -> None:
        self.unwatch()
        self.eof = True
        self.closed.set()
        self.lost.set()
        self._wake()
        self.origin.connection_lost(exc)    # aiohttp's server forgets the connection

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    def take(self, limit: int) -> bytes:
        data = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        # never resume after EOF: the transport would read (and report) the EOF again
        if (self.read_paused and len(self.buffer) <= READ_HIGH_WATER // 4 and not self.eof
                and self.transport is not None):
            self.read_paused = False
            self.transport.resume_reading()
        return data

    async def changed(self) -> None:
        """Wait for any change: data, EOF, hang-up, loss, writable again."""
        waiter = self.loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def watch_hangup(self) -> None:
        """EPOLLHUP through a private epoll fd the loop polls: after EOF the loop no longer
        reads the socket, so asyncio alone would not notice the client leaving."""
        if self.transport is None or self.lost.is_set() or not hasattr(select, "epoll"):
            return
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return
        epoll = select.epoll(1)
        try:
            epoll.register(sock.fileno(), select.EPOLLHUP)
        except (OSError, ValueError):
            epoll.close()
            return
        self._epoll = epoll
        self.loop.add_reader(epoll.fileno(), self._hangup)

    def _hangup(self) -> None:
        self.unwatch()
        self.closed.set()
        self._wake()

    def unwatch(self) -> None:
        if self._epoll is not None:
            self.loop.remove_reader(self._epoll.fileno())
            self._epoll.close()     # drops the registration: never unregister a socket
            self._epoll = None      # fd number that may have been reused by now

    def abandon(self) -> None:
        """The hijacking task ended: close (flushing output), abort after a grace."""
        self.unwatch()
        if self.transport is not None and not self.lost.is_set():
            self.transport.close()
            self.loop.call_later(CLOSE_GRACE, self._abort)

    def _abort(self) -> None:
        if self.transport is not None and not self.lost.is_set():
            self.transport.abort()


class _Detached(web.StreamResponse):
    """What the handler returns: aiohttp "sends" it without writing, logs its status in
    the access log and ends the connection's request loop (no keep-alive)."""

    def __init__(self, status: int) -> None:
        super().__init__(status=status)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class StreamConnection(Protocol):
    """What pump() drives: a hijacked socket, or a websocket (api/attach.py)."""

    closed: asyncio.Event  # set when the client went away

    async def read(self) -> bytes:
        """Next stdin bytes; b"" once stdin ended."""

    async def write_frame(self, stream: int, data: bytes) -> None: ...

    async def head_taken(self) -> None:
        """Wait until the client has read the response head."""

    async def close_write(self) -> None:
        """End of output."""


class Hijacked:
    """The client's connection after hijack(): stdin in, output out."""

    def __init__(self, proto: _StreamProtocol, *, tty: bool, media_type: str,
                 status: int) -> None:
        self._proto = proto
        self.tty = tty
        self.media_type = media_type
        self.closed = proto.closed
        self.response: web.StreamResponse = _Detached(status)
        self._write_closed = False

    async def read(self, limit: int = READ_LIMIT) -> bytes:
        """Next stdin bytes; b"" once the client half-closed or went away."""
        proto = self._proto
        while not proto.buffer and not proto.eof and not proto.closed.is_set():
            await proto.changed()
        return proto.take(limit)

    async def write(self, data: bytes) -> None:
        """Raw bytes out, waiting while the socket buffer is full. Once the client is gone
        or our side is closed, data is dropped quietly: watch ``closed``."""
        proto = self._proto
        if not data or self._write_closed or proto.closed.is_set():
            return
        if proto.transport is None or proto.transport.is_closing():
            return
        proto.transport.write(data)
        while proto.write_paused and not proto.closed.is_set():
            await proto.changed()

    async def write_frame(self, stream: int, data: bytes) -> None:
        """stdcopy frames (32 KiB payloads at most) without a TTY; raw bytes with one."""
        if self.tty:
            await self.write(data)
            return
        for piece in frames(stream, data):
            await self.write(piece)

    async def head_taken(self, timeout: float = HEAD_WAIT) -> None:
        """Wait until the client has read our response head (bounded). Clients that read
        the head through a buffer and then switch to the raw socket (docker-py) lose what
        arrived with it: output that is ready at once (replayed logs) waits for this.
        The kernel counts what the peer has not read yet (SIOCOUTQ, the same request as
        termios.TIOCOUTQ: for a unix socket, bytes the peer has not read; for TCP, bytes
        it has not acknowledged)."""
        transport = self._proto.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.closed.is_set() and asyncio.get_running_loop().time() < deadline:
            try:
                pending = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                                         b"\0\0\0\0"))[0]
            except OSError:
                return
            if pending == 0:
                return
            await asyncio.sleep(0.001)

    async def close_write(self) -> None:
        """End of output: half-close our side once buffered bytes are sent (moby's
        CloseStreams). A transport that cannot half-close (TLS) is closed."""
        if self._write_closed:
            return
        self._write_closed = True
        transport = self._proto.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:             # shutdown() of a socket the peer already reset
            transport.abort()

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Close the connection; abort it if buffered output is not taken within grace."""
        proto = self._proto
        self._write_closed = True
        proto.unwatch()
        if proto.transport is None or proto.lost.is_set():
            return
        proto.transport.close()
        try:
            await asyncio.wait_for(proto.lost.wait(), grace)
        except TimeoutError:
            proto.transport.abort()

    async def linger(self, timeout: float = 2.0) -> None:
        """After close_write(): discard stdin until the client closes its side (or
        timeout). Closing a socket with unread input makes the kernel send RST, which
        can reach the client before it has read the end of our output."""
        async def drain() -> None:
            while await self.read():
                pass
        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            pass

    async def __aenter__(self) -> Hijacked:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def hijack(request: web.Request, *, tty: bool, upgrade: str = "") -> Hijacked:
    """Answer 101 (200 without ``Upgrade``) and take the connection over; call it before
    preparing any response. If the client already left, the result is closed from the
    start (reads give b"", writes are dropped, pump() returns "gone"): an exception
    here would make aiohttp log an error. With `upgrade` (h2c for BuildKit's /grpc and
    /session) the answer is the standard 101 switching to that protocol."""
    if upgrade:
        media_type = MEDIA_RAW
        status, head = 101, ["HTTP/1.1 101 Switching Protocols", "Connection: Upgrade",
                             f"Upgrade: {upgrade}"]
    elif "Upgrade" in request.headers:
        multiplexed = not tty and api_version(request) >= (1, 42)
        media_type = MEDIA_MULTIPLEXED if multiplexed else MEDIA_RAW
        status, head = 101, ["HTTP/1.1 101 UPGRADED", f"Content-Type: {media_type}",
                             "Connection: Upgrade", "Upgrade: tcp"]
    else:   # old clients and curl: a plain response whose body is the raw stream
        media_type = MEDIA_RAW
        status, head = 200, ["HTTP/1.1 200 OK", f"Content-Type: {media_type}"]
    head += await _app_headers(request)
    origin = request.protocol
    try:    # an unread request body is HTTP, not stream input
        while await request.content.readany():
            pass
    except ConnectionError:
        pass
    transport = request.transport
    if transport is None or transport.is_closing():
        return Hijacked(_StreamProtocol(None, origin), tty=tty, media_type=media_type,
                        status=499)

    current = transport.get_protocol()  # a _StreamProtocol if the client half-closed early
    proto = current if isinstance(current, _StreamProtocol) else _StreamProtocol(transport, origin)
    tail = getattr(origin, "_message_tail", b"")
    if tail:    # bytes behind the Upgrade request, buffered by aiohttp
        proto.data_received(tail)
        origin._message_tail = b""
    transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    transport.set_protocol(proto)
    origin.keep_alive(False)
    origin.close()                  # aiohttp's request loop ends after this request
    origin.transport = None         # so nothing of aiohttp's writes to or closes the socket
    if not proto.eof and not proto.read_paused:
        transport.resume_reading()  # aiohttp may have paused it while buffering the tail
    proto.watch_hangup()
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(lambda _: proto.abandon())
    return Hijacked(proto, tty=tty, media_type=media_type, status=status)


async def _app_headers(request: web.Request) -> list[str]:
    """The headers every response of the app gets (server.py: Api-Version, Server,
    Ostype, Docker-Experimental), through the apps' on_response_prepare signals."""
    scratch = web.StreamResponse()
    for app in request.match_info.apps:
        await app.on_response_prepare.send(request, scratch)
    lines = []
    for name, value in scratch.headers.items():
        if name.lower() in _OWN_HEADERS:
            continue
        if "\r" in name + value or "\n" in name + value:
            raise ValueError(f"invalid response header {name!r}")
        lines.append(f"{name}: {value}")
    return lines


async def pump(hijacked: StreamConnection, output: AsyncIterator[tuple[int, bytes]],
               stdin_sink: Callable[[bytes], Awaitable[None]] | None,
               on_stdin_eof: Callable[[], Awaitable[None]] | None,
               *, tty: bool, detach_keys: bytes | None) -> str:
    """Copy output (stream number, bytes) to the client and stdin to stdin_sink until
    output ends ("eof"), the client types the detach keys in TTY mode ("detached"; None
    or b"" mean ctrl-p,ctrl-q) or goes away ("gone"). "eof" and "detached" half-close our
    side. When stdin ends (or stdin_sink raises BrokenPipe/ConnectionReset) on_stdin_eof
    is awaited once and output goes on. Without stdin_sink stdin is not read at all.
    Exceptions from output and the callbacks propagate."""

    async def copy_output() -> None:
        async for stream, data in output:
            await hijacked.write_frame(stream, data)

    async def copy_input(sink: Callable[[bytes], Awaitable[None]]) -> bool:
        escape = EscapeDetector(detach_keys or b"") if tty else None
        try:
            while data := await hijacked.read():
                detached = False
                if escape is not None:
                    data, detached = escape.feed(data)
                if data:
                    await sink(data)
                if detached:
                    return True
            if escape is not None and (held := escape.flush()):
                await sink(held)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if on_stdin_eof is not None:
            await on_stdin_eof()
        return False

    out_task = asyncio.ensure_future(copy_output())
    gone_task = asyncio.ensure_future(hijacked.closed.wait())
    in_task = asyncio.ensure_future(copy_input(stdin_sink)) if stdin_sink is not None else None
    tasks: list[asyncio.Future[Any]] = [out_task, gone_task]
    if in_task is not None:
        tasks.append(in_task)
    try:
        waiting = set(tasks)
        while True:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if out_task in done:
                out_task.result()
                await hijacked.close_write()
                return "eof"
            if in_task in done and in_task is not None and in_task.result():
                await hijacked.close_write()
                return "detached"
            if gone_task in done:
                return "gone"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


_aiohttp_eof_received = RequestHandler.eof_received


def _eof_received(self: RequestHandler) -> bool | None:
    """On a connection the parser switched to an Upgrade nobody has claimed yet, a peer
    half-close is early "stdin ended": keep the socket, recorded in a _StreamProtocol
    that hijack() takes over. A handler that answers without hijacking gets its answer
    sent, then aiohttp closes. (A websocket whose client half-closed before prepare()
    would not see that EOF.)"""
    transport = self.transport
    if (self._upgraded and self._payload_parser is None and transport is not None
            and not transport.is_closing()):
        proto = _StreamProtocol(transport, self)
        proto.eof = True
        transport.set_protocol(proto)
        self.close()
        return True
    return _aiohttp_eof_received(self)


def _install_aiohttp_patches() -> None:
    """Process-wide, for aiohttp's server side only:

    * requests are parsed by aiohttp's pure-Python parser. The Cython parser treats only
      ``Upgrade: websocket`` as an upgrade (``_http_parser.pyx`` ALLOWED_UPGRADES) and
      drops the bytes behind an ``Upgrade: tcp`` request; the Python one
      (``http_parser.py`` _is_supported_upgrade) keeps them in ``_message_tail``.
      Measured: ~45 instead of ~28 us per request; chunked bodies parse faster.
    * ``RequestHandler.eof_received`` keeps an upgraded, unclaimed socket (above), where
      aiohttp would close it.
    """
    if getattr(web_protocol, "_dockerd_py_hijack", False):
        return
    web_protocol.HttpRequestParser = HttpRequestParserPy  # type: ignore[attr-defined]
    RequestHandler.eof_received = _eof_received  # type: ignore[method-assign,assignment]
    web_protocol._dockerd_py_hijack = True  # type: ignore[attr-defined]


_install_aiohttp_patches()
