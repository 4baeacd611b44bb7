"""Attach routes: `POST /containers/{id}/attach` on a hijacked connection, and
`GET /containers/{id}/attach/ws` on a websocket (what aiodocker uses for stdin).

Both take dockerd's parameters: `logs` replays what the container wrote so far,
`stream` then follows it live (without it the attach ends after the logs), and
stdin/stdout/stderr choose the streams. The websocket carries raw output, never
multiplexed (the websocket keeps messages apart), in binary messages from API 1.28
on; before 1.42 it attaches all three streams whatever the query says.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from ..engine.containers.records import Container
from ..engine.runtime.logs import LogsNotReadable
from ..errors import DaemonError, InvalidParameter
from .hijack import StreamConnection, hijack, pump
from .httputil import query_bool
from .keys import CONTAINERS
from .server import api_version
from .streams import parse_detach_keys

routes = web.RouteTableDef()


@dataclass(frozen=True)
class _Asked:
    stdin: bool
    stdout: bool
    stderr: bool
    logs: bool
    stream: bool
    detach_keys: bytes | None


def _asked(request: web.Request, c: Container, *, all_streams: bool = False) -> _Asked:
    keys = request.query.get("detachKeys")
    try:
        detach_keys = parse_detach_keys(keys) if keys else None
    except ValueError:
        raise InvalidParameter(f"Invalid detach keys ({keys}) provided") from None
    stdin, stdout, stderr = ((True, True, True) if all_streams else
                             (query_bool(request, "stdin"), query_bool(request, "stdout"),
                              query_bool(request, "stderr")))
    return _Asked(stdin and bool(c.config.get("OpenStdin")), stdout, stderr,
                  query_bool(request, "logs"), query_bool(request, "stream"), detach_keys)


async def _serve(request: web.Request, c: Container, conn: StreamConnection,
                 asked: _Asked) -> None:
    """The logs asked for, then the live streams; DaemonError before any output."""
    containers = request.app[CONTAINERS]
    if asked.logs and (asked.stdout or asked.stderr):
        await conn.head_taken()
        try:
            messages = containers.logs(c.id, stdout=asked.stdout, stderr=asked.stderr)
        except LogsNotReadable as e:
            await conn.write_frame(1, _not_readable(e.driver))
            return
        async for stream, data, _ in messages:
            await conn.write_frame(stream, data)
    c, stdio = await containers.attach(c.id, live=asked.stream)
    if stdio is None:
        return
    want = {1: asked.stdout, 2: asked.stderr}

    async def output() -> AsyncIterator[tuple[int, bytes]]:
        while (item := await stdio.recv()) is not None:
            if c.tty or want.get(item[0], False):
                yield item

    async def stdin(data: bytes) -> None:
        await stdio.send(data)

    async def stdin_eof() -> None:
        # As dockerd: the client's EOF closes the container's stdin only for StdinOnce
        # without a TTY (`echo x | docker run -i ...`); otherwise stdin stays open.
        if c.config.get("StdinOnce") and not c.tty:
            stdio.close_stdin()

    try:
        await pump(conn, output(), stdin if asked.stdin else None,
                   stdin_eof if asked.stdin else None, tty=c.tty,
                   detach_keys=asked.detach_keys)
    finally:
        stdio.close()


def _not_readable(driver: str) -> bytes:
    """What dockerd 20.10 writes, on stdout, when asked to replay the logs of a
    container whose driver keeps none (it looks for a `none` logger it does not
    have), before it ends the attach."""
    return (f"Error attaching: failed to get logging factory: logger: no log driver named "
            f"'{driver}' is registered: error looking up logging plugin {driver}: plugin "
            f'"{driver}" not found\n').encode()


@routes.post("/containers/{id}/attach")
async def attach_container(request: web.Request) -> web.StreamResponse:
    c = request.app[CONTAINERS].get(request.match_info["id"])
    asked = _asked(request, c)
    # The 101 goes out before the container's output is connected (see start_exec).
    hijacked = await hijack(request, tty=c.tty)
    try:
        await _serve(request, c, hijacked, asked)
        await hijacked.close_write()
        await hijacked.linger()
    except DaemonError as e:
        await hijacked.write_frame(2, f"{e}\n".encode())
        await hijacked.close_write()
    finally:
        await hijacked.close()
    return hijacked.response


@routes.get("/containers/{id}/attach/ws")
async def attach_websocket(request: web.Request) -> web.StreamResponse:
    c = request.app[CONTAINERS].get(request.match_info["id"])
    version = api_version(request)
    asked = _asked(request, c, all_streams=version < (1, 42))
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    conn = _WebSocketConnection(ws, binary=version >= (1, 28))
    try:
        await _serve(request, c, conn, asked)
    except DaemonError as e:
        await conn.write_frame(2, f"{e}\n".encode())
    finally:
        await conn.close()
    return ws


class _WebSocketConnection:
    """A websocket as the stream connection pump() drives: every message in is stdin,
    every write out is one message; a close from the client ends both."""

    def __init__(self, ws: web.WebSocketResponse, *, binary: bool) -> None:
        self._ws = ws
        self._opcode = WSMsgType.BINARY if binary else WSMsgType.TEXT
        self._stdin: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read_messages())

    async def _read_messages(self) -> None:
        # One reader owns receive(): the client's close must be seen even when stdin
        # is not asked for.
        try:
            async for msg in self._ws:
                if msg.type == WSMsgType.TEXT:
                    self._stdin.put_nowait(msg.data.encode())
                elif msg.type == WSMsgType.BINARY:
                    self._stdin.put_nowait(msg.data)
        finally:
            self._stdin.put_nowait(b"")
            self.closed.set()

    async def read(self) -> bytes:
        """Next stdin bytes; b"" once the client closed."""
        if self.closed.is_set() and self._stdin.empty():
            return b""
        return await self._stdin.get()

    async def write_frame(self, stream: int, data: bytes) -> None:
        if data and not self._ws.closed and not self.closed.is_set():
            with contextlib.suppress(ConnectionError):
                await self._ws.send_frame(data, self._opcode)

    async def head_taken(self) -> None:
        """Websocket messages are framed: nothing can be read with the handshake."""

    async def close_write(self) -> None:
        """A websocket cannot half-close: the output ends with the connection."""

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
