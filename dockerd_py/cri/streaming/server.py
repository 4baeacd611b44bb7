"""The CRI streaming server: the HTTP endpoint behind the URLs that GetExec,
GetAttach and GetPortForward answer (kubelet's pkg/kubelet/cri/streaming).

Each Get* call stores the request under a random single-use token that expires
after a minute (kubelet's request cache, at most 1000 in flight) and answers
`{base_url}/{exec|attach|portforward}/{token}`. The client then connects there
with GET (websocket) or POST (SPDY/3.1); an unknown, used or expired token is a
404.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ...errors import DaemonError, InvalidParameter
from . import portforward, remotecommand
from .contract import InputStream, OutputStream, StreamingRuntime, TerminalSize
from .http import MAX_HEAD, BadRequest, answer, read_request
from .remotecommand import Options, Outcome
from .websocket import is_websocket

log = logging.getLogger(__name__)

TOKEN_TTL = 60.0          # kubelet's CacheTTL
MAX_IN_FLIGHT = 1000      # kubelet's maxInFlight
MAX_CONNECTIONS = 512     # client connections at once; more are closed unanswered
MAX_CMD_ARGS = 4096
MAX_CMD_BYTES = 1 << 20


@dataclass(frozen=True)
class _Exec:
    container_id: str
    cmd: list[str]
    opts: Options


@dataclass(frozen=True)
class _Attach:
    container_id: str
    opts: Options


@dataclass(frozen=True)
class _PortForward:
    pod_sandbox_id: str
    ports: list[int]


_Cached = _Exec | _Attach | _PortForward


class _RequestCache:
    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, _Cached]] = OrderedDict()

    def insert(self, item: _Cached) -> str:
        self._expire()
        if len(self._items) >= MAX_IN_FLIGHT:
            raise DaemonError("maximum number of in-flight requests exceeded")
        token = base64.urlsafe_b64encode(secrets.token_bytes(8)).rstrip(b"=").decode()
        self._items[token] = (time.monotonic() + TOKEN_TTL, item)
        return token

    def consume(self, token: str) -> _Cached | None:
        self._expire()
        entry = self._items.pop(token, None)
        return None if entry is None else entry[1]

    def _expire(self) -> None:
        now = time.monotonic()
        while self._items:
            token, (deadline, _) = next(iter(self._items.items()))
            if deadline > now:
                break
            del self._items[token]


def _options(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Options:
    """kubelet's validateExecRequest/validateAttachRequest."""
    if tty and stderr:
        raise InvalidParameter("tty and stderr cannot both be true")
    if not (stdin or stdout or stderr):
        raise InvalidParameter("one of stdin, stdout, or stderr must be set")
    return Options(stdin=stdin, stdout=stdout, stderr=stderr, tty=tty)


def _check_id(value: str, what: str) -> str:
    if not value:
        raise InvalidParameter(f"missing required {what}")
    if len(value) > 256 or not value.isprintable():
        raise InvalidParameter(f"invalid {what}")
    return value


