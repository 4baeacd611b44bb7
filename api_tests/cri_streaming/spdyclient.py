"""A SPDY/3.1 client that puts on the wire what client-go's does (checked against
client-go tools/remotecommand spdy.go, v2.go/v3.go/v4.go, tools/portforward, and
moby/spdystream spdy/write.go + connection.go):

  * `POST <url>` with `Connection: Upgrade`, `Upgrade: SPDY/3.1`, one
    `X-Stream-Protocol-Version` line per protocol (client-go offers v5, v4, v3,
    v2, channel.k8s.io; port-forward offers portforward.k8s.io);
  * odd stream ids from 1, SYN_STREAM with priority 0, slot 0, the header block
    (u32 count, u32-length-prefixed lower-case names and values) compressed with
    zlib at level 9 and the SPDY/3 dictionary, sync-flushed, one zlib stream for
    the connection; every CreateStream waits for the SYN_REPLY;
  * remotecommand streams in v3/v4's order: error, stdin, stdout, stderr (no
    TTY), resize (TTY); port-forward: error (at once half-closed), then data,
    headers streamType/port/requestID;
  * DATA frames as io.Copy writes them; Close() is an empty DATA with FIN;
    GOAWAY at the end. Header names are written as http.Header keys lowercased.
"""

from __future__ import annotations

import json
import socket
import struct
import zlib
from typing import Any

from dockerd_py.cri.streaming.spdy import DICTIONARY, decode_headers

EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                  "v2.channel.k8s.io", "channel.k8s.io"]


class SpdyClient:
    def __init__(self, url: str, protocols: list[str]) -> None:
        assert url.startswith("http://")
        hostport, _, path = url[len("http://"):].partition("/")
        host, _, port = hostport.rpartition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=60)
        lines = [f"POST /{path} HTTP/1.1", f"Host: {hostport}",
                 "User-Agent: Go-http-client/1.1", "Content-Length: 0",
                 "Connection: Upgrade", "Upgrade: SPDY/3.1"]
        lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
        lines += ["Accept-Encoding: gzip"]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (h.partition(":") for h in header_lines if h)}
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.body) < n and (chunk := self.sock.recv(n - len(self.body))):
                self.body += chunk
            return
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._next_id = 1
        self.data: dict[int, bytearray] = {}
        self.fin: set[int] = set()
        self.reset: set[int] = set()
        self.goaway = False
        self.pings: list[int] = []

    def _recv_exactly(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def read_frame(self) -> None:
        """One frame from the server, recorded."""
        w0, w1 = struct.unpack(">II", self._recv_exactly(8))
        flags, length = w1 >> 24, w1 & 0xFFFFFF
        payload = self._recv_exactly(length)
        if w0 & 0x80000000:
            kind = w0 & 0xFFFF
            if kind == 2:    # SYN_REPLY
                sid = struct.unpack_from(">I", payload)[0]
                decode_headers(self._inflate.decompress(payload[4:]))
                self.data.setdefault(sid, bytearray())
                if flags & 1:
                    self.fin.add(sid)
            elif kind == 3:  # RST_STREAM
                self.reset.add(struct.unpack_from(">I", payload)[0])
            elif kind == 6:  # PING
                self.pings.append(struct.unpack(">I", payload)[0])
            elif kind == 7:  # GOAWAY
                self.goaway = True
        else:
            self.data.setdefault(w0, bytearray()).extend(payload)
            if flags & 1:
                self.fin.add(w0)

    def create_stream(self, headers: dict[str, str], *, wait: bool = True) -> int:
        sid = self._next_id
        self._next_id += 2
        block = struct.pack(">I", len(headers))
        for name, value in headers.items():
            n, v = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        compressed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        frame = struct.pack(">HHIIIBB", 0x8003, 1, len(compressed) + 10, sid, 0, 0, 0)
        self.sock.sendall(frame + compressed)
        while wait and sid not in self.data and sid not in self.reset:
            self.read_frame()
        return sid

    def send(self, sid: int, data: bytes, *, fin: bool = False) -> None:
        self.sock.sendall(struct.pack(">II", sid, (int(fin) << 24) | len(data)) + data)

    def ping(self, ping_id: int) -> None:
        self.sock.sendall(struct.pack(">HHII", 0x8003, 6, 4, ping_id))

    def go_away(self) -> None:
        self.sock.sendall(struct.pack(">HHIII", 0x8003, 7, 8, self._next_id - 2, 0))

    def until(self, *sids: int) -> None:
        """Read frames until every stream given is finished (or the link ends)."""
        try:
            while not all(s in self.fin or s in self.reset for s in sids):
                self.read_frame()
        except EOFError:
            pass

    def close(self) -> None:
        self.sock.close()


def exec_streams(client: SpdyClient, *, stdin: bool, tty: bool) -> dict[str, int]:
    """client-go v4's createStreams."""
    streams = {"error": client.create_stream({"streamType": "error"})}
    if stdin:
        streams["stdin"] = client.create_stream({"streamType": "stdin"})
    streams["stdout"] = client.create_stream({"streamType": "stdout"})
    if not tty:
        streams["stderr"] = client.create_stream({"streamType": "stderr"})
    else:
        streams["resize"] = client.create_stream({"streamType": "resize"})
    return streams


def status_of(client: SpdyClient, error_sid: int) -> dict[str, Any]:
    data = bytes(client.data.get(error_sid, b""))
    return json.loads(data) if data else {}
