"""exec and attach streams (kubelet's remotecommand server), over SPDY/3.1 or a
websocket.

SPDY: the client offers X-Stream-Protocol-Version values (client-go: v5, v4, v3,
v2, v1 of `channel.k8s.io`); as kubelet, the first one offered among v4, v3 and
v2 is chosen. The client then opens one stream per stdio it wants, each with a
`streamType` header: error, stdin, stdout, stderr, and resize (TTY, v3 on).
Once all expected streams exist the command runs; at the end the error stream
carries the outcome (v4: a metav1.Status JSON whose ExitCode cause holds a
non-zero exit; v2/v3: the failure's text only) and every stream is finished.

Websocket: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize (channels.py);
an empty message on the lowest writable channel tells the client it is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .channels import BASE64_PROTOCOLS, BINARY_PROTOCOLS, ChannelMux
from .contract import InputStream, OutputStream, TerminalSize
from .http import Request, answer, response
from .spdy import SpdyConnection, SpdyStream, StreamLink
from .websocket import accept, choose_protocol, handshake_error

log = logging.getLogger(__name__)

SPDY_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"]
WS_STATUS_JSON = {"v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v5.channel.k8s.io"}
STREAM_CREATION_TIMEOUT = 30.0   # kubelet's DefaultStreamCreationTimeout
MAX_RESIZE_MESSAGE = 4096


@dataclass(frozen=True)
class Options:
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class Outcome:
    """How the command ended, as the error stream reports it."""

    def __init__(self, *, exit_code: int = 0, error: str | None = None,
                 command: list[str] | None = None) -> None:
        self.exit_code = exit_code
        self.error = error
        self.command = command or []

    def status(self) -> dict[str, Any]:
        """metav1.Status as kubelet's v4 writer marshals it."""
        if self.error is not None:
            return {"metadata": {}, "status": "Failure",
                    "message": f"Internal error occurred: {self.error}",
                    "reason": "InternalError",
                    "details": {"causes": [{"message": self.error}]}, "code": 500}
        if self.exit_code:
            code = self.exit_code % 256
            cmd = "[" + " ".join(self.command) + "]"
            return {"metadata": {}, "status": "Failure",
                    "message": ("command terminated with non-zero exit code: error executing "
                                f"command {cmd}, exit code {code}"),
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        return {"metadata": {}, "status": "Success"}

    def encode(self, as_json: bool) -> bytes:
        if as_json:
            return json.dumps(self.status(), separators=(",", ":")).encode()
        status = self.status()
        return b"" if status["status"] == "Success" else status["message"].encode()


# What the server runs once the streams exist: (stdin, stdout, stderr, resize) -> Outcome.
Runner = Callable[[InputStream | None, OutputStream | None, OutputStream | None,
                   AsyncIterator[TerminalSize] | None], Awaitable[Outcome]]


async def resize_events(stream: InputStream) -> AsyncIterator[TerminalSize]:
    """The resize stream: JSON objects {"Width": w, "Height": h} one after another
    (Go's json.Encoder; field names match case-insensitively, as Go decodes)."""
    decoder = json.JSONDecoder()
    buf = ""
    while data := await stream.read():
        buf += data.decode("utf-8", "replace")
        while True:
            buf = buf.lstrip()
            try:
                obj, end = decoder.raw_decode(buf)
            except json.JSONDecodeError:
                break
            buf = buf[end:]
            size = _size(obj)
            if size is not None:
                yield size
        if len(buf) > MAX_RESIZE_MESSAGE:
            log.info("remotecommand: resize stream sent garbage, ignoring it")
            return


def _size(obj: object) -> TerminalSize | None:
    if not isinstance(obj, dict):
        return None
    fields = {str(k).lower(): v for k, v in obj.items()}
    w, h = fields.get("width", 0), fields.get("height", 0)
    if type(w) is not int or type(h) is not int or not (0 <= w < 65536 and 0 <= h < 65536):
        return None
    return TerminalSize(w, h)


async def serve(request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                opts: Options, run: Runner, is_websocket: bool) -> None:
    if is_websocket:
        await _serve_websocket(request, reader, writer, opts, run)
    else:
        await _serve_spdy(request, reader, writer, opts, run)


async def _run_until_gone(run: Runner, closed: asyncio.Event, *args: Any) -> Outcome | None:
    """The runner's outcome; None when the client left first (the runner is cancelled)."""
    task = asyncio.ensure_future(run(*args))
    gone = asyncio.ensure_future(closed.wait())
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if task.cancelled():
        return None
    return task.result()


def spdy_upgrade_error(request: Request) -> str | None:
    if not (request.has_token("connection", "upgrade")
            and request.header("upgrade").lower() == "spdy/3.1"):
        return "unable to upgrade: missing upgrade headers in request"
    return None


async def negotiate_spdy(request: Request, writer: asyncio.StreamWriter,
                         supported: list[str]) -> str | None:
    """httpstream.Handshake: the client's first protocol we support, announced in the
    101 answer; None after answering the failure."""
    if (err := spdy_upgrade_error(request)) is not None:
        await answer(writer, 400, err)
        return None
    offered = request.header_values("x-stream-protocol-version")
    if not offered:
        await answer(writer, 400, "unable to upgrade: X-Stream-Protocol-Version is required")
        return None
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        await answer(writer, 403, f"unable to upgrade: unable to negotiate protocol: client "
                     f"supports {offered}, server accepts {supported}",
                     [("X-Accepted-Stream-Protocol-Versions", p) for p in supported])
        return None
    writer.write(response(101, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                ("X-Stream-Protocol-Version", chosen)]))
    await writer.drain()
    return chosen


