"""k8s' websocket channel protocols (apiserver's wsstream, client-go's websocket
executor): numbered streams multiplexed over one websocket.

Every message starts with its channel: one byte in the binary protocols
(`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`, or no subprotocol),
an ASCII digit followed by base64 data in the text ones (`base64.channel.k8s.io`,
`v4.base64.channel.k8s.io`). v5 adds a close signal: the message [255, channel]
half-closes that channel (a client's stdin EOF), which a websocket alone cannot
express.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections

from .websocket import BINARY, TEXT, WebSocket

BINARY_PROTOCOLS = {"channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io", ""}
BASE64_PROTOCOLS = {"base64.channel.k8s.io", "v4.base64.channel.k8s.io"}
V5 = "v5.channel.k8s.io"
CLOSE_SIGNAL = 255
INBOX_HIGH = 1 << 20


class Channel:
    """One channel: read() what the client sent on it, write() to it."""

    def __init__(self, mux: ChannelMux, number: int, *, readable: bool) -> None:
        self.mux = mux
        self.number = number
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed = asyncio.Event()
        self.remote_closed = not readable

    async def read(self) -> bytes:
        while not self._inbox:
            if self.remote_closed:
                return b""
            self._changed.clear()
            await self._changed.wait()
        data = self._inbox.popleft()
        self._buffered -= len(data)
        if self._buffered <= INBOX_HIGH // 2:
            self.mux._room.set()
        return data

    async def write(self, data: bytes) -> None:
        if data:
            await self.mux.send(self.number, data)

    async def close(self) -> None:
        """A websocket channel cannot be half-closed: its data ends with the connection."""

    def _deliver(self, data: bytes) -> None:
        if not self.remote_closed and data:  # one the client may not write is closed from the start
            self._inbox.append(data)
            self._buffered += len(data)
            self._changed.set()

    def _remote_end(self) -> None:
        self.remote_closed = True
        self._changed.set()


class ChannelMux:
    def __init__(self, ws: WebSocket, readable: list[bool]) -> None:
        self.ws = ws
        self.base64 = ws.protocol in BASE64_PROTOCOLS
        self.channels = [Channel(self, i, readable=r) for i, r in enumerate(readable)]
        self._room = asyncio.Event()
        self._room.set()
        self.closed = asyncio.Event()

    async def send(self, number: int, data: bytes) -> None:
        if self.base64:
            await self.ws.send(TEXT, chr(ord("0") + number).encode() + base64.b64encode(data))
        else:
            await self.ws.send(BINARY, bytes([number]) + data)

    async def serve(self) -> None:
        """Read messages until the websocket ends; then every channel reads EOF."""
        try:
            while (message := await self.ws.receive()) is not None:
                opcode, payload = message
                if not payload:
                    continue
                if self.base64:
                    if opcode != TEXT:
                        continue
                    number = payload[0] - ord("0")
                    try:
                        data = base64.b64decode(payload[1:], validate=True)
                    except (binascii.Error, ValueError):
                        continue
                else:
                    if opcode != BINARY:
                        continue
                    number, data = payload[0], payload[1:]
                if number == CLOSE_SIGNAL and self.ws.protocol == V5:
                    if len(data) == 1 and data[0] < len(self.channels):
                        self.channels[data[0]]._remote_end()
                    continue
                if 0 <= number < len(self.channels):
                    channel = self.channels[number]
                    channel._deliver(data)
                    while channel._buffered > INBOX_HIGH and not self.ws.closed:
                        self._room.clear()
                        await self._room.wait()
        finally:
            for channel in self.channels:
                channel._remote_end()
            self.closed.set()

    async def close(self) -> None:
        await self.ws.close()
        self._room.set()
