"""SPDY/3.1 as kubelet's clients speak it (moby/spdystream under client-go's
httpstream): the server side of a connection whose streams the client opens.

Frames: an 8-byte head (control bit, version 3, type | stream id; flags, 24-bit
length). Header blocks are zlib-compressed with the SPDY/3 dictionary, one zlib
stream per direction for the whole connection (sync flush after each block), so
every block must be inflated in order. spdystream does no flow control (it
ignores WINDOW_UPDATE and never sends one), so neither side waits for windows;
backpressure is TCP's: a stream whose reader lags pauses the connection's reader.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger(__name__)

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
RST_PROTOCOL_ERROR, RST_INVALID_STREAM, RST_REFUSED_STREAM, RST_CANCEL = 1, 2, 3, 5

IDLE_TIMEOUT = 4 * 3600.0      # kubelet's StreamIdleTimeout: no frame either way this long
MAX_FRAME = 1 << 20            # a frame's payload at most (spdystream writes 32 KiB data)
MAX_HEADER_BLOCK = 16 * 1024   # an inflated header block at most
MAX_HEADERS = 32
DATA_CHUNK = 32 * 1024         # our DATA frames
INBOX_HIGH = 1 << 20           # unread bytes of one stream above which reading pauses
CONN_HIGH = 4 << 20            # unread bytes of all streams above which reading pauses


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00
    §2.6.10.1): length-prefixed words, then a run of text."""
    words = ("options head post put delete trace accept accept-charset accept-encoding "
             "accept-language accept-ranges age allow authorization cache-control connection "
             "content-base content-encoding content-language content-length content-location "
             "content-md5 content-range content-type date etag expect expires from host if-match "
             "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
             "max-forwards pragma proxy-authenticate proxy-authorization range referer "
             "retry-after server te trailer transfer-encoding upgrade user-agent vary via "
             "warning www-authenticate method get status").split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive",
              "origin"]
    text = (b"100101201202205206300302303304305306307402405406407408409410411412413414415416"
            b"417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
            b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server "
            b"Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug "
            b"Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,"
            b"image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
            b"text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset="
            b"iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + text


DICTIONARY = _dictionary()
assert len(DICTIONARY) == 1423 and zlib.adler32(DICTIONARY) == 0xE3C6A7C2


class ProtocolError(Exception):
    pass


class ByteLink(Protocol):
    """The connection under SPDY: a TCP socket, or a websocket tunnel."""

    async def readexactly(self, n: int) -> bytes:
        """Raises asyncio.IncompleteReadError at the end."""

    async def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class StreamLink:
    """A ByteLink over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


def encode_headers(headers: dict[str, str]) -> bytes:
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, list[str]]:
    """A header block: u32 count, then (u32 length, name, u32 length, value) pairs,
    names lower-case and unique, values NUL-separated lists."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        if count > MAX_HEADERS:
            raise ProtocolError("too many headers")
        pos, headers = 4, {}
        for _ in range(count):
            fields = []
            for _ in range(2):
                (n,) = struct.unpack_from(">I", block, pos)
                pos += 4
                if pos + n > len(block):
                    raise ProtocolError("truncated header block")
                fields.append(block[pos:pos + n].decode())
                pos += n
            name, value = fields
            if not name or name != name.lower() or name in headers:
                raise ProtocolError("bad header name")
            headers[name] = value.split("\x00")
    except (struct.error, UnicodeDecodeError):
        raise ProtocolError("bad header block") from None
    if pos != len(block):
        raise ProtocolError("trailing bytes in header block")
    return headers


class SpdyStream:
    """One client-initiated stream: read() what the client sends, write() back."""

    def __init__(self, conn: SpdyConnection, sid: int, headers: dict[str, list[str]]) -> None:
        self.conn = conn
        self.id = sid
        self.headers = headers
        self._inbox: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed = asyncio.Event()
        self.remote_closed = False   # FIN or reset from the client, or the link ended
        self.local_closed = False    # our FIN or reset went out

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def read(self) -> bytes:
        """The next data; b"" once the client finished (or reset) the stream."""
        while not self._inbox:
            if self.remote_closed:
                return b""
            self._changed.clear()
            await self._changed.wait()
        data = self._inbox.popleft()
        self._buffered -= len(data)
        self.conn._buffered -= len(data)
        self.conn._room.set()            # the reader loop checks again
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        for off in range(0, len(view), DATA_CHUNK):
            if self.local_closed:
                return
            await self.conn._send_data(self.id, bytes(view[off:off + DATA_CHUNK]), fin=False)

    async def close(self) -> None:
        """Half-close: a DATA frame with FIN."""
        if not self.local_closed:
            self.local_closed = True
            await self.conn._send_data(self.id, b"", fin=True)
            self.conn._maybe_forget(self)

    async def reset(self, status: int = RST_CANCEL) -> None:
        if not self.local_closed or not self.remote_closed:
            self.local_closed = True
            self._remote_end()
            await self.conn._send_control(RST_STREAM, 0, struct.pack(">II", self.id, status))
            self.conn._maybe_forget(self)

    def _deliver(self, data: bytes) -> None:
        if data and not self.remote_closed:
            self._inbox.append(data)
            self._buffered += len(data)
            self.conn._buffered += len(data)
            self._changed.set()

    def _remote_end(self) -> None:
        self.remote_closed = True
        self._changed.set()

    @property
    def backlogged(self) -> bool:
        return self._buffered > INBOX_HIGH


# Called for each new stream; returns whether to accept it (False: refused with
# RST_STREAM). Runs before the SYN_REPLY goes out.
StreamHandler = Callable[[SpdyStream], Awaitable[bool]]


class SpdyConnection:
    def __init__(self, link: ByteLink, on_stream: StreamHandler, *, max_streams: int) -> None:
        self._link = link
        self._on_stream = on_stream
        self._max_streams = max_streams
        self._streams: dict[int, SpdyStream] = {}
        self._last_id = 0
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         zdict=DICTIONARY)
        self._write_lock = asyncio.Lock()
        self._room = asyncio.Event()
        self._room.set()
        self._buffered = 0               # bytes delivered to streams, not yet read
        self._idle_timeout = IDLE_TIMEOUT
        self._last_activity = 0.0
        self.closed = asyncio.Event()    # the link ended (EOF, error, or close())
        self.going_away = False          # the client sent GOAWAY: no new streams

    # -- reading

    async def serve(self) -> None:
        """Read frames until the link ends; then every stream reads EOF."""
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        watchdog = asyncio.ensure_future(self._watch_idle())
        try:
            while True:
                head = await self._link.readexactly(8)
                self._last_activity = loop.time()
                w0, w1 = struct.unpack(">II", head)
                flags, length = w1 >> 24, w1 & 0xFFFFFF
                if length > MAX_FRAME:
                    raise ProtocolError("frame too large")
                payload = await self._link.readexactly(length) if length else b""
                if w0 & 0x80000000:
                    if (w0 >> 16) & 0x7FFF != 3:
                        raise ProtocolError("unsupported SPDY version")
                    await self._control(w0 & 0xFFFF, flags, payload)
                else:
                    await self._data(w0 & 0x7FFFFFFF, flags, payload)
        except ProtocolError as e:
            log.info("spdy: closing a connection: %s", e)
            with contextlib.suppress(ConnectionError):
                await self._send_control(GOAWAY, 0, struct.pack(">II", self._last_id, 1))
        except (asyncio.IncompleteReadError, ConnectionError, zlib.error) as e:
            if isinstance(e, zlib.error):
                log.info("spdy: bad header compression: %s", e)
        finally:
            watchdog.cancel()
            self._end()

    async def _watch_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed.is_set():
            left = self._last_activity + self._idle_timeout - loop.time()
            if left <= 0:
                log.info("spdy: closing a connection idle for %.0fs", self._idle_timeout)
                self._end()
                return
            await asyncio.sleep(left)

    def _end(self) -> None:
        for stream in list(self._streams.values()):
            stream._remote_end()
            stream.local_closed = True
        self._streams.clear()
        self._room.set()
        self.closed.set()
        self._link.close()

    def _header_block(self, data: bytes) -> dict[str, list[str]]:
        block = self._inflate.decompress(data, MAX_HEADER_BLOCK + 1)
        if self._inflate.unconsumed_tail or len(block) > MAX_HEADER_BLOCK:
            raise ProtocolError("header block too large")
        return decode_headers(block)

    async def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == SYN_STREAM:
            if len(payload) < 10:
                raise ProtocolError("short SYN_STREAM")
            sid = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            headers = self._header_block(payload[10:])
            await self._syn_stream(sid, flags, headers)
        elif kind in (SYN_REPLY, HEADERS):
            if len(payload) < 4:
                raise ProtocolError("short frame")
            self._header_block(payload[4:])          # keeps the inflater in step
            sid = struct.unpack_from(">I", payload)[0] & 0x7FFFFFFF
            if kind == HEADERS and flags & FLAG_FIN and sid in self._streams:
                self._remote_fin(self._streams[sid])
        elif kind == RST_STREAM:
            if len(payload) != 8:
                raise ProtocolError("bad RST_STREAM")
            sid = struct.unpack(">II", payload)[0] & 0x7FFFFFFF
            stream = self._streams.pop(sid, None)
            if stream is not None:
                stream.local_closed = True
                stream._remote_end()
                self._discard(stream)
        elif kind == PING:
            if len(payload) != 4:
                raise ProtocolError("bad PING")
            if struct.unpack(">I", payload)[0] & 1:  # the client's (odd): echo it
                await self._send_control(PING, 0, payload)
        elif kind == GOAWAY:
            self.going_away = True
        elif kind == SETTINGS:
            if len(payload) < 4 or len(payload) != 4 + 8 * struct.unpack_from(">I", payload)[0]:
                raise ProtocolError("bad SETTINGS")
        elif kind == WINDOW_UPDATE and len(payload) != 8:
            raise ProtocolError("bad WINDOW_UPDATE")
        # other frame types (and WINDOW_UPDATE, see above) are ignored, as SPDY asks

    async def _syn_stream(self, sid: int, flags: int, headers: dict[str, list[str]]) -> None:
        if sid % 2 == 0 or sid <= self._last_id:
            raise ProtocolError("bad stream id")
        self._last_id = sid
        if self.going_away or len(self._streams) >= self._max_streams:
            await self._send_control(RST_STREAM, 0,
                                     struct.pack(">II", sid, RST_REFUSED_STREAM))
            return
        stream = SpdyStream(self, sid, headers)
        if flags & FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        if not await self._on_stream(stream):
            await self._send_control(RST_STREAM, 0, struct.pack(">II", sid, RST_REFUSED_STREAM))
            return
        self._streams[sid] = stream
        await self._send_control(SYN_REPLY, 0,
                                 struct.pack(">I", sid) + self._compress({}))
        if flags & FLAG_FIN:
            self._remote_fin(stream)

    async def _data(self, sid: int, flags: int, payload: bytes) -> None:
        stream = self._streams.get(sid)
        if stream is None:
            if sid > self._last_id or sid == 0:
                raise ProtocolError("data for a stream never opened")
            return                                   # a stream we forgot: as spdystream
        stream._deliver(payload)
        if flags & FLAG_FIN:
            self._remote_fin(stream)
        while ((stream.backlogged or self._buffered > CONN_HIGH)
               and not self.closed.is_set()):
            self._room.clear()
            await self._room.wait()

    def _remote_fin(self, stream: SpdyStream) -> None:
        stream._remote_end()
        self._maybe_forget(stream)

    def _maybe_forget(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed:
            self._streams.pop(stream.id, None)
            self._discard(stream)

    def _discard(self, stream: SpdyStream) -> None:
        """Both sides are done with the stream: what it still buffers is dropped."""
        self._buffered -= stream._buffered
        stream._buffered = 0
        stream._inbox.clear()
        self._room.set()

    # -- writing

    def _compress(self, headers: dict[str, str]) -> bytes:
        return (self._deflate.compress(encode_headers(headers))
                + self._deflate.flush(zlib.Z_SYNC_FLUSH))

    async def _send_control(self, kind: int, flags: int, payload: bytes) -> None:
        head = struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(payload))
        await self._write(head + payload)

    async def _send_data(self, sid: int, data: bytes, *, fin: bool) -> None:
        head = struct.pack(">II", sid, ((FLAG_FIN if fin else 0) << 24) | len(data))
        await self._write(head + data)

    async def _write(self, frame: bytes) -> None:
        if self.closed.is_set():
            return
        async with self._write_lock:
            self._last_activity = asyncio.get_running_loop().time()
            try:
                await self._link.write(frame)
            except (ConnectionError, RuntimeError):
                self._end()

    async def close(self) -> None:
        """GOAWAY, then end the link (what spdystream's Close does, without waiting)."""
        if not self.closed.is_set():
            await self._send_control(GOAWAY, 0, struct.pack(">II", self._last_id, 0))
            self._end()
