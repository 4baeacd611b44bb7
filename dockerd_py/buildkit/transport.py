"""gRPC over a hijacked API connection.

`POST /grpc` and `POST /session` upgrade to h2c and then carry HTTP/2 with prior
knowledge. grpcio only speaks over sockets it opens itself, so each hijacked
connection is spliced byte for byte to a private unix socket (in a 0700
directory under the exec root):

  * /grpc: to the daemon's internal grpc.aio server, which serves BuildKit's
    Control service; every upgraded connection is one more client of it.
  * /session: the roles are reversed (the client serves FileSync, Secrets, ...
    and the daemon calls them), so each session gets its own listening socket
    that a grpc.aio channel dials; its one accepted connection is spliced to
    the hijacked one, and the socket is removed at once (a reconnect fails
    instead of reaching anyone else).

grpcio over a splice rather than grpclib: grpcio is already the project's gRPC
(generated modules, the CRI server), and its C core handles flow control,
keepalive and large streams well; the splice costs one copy per direction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from typing import Any, Protocol, cast

import grpc

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
HALF_CLOSE_GRACE = 5.0
# BuildKit's client and session limits (defaults.DefaultMaxRecvMsgSize/SendMsgSize).
MAX_MESSAGE = 16 << 20
GRPC_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE)]


class Pipe(Protocol):
    """A hijacked client connection: raw bytes both ways (api/hijack.py's Hijacked)."""

    closed: asyncio.Event

    async def read(self, limit: int = ...) -> bytes:
        """The next bytes; b"" once the client half-closed or left."""

    async def write(self, data: bytes) -> None: ...

    async def close_write(self) -> None: ...

    async def close(self, grace: float = ...) -> None: ...


class SocketDir:
    """The private directory of the internal sockets."""

    def __init__(self, exec_root: str) -> None:
        parent = os.path.join(exec_root, "buildkit")
        os.makedirs(parent, mode=0o700, exist_ok=True)
        os.chmod(parent, 0o700)
        # a fresh directory per daemon run: nothing a previous one left is reused
        for stale in os.listdir(parent):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
        self.path = tempfile.mkdtemp(prefix="s", dir=parent)
        self._n = 0

    def new(self, prefix: str) -> str:
        self._n += 1
        return os.path.join(self.path, f"{prefix}{self._n}.sock")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


async def splice(pipe: Pipe, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy both ways until the socket side ends or the client leaves. A half-close by
    the client is passed on, and what the socket side still sends is copied for a
    while (HALF_CLOSE_GRACE); then both are closed."""

    async def inbound() -> None:       # client -> socket
        try:
            while data := await pipe.read(CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass

    async def outbound() -> None:      # socket -> client
        try:
            while data := await reader.read(CHUNK):
                await pipe.write(data)
        except (ConnectionError, OSError):
            pass
        await pipe.close_write()

    into = asyncio.ensure_future(inbound())
    out = asyncio.ensure_future(outbound())
    gone = asyncio.ensure_future(pipe.closed.wait())
    try:
        done, _ = await asyncio.wait([out, gone, into], return_when=asyncio.FIRST_COMPLETED)
        if into in done and not out.done() and not gone.done():
            await asyncio.wait([out, gone], timeout=HALF_CLOSE_GRACE,
                               return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (into, out, gone):
            task.cancel()
        await asyncio.gather(into, out, gone, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
        await pipe.close(1.0)


class ControlServer:
    """The internal grpc.aio server every /grpc connection is spliced to."""

    def __init__(self, sockets: SocketDir) -> None:
        self.path = sockets.new("control")
        self.server = grpc.aio.server(options=GRPC_OPTIONS + [
            # buildx's clients may ping on idle connections: do not answer with GOAWAY
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.http2.max_ping_strikes", 0),
        ])

    async def start(self) -> None:
        self.server.add_insecure_port("unix:" + self.path)
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(grace=1.0)

    async def serve(self, pipe: Pipe) -> None:
        """One client connection, until it ends."""
        reader, writer = await asyncio.open_unix_connection(self.path, limit=CHUNK)
        await splice(pipe, reader, writer)


class SessionLink:
    """The daemon's gRPC channel to the services one client session exposes."""

    def __init__(self, sockets: SocketDir) -> None:
        self.path = sockets.new("session")
        self.channel: grpc.aio.Channel | None = None
        self._server: asyncio.AbstractServer | None = None
        self._accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future())

    async def open(self) -> grpc.aio.Channel:
        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self._accepted.done():       # only the first connection is the session's
                writer.close()
                return
            self._accepted.set_result((reader, writer))

        self._server = await asyncio.start_unix_server(accept, self.path, limit=CHUNK)
        os.chmod(self.path, 0o600)
        self.channel = grpc.aio.insecure_channel(
            "unix:" + self.path,
            options=GRPC_OPTIONS + [("grpc.use_local_subchannel_pool", 1),
                                    # the stream window the client may fill before our
                                    # reader catches up: at the default 64 KiB, fsutil's
                                    # 32 KiB DATA packets stall the sender on every
                                    # second message (a 50 MB context: ~0.6 s -> ~0.45 s)
                                    ("grpc.http2.lookahead_bytes", 8 << 20),
                                    ("grpc.enable_retries", 0),
                                    ("grpc.default_authority", "localhost")])
        return self.channel

    async def serve(self, pipe: Pipe) -> None:
        """Connect the channel and splice its connection to the client's until either
        ends; then the channel is closed."""
        assert self.channel is not None and self._server is not None
        self.channel.get_state(try_to_connect=True)
        accepted = self._accepted
        gone: asyncio.Future[Any] = asyncio.ensure_future(pipe.closed.wait())
        try:
            await asyncio.wait([cast("asyncio.Future[Any]", accepted), gone],
                               return_when=asyncio.FIRST_COMPLETED)
            if accepted.done():
                self._server.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
                reader, writer = accepted.result()
                await splice(pipe, reader, writer)
        finally:
            accepted.cancel()
            gone.cancel()
            await self.close()
            await pipe.close(1.0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self.channel is not None:
            await self.channel.close(None)