class StreamingServer:
    def __init__(self, runtime: StreamingRuntime, address: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.runtime = runtime
        self.address = address
        self.port = port
        self._cache = _RequestCache()
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    # -- lifecycle

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.address, self.port,
                                                  limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # end the connections by closing them (a cancelled start_server task is
        # reported as an error by asyncio): their streams read EOF and unwind
        for writer in list(self._connections.values()):
            writer.transport.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    # -- URLs (what the CRI server's Get* answer)

    def exec_url(self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool,
                 stdout: bool, stderr: bool) -> str:
        _check_id(container_id, "container_id")
        if not cmd or len(cmd) > MAX_CMD_ARGS or sum(map(len, cmd)) > MAX_CMD_BYTES:
            raise InvalidParameter(f"cmd must hold 1 to {MAX_CMD_ARGS} arguments, "
                                   f"{MAX_CMD_BYTES} bytes in all")
        opts = _options(tty, stdin, stdout, stderr)
        return self._url("exec", _Exec(container_id, list(cmd), opts))

    def attach_url(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                   stderr: bool) -> str:
        _check_id(container_id, "container_id")
        return self._url("attach", _Attach(container_id, _options(tty, stdin, stdout, stderr)))

    def port_forward_url(self, pod_sandbox_id: str, ports: list[int]) -> str:
        _check_id(pod_sandbox_id, "pod_sandbox_id")
        if len(ports) > portforward.MAX_PORTS or any(not 0 < p < 65536 for p in ports):
            raise InvalidParameter("invalid port")
        return self._url("portforward", _PortForward(pod_sandbox_id, list(ports)))

    def _url(self, kind: str, item: _Cached) -> str:
        return f"{self.base_url}/{kind}/{self._cache.insert(item)}"

    # -- serving

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= MAX_CONNECTIONS:
            log.warning("streaming: %d connections open, refusing another", MAX_CONNECTIONS)
            writer.transport.abort()
            return
        self._connections[task] = writer
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("streaming: a connection failed")
        finally:
            self._connections.pop(task, None)
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await read_request(reader)
        except BadRequest as e:
            await answer(writer, 400, str(e))
            return
        parts = request.path.split("/")
        if len(parts) != 3 or parts[0] or parts[1] not in ("exec", "attach", "portforward"):
            await answer(writer, 404, "404 page not found")
            return
        if request.method not in ("GET", "POST"):
            await answer(writer, 405, "405 method not allowed")
            return
        item = self._cache.consume(parts[2])
        kind = {"exec": _Exec, "attach": _Attach, "portforward": _PortForward}[parts[1]]
        if not isinstance(item, kind):
            await answer(writer, 404, "404 page not found")
            return
        ws = is_websocket(request)
        if isinstance(item, _PortForward):
            forward = self._forwarder(item.pod_sandbox_id)
            if ws:
                await portforward.serve_websocket(request, reader, writer, item.pod_sandbox_id,
                                                  item.ports, forward)
            else:
                await portforward.serve_spdy(request, reader, writer, item.pod_sandbox_id,
                                             forward)
            return
        if isinstance(item, _Exec):
            await remotecommand.serve(request, reader, writer, item.opts,
                                      self._exec_runner(item), ws)
        elif isinstance(item, _Attach):
            await remotecommand.serve(request, reader, writer, item.opts,
                                      self._attach_runner(item), ws)

    def _exec_runner(self, item: _Exec) -> remotecommand.Runner:
        async def run(stdin: InputStream | None, stdout: OutputStream | None,
                      stderr: OutputStream | None,
                      resize: AsyncIterator[TerminalSize] | None) -> Outcome:
            try:
                code = await self.runtime.exec(item.container_id, item.cmd, tty=item.opts.tty,
                                               stdin=stdin, stdout=stdout, stderr=stderr,
                                               resize=resize)
            except DaemonError as e:
                return Outcome(error=f"error executing command in container: {e}")
            return Outcome(exit_code=code, command=item.cmd)
        return run

    def _attach_runner(self, item: _Attach) -> remotecommand.Runner:
        async def run(stdin: InputStream | None, stdout: OutputStream | None,
                      stderr: OutputStream | None,
                      resize: AsyncIterator[TerminalSize] | None) -> Outcome:
            try:
                await self.runtime.attach(item.container_id, tty=item.opts.tty, stdin=stdin,
                                          stdout=stdout, stderr=stderr, resize=resize)
            except DaemonError as e:
                return Outcome(error=f"error attaching to container: {e}")
            return Outcome()
        return run

    def _forwarder(self, pod: str) -> portforward.Forwarder:
        async def forward(port: int, reader: InputStream, writer: OutputStream) -> None:
            await self.runtime.port_forward(pod, port, reader, writer)
        return forward


class URLs:
    """The server as the CRI servicer asks it for URLs (cri/streams.py's StreamingURLs)."""

    def __init__(self, server: StreamingServer) -> None:
        self.server = server

    def exec(self, container_id: str, cmd: list[str], tty: bool, stdin: bool, stdout: bool,
             stderr: bool) -> str:
        return self.server.exec_url(container_id, cmd, tty=tty, stdin=stdin, stdout=stdout,
                                    stderr=stderr)

    def attach(self, container_id: str, tty: bool, stdin: bool, stdout: bool,
               stderr: bool) -> str:
        return self.server.attach_url(container_id, tty=tty, stdin=stdin, stdout=stdout,
                                      stderr=stderr)

    def port_forward(self, pod_sandbox_id: str, ports: list[int]) -> str:
        return self.server.port_forward_url(pod_sandbox_id, ports)
