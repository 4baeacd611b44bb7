"""Server side of RFC 6455 websockets, over the raw connection http.py upgraded:
the handshake with subprotocol choice, masked client frames, fragmentation,
ping/pong and the close handshake. No extensions (compression) are offered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import struct

from .http import Request, response

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 4 * 1024 * 1024   # a client message (all its fragments) at most
IDLE_TIMEOUT = 4 * 3600.0       # kubelet's StreamIdleTimeout: no frame either way this long
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG = 1000, 1002, 1009


class WebSocketError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def is_websocket(request: Request) -> bool:
    """As k8s' wsstream.IsWebSocketRequest: Connection: upgrade and Upgrade: websocket."""
    return (request.has_token("connection", "upgrade")
            and request.header("upgrade").lower() == "websocket")


def handshake_error(request: Request) -> str | None:
    if request.method != "GET":
        return "websocket upgrades use GET"
    if request.header("sec-websocket-version") != "13":
        return "unsupported websocket version"
    try:
        key = base64.b64decode(request.header("sec-websocket-key"), validate=True)
    except ValueError:
        return "bad Sec-WebSocket-Key"
    return None if len(key) == 16 else "bad Sec-WebSocket-Key"


def choose_protocol(request: Request, supported: list[str]) -> str | None:
    """The first subprotocol the client offers that the server supports (the client's
    order, as k8s' wsstream chooses); "" when the client offers none; None when it
    offers only unsupported ones."""
    offered = request.header_values("sec-websocket-protocol")
    if not offered:
        return ""
    return next((p for p in offered if p in supported), None)


async def accept(request: Request, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, protocol: str) -> WebSocket:
    """Answer 101 (handshake_error() must have passed)."""
    key = request.header("sec-websocket-key").encode()
    digest = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Accept", digest)]
    if protocol:
        headers.append(("Sec-WebSocket-Protocol", protocol))
    writer.write(response(101, headers))
    await writer.drain()
    return WebSocket(reader, writer, protocol)


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 protocol: str) -> None:
        self.protocol = protocol
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self.closed = False          # our close frame went out (or the link is gone)
        self.idle_timeout = IDLE_TIMEOUT
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._watchdog = asyncio.ensure_future(self._watch_idle())

    async def _watch_idle(self) -> None:
        while not self.closed:
            left = self._last_activity + self.idle_timeout - self._loop.time()
            if left <= 0:
                await self.close(CLOSE_NORMAL, "idle")
                return
            await asyncio.sleep(left)

    async def receive(self) -> tuple[int, bytes] | None:
        """The next whole message (TEXT or BINARY, payload); None once the peer
        closed or the connection ended. Answers pings and closes itself."""
        try:
            return await self._receive()
        except WebSocketError as e:
            await self.close(e.code, str(e))
            return None
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed = True
            self._watchdog.cancel()
            return None

    async def _receive(self) -> tuple[int, bytes] | None:
        opcode = None
        parts: list[bytes] = []
        size = 0
        while True:
            fin, op, payload = await self._frame()
            if op >= 0x8:                       # control frames, possibly between fragments
                if op == CLOSE:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1000
                    await self.close(code if code in (1000, 1001) else CLOSE_NORMAL)
                    return None
                if op == PING:
                    await self._send(PONG, payload)
                elif op != PONG:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "unknown control frame")
                continue
            if op == CONTINUATION:
                if opcode is None:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "unexpected continuation")
            elif op in (TEXT, BINARY):
                if opcode is not None:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "expected a continuation")
                opcode = op
            else:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            size += len(payload)
            if size > MAX_MESSAGE:
                raise WebSocketError(CLOSE_TOO_BIG, "message too big")
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    async def _frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = await self._reader.readexactly(2)
        self._last_activity = self._loop.time()
        if b0 & 0x70:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved bits set")
        if not b1 & 0x80:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        fin, op, length = bool(b0 & 0x80), b0 & 0x0F, b1 & 0x7F
        if op >= 0x8 and (not fin or length > 125):
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "bad control frame")
        if length == 126:
            length = struct.unpack(">H", await self._reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", await self._reader.readexactly(8))[0]
        if length > MAX_MESSAGE:
            raise WebSocketError(CLOSE_TOO_BIG, "frame too big")
        mask = await self._reader.readexactly(4)
        data = await self._reader.readexactly(length)
        return fin, op, _unmask(data, mask)

    async def send(self, opcode: int, payload: bytes) -> None:
        """One message; dropped quietly once closed."""
        with contextlib.suppress(ConnectionError):
            await self._send(opcode, payload)

    async def _send(self, opcode: int, payload: bytes) -> None:
        async with self._lock:
            if self.closed:
                return
            n = len(payload)
            if n < 126:
                head = struct.pack(">BB", 0x80 | opcode, n)
            elif n < 1 << 16:
                head = struct.pack(">BBH", 0x80 | opcode, 126, n)
            else:
                head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
            self._last_activity = self._loop.time()
            self._writer.write(head + payload)
            await self._writer.drain()

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send our close frame (once) and end the connection."""
        with contextlib.suppress(ConnectionError):
            await self._send(CLOSE, struct.pack(">H", code) + reason.encode()[:120])
        self.closed = True
        self._writer.close()
        if self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()


def _unmask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(n, "big")
