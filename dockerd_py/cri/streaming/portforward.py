"""Port forwarding (kubelet's portforward server).

SPDY (`portforward.k8s.io`, what `crictl port-forward` and kubectl speak): one
connection carries any number of forwarded connections; each is a pair of
client-opened streams with headers `streamType` (error|data), `port` and
`requestID`. When both of a pair exist the data stream is connected to the port
in the pod; a failure is written as text on the error stream, then both end.
The same SPDY session may also arrive tunnelled in websocket binary messages
(subprotocol `SPDY/3.1+portforward.k8s.io`, client-go's websocket dialer).

Websocket (`v4.channel.k8s.io`, kubelet's own): one connection per port given in
the request; channels 2i (data) and 2i+1 (error), each opened by a message of
the port as two little-endian bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable

from .channels import Channel, ChannelMux
from .contract import InputStream, OutputStream
from .http import Request, answer
from .remotecommand import negotiate_spdy
from .spdy import SpdyConnection, SpdyStream, StreamLink
from .websocket import BINARY, WebSocket, accept, choose_protocol, handshake_error

log = logging.getLogger(__name__)

SPDY_PROTOCOLS = ["portforward.k8s.io"]
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
WS_PROTOCOLS = ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"]
PAIR_TIMEOUT = 30.0          # kubelet's stream creation timeout
MAX_PAIRS = 128              # forwarded connections at once on one client connection
MAX_PORTS = 32               # ports of one websocket request

# Connects one forwarded connection: (port, from client, to client); raises on failure.
Forwarder = Callable[[int, InputStream, OutputStream], Awaitable[None]]


def parse_port(text: str) -> int | None:
    if not text.isdigit() or len(text) > 5:
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


class _Pair:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.data: SpdyStream | None = None
        self.error: SpdyStream | None = None
        self.complete = asyncio.Event()


class _SpdyForwarding:
    def __init__(self, pod: str, forward: Forwarder) -> None:
        self.pod = pod
        self.forward = forward
        self.pairs: dict[str, _Pair] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def on_stream(self, stream: SpdyStream) -> bool:
        kind = stream.header("streamtype")
        if parse_port(stream.header("port")) is None or kind not in ("error", "data"):
            return False
        request_id = stream.header("requestid")
        if not request_id:   # old clients: kubelet's guess from consecutive stream ids
            request_id = str(stream.id if kind == "error" else stream.id - 2)
        if len(request_id) > 64:
            return False
        pair = self.pairs.get(request_id)
        if pair is None:
            if len(self.pairs) >= MAX_PAIRS:
                return False
            pair = self.pairs[request_id] = _Pair(request_id)
            self._spawn(self._watch(pair))
        if getattr(pair, kind) is not None:
            return False
        setattr(pair, kind, stream)
        if pair.data is not None and pair.error is not None:
            pair.complete.set()
            self._spawn(self._forward(pair))
        return True

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _watch(self, pair: _Pair) -> None:
        try:
            await asyncio.wait_for(pair.complete.wait(), PAIR_TIMEOUT)
        except TimeoutError:
            if pair.error is not None:
                await pair.error.write(f"timed out waiting for streams of request "
                                       f"{pair.request_id}".encode())
                await pair.error.close()
            if pair.data is not None:
                await pair.data.reset()
        finally:
            self.pairs.pop(pair.request_id, None)

    async def _forward(self, pair: _Pair) -> None:
        assert pair.data is not None and pair.error is not None
        port = parse_port(pair.data.header("port")) or 0
        try:
            await self.forward(port, pair.data, pair.data)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.info("portforward: port %d of pod %s: %s", port, self.pod, e)
            await pair.error.write(f"error forwarding port {port} to pod {self.pod}, uid : "
                                   f"{e}".encode())
        finally:
            await pair.data.close()
            await pair.error.close()

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def serve_spdy(request: Request, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, pod: str, forward: Forwarder) -> None:
    if await negotiate_spdy(request, writer, SPDY_PROTOCOLS) is None:
        return
    await _run_spdy(StreamLink(reader, writer), pod, forward)


async def _run_spdy(link: StreamLink | _TunnelLink, pod: str, forward: Forwarder) -> None:
    handler = _SpdyForwarding(pod, forward)
    conn = SpdyConnection(link, handler.on_stream, max_streams=2 * MAX_PAIRS)
    try:
        await conn.serve()
    finally:
        await handler.stop()
        await conn.close()


class _TunnelLink:
    """SPDY bytes carried in websocket binary messages (client-go's tunnel)."""

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self._buf = bytearray()

    async def readexactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            message = await self._ws.receive()
            if message is None:
                raise asyncio.IncompleteReadError(bytes(self._buf), n)
            if message[0] == BINARY:
                self._buf += message[1]
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    async def write(self, data: bytes) -> None:
        if self._ws.closed:
            raise ConnectionError("websocket closed")
        await self._ws.send(BINARY, data)

    def close(self) -> None:
        if not self._ws.closed:
            asyncio.ensure_future(self._ws.close())


async def serve_websocket(request: Request, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter, pod: str, ports: list[int],
                          forward: Forwarder) -> None:
    if (err := handshake_error(request)) is not None:
        await answer(writer, 400, f"unable to upgrade websocket connection: {err}")
        return
    protocol = choose_protocol(request, [TUNNEL_PROTOCOL, *WS_PROTOCOLS])
    if protocol == TUNNEL_PROTOCOL:
        ws = await accept(request, reader, writer, protocol)
        await _run_spdy(_TunnelLink(ws), pod, forward)
        return
    if not ports:
        ports = []
        for value in request.query.get("port", []):
            for text in value.split(","):
                if (port := parse_port(text)) is None:
                    await answer(writer, 400, f'unable to parse "{value}" as a port')
                    return
                ports.append(port)
    if protocol is None or not ports or len(ports) > MAX_PORTS:
        await answer(writer, 400, "unable to upgrade websocket connection: "
                     + ("requested protocol(s) are not supported" if protocol is None
                        else 'query parameter "port" is required' if not ports
                        else "too many ports"))
        return
    ws = await accept(request, reader, writer, protocol)
    mux = ChannelMux(ws, [i % 2 == 0 for i in range(2 * len(ports))])
    reading = asyncio.ensure_future(mux.serve())
    try:
        for i, port in enumerate(ports):
            head = struct.pack("<H", port)
            await mux.channels[2 * i].write(head)
            await mux.channels[2 * i + 1].write(head)
        await asyncio.gather(*(_forward_channel(pod, port, mux.channels[2 * i],
                                                mux.channels[2 * i + 1], forward)
                               for i, port in enumerate(ports)))
    finally:
        await mux.close()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _forward_channel(pod: str, port: int, data: Channel, error: Channel,
                           forward: Forwarder) -> None:
    try:
        await forward(port, data, data)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        await error.write(f"error forwarding port {port} to pod {pod}, uid : {e}".encode())