async def _serve_spdy(request: Request, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, opts: Options, run: Runner) -> None:
    protocol = await negotiate_spdy(request, writer, SPDY_PROTOCOLS)
    if protocol is None:
        return
    wanted = {"error"}
    wanted |= {name for name, on in (("stdin", opts.stdin), ("stdout", opts.stdout),
                                     ("stderr", opts.stderr)) if on}
    if opts.tty and protocol != "v2.channel.k8s.io":
        wanted.add("resize")
    streams: dict[str, SpdyStream] = {}
    ready = asyncio.Event()

    async def on_stream(stream: SpdyStream) -> bool:
        kind = stream.header("streamtype")
        if kind not in wanted or kind in streams:
            return False
        streams[kind] = stream
        if len(streams) == len(wanted):
            ready.set()
        return True

    conn = SpdyConnection(StreamLink(reader, writer), on_stream, max_streams=8)
    reading = asyncio.ensure_future(conn.serve())
    try:
        try:
            await asyncio.wait_for(_first(ready.wait(), conn.closed.wait()),
                                   STREAM_CREATION_TIMEOUT)
        except TimeoutError:
            log.info("remotecommand: timed out waiting for the client to create streams")
            return
        if not ready.is_set():
            return
        resize = resize_events(streams["resize"]) if "resize" in streams else None
        outcome = await _run_until_gone(run, conn.closed, streams.get("stdin"),
                                        streams.get("stdout"), streams.get("stderr"), resize)
        if outcome is None:
            return
        error_stream = streams["error"]
        message = outcome.encode(as_json=protocol == "v4.channel.k8s.io")
        if message:
            await error_stream.write(message)
        for stream in streams.values():
            await stream.close()
    finally:
        await conn.close()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _serve_websocket(request: Request, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter, opts: Options, run: Runner) -> None:
    if (err := handshake_error(request)) is not None:
        await answer(writer, 400, f"unable to upgrade websocket connection: {err}")
        return
    protocol = choose_protocol(request, sorted((BINARY_PROTOCOLS | BASE64_PROTOCOLS) - {""}))
    if protocol is None:
        await answer(writer, 400, "unable to upgrade websocket connection: requested "
                     "protocol(s) are not supported")
        return
    ws = await accept(request, reader, writer, protocol)
    mux = ChannelMux(ws, [opts.stdin, False, False, False, opts.tty])
    reading = asyncio.ensure_future(mux.serve())
    ch = mux.channels
    try:
        # as kubelet: an empty message on the lowest writable channel says "ready"
        lowest = 1 if opts.stdout else 2 if opts.stderr else 3
        await mux.send(lowest, b"")
        outcome = await _run_until_gone(
            run, mux.closed, ch[0] if opts.stdin else None, ch[1] if opts.stdout else None,
            ch[2] if opts.stderr else None, resize_events(ch[4]) if opts.tty else None)
        if outcome is not None:
            await ch[3].write(outcome.encode(as_json=protocol in WS_STATUS_JSON))
    finally:
        await mux.close()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
