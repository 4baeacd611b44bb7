"""The HTTP/1.1 the streaming server needs, and no more: one request per
connection, no bodies, then either an answer or an upgrade (SPDY/3.1 or a
websocket) that hands the raw connection to a stream protocol.

kubelet's clients send GET or POST to /exec|attach|portforward/{token} with an
Upgrade header and no body; anything else is answered and the connection closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD = 16 * 1024        # request line and headers
MAX_HEADERS = 100
HEAD_TIMEOUT = 30.0         # a client must send its request head within this

_REASONS = {101: "Switching Protocols", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: list[tuple[str, str]] = field(default_factory=list)  # (lower-case name, value)

    def header(self, name: str) -> str:
        """The first value of a header ("" if absent)."""
        for key, value in self.headers:
            if key == name:
                return value
        return ""

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, comma-separated lists split (as Go's clients
        may send a list on one line or one value per line)."""
        out: list[str] = []
        for key, value in self.headers:
            if key == name:
                out += [v.strip() for v in value.split(",") if v.strip()]
        return out

    def has_token(self, name: str, token: str) -> bool:
        return token.lower() in (v.lower() for v in self.header_values(name))


async def read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    except asyncio.LimitOverrunError:
        raise BadRequest("request head too large") from None
    except (TimeoutError, asyncio.IncompleteReadError):
        raise BadRequest("incomplete request head") from None
    if len(head) > MAX_HEAD:
        raise BadRequest("request head too large")
    lines = head[:-4].decode("latin-1").split("\r\n")  # latin-1 decodes any byte
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1].startswith("/"):
        raise BadRequest("bad request line")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest("too many headers")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise BadRequest("bad header line")
        headers.append((name.lower(), value.strip()))
    target = urlsplit(parts[1])
    request = Request(parts[0], unquote(target.path),
                      parse_qs(target.query, max_num_fields=64), headers)
    length = request.header("content-length")
    if request.header("transfer-encoding") or (length and length != "0"):
        raise BadRequest("a request body is not accepted here")
    return request


def response(status: int, headers: list[tuple[str, str]] | None = None,
             body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    all_headers = list(headers or [])
    if status != 101:
        all_headers += [("Content-Type", "text/plain; charset=utf-8"),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Content-Length", str(len(body))), ("Connection", "close")]
    lines += [f"{k}: {v}" for k, v in all_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def answer(writer: asyncio.StreamWriter, status: int, text: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
    """A plain-text answer (Go's http.Error adds the newline), then close."""
    writer.write(response(status, headers, (text + "\n").encode()))
    try:
        await writer.drain()
    except ConnectionError:
        pass
    writer.close()
