"""Connection hijacking (dockerd_py.api.hijack) against raw sockets, docker-py and the CLI.

A stub app built with make_app serves test endpoints on a unix socket in this test's
event loop: attach echoes stdin upper-cased between "hello"/"err" and "bye", wait
answers when the attach ended, inspect says the container runs. No daemon, no
containers: this is about the bytes on the socket and aiohttp's behaviour around them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from dockerd_py.api.hijack import Hijacked, hijack, pump
from dockerd_py.api.httputil import json_response, read_json
from dockerd_py.api.server import make_app
from dockerd_py.api.streams import MEDIA_MULTIPLEXED, MEDIA_RAW, decode, demux, parse_detach_keys
from dockerd_py.errors import InvalidParameter
from dockerd_py.version import API_VERSION

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"
TIMEOUT = 10.0


@dataclass
class State:
    results: dict[str, str] = field(default_factory=dict)
    finished: dict[str, asyncio.Event] = field(default_factory=dict)

    def done(self, cid: str) -> asyncio.Event:
        return self.finished.setdefault(cid, asyncio.Event())


STATE = web.AppKey("state", State)
routes = web.RouteTableDef()


@routes.get("/_ping")
@routes.head("/_ping")
async def ping(request: web.Request) -> web.Response:
    return web.Response(text="OK")


@routes.post("/containers/{id}/exec")
async def exec_create(request: web.Request) -> web.Response:
    body = await read_json(request, required=True)
    assert body["AttachStdin"] and body["Cmd"] == ["cat"], body
    return json_response({"Id": "quiet-" + request.match_info["id"]}, status=201)


@routes.get("/exec/{id}/json")
async def exec_inspect(request: web.Request) -> web.Response:
    return json_response({"ID": request.match_info["id"], "Running": False, "ExitCode": 5})


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    cid = request.match_info["id"]
    return json_response({
        "Id": cid, "Name": "/" + cid,
        "Config": {"Tty": cid.startswith("tty"), "OpenStdin": True, "StdinOnce": False,
                   "AttachStdin": False, "AttachStdout": False, "AttachStderr": False},
        "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False},
    })


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.content_type = "application/json"
    await resp.prepare(request)
    await request.app[STATE].done(request.match_info["id"]).wait()
    await resp.write(json.dumps({"StatusCode": 3, "Error": None}).encode() + b"\n")
    return resp


async def _serve(hijacked: Hijacked, cid: str, tty: bool, keys: bytes) -> str:
    """The echo behaviour selected by the id's prefix; pump()'s result."""
    queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()

    async def output() -> AsyncIterator[tuple[int, bytes]]:
        if cid.startswith("silent"):
            await asyncio.Event().wait()
        while cid.startswith("chatty"):
            yield 1, b"tick\n"
            await asyncio.sleep(0.005)
        if not cid.startswith("quiet"):
            yield 1, b"hello\n"
            yield 2, b"err\n"
        while (item := await queue.get()) is not None:
            yield item

    async def sink(data: bytes) -> None:
        await queue.put((1, data.upper()))

    async def stdin_eof() -> None:
        await queue.put((1, b"bye\n"))
        await queue.put(None)

    silent = cid.startswith(("silent", "chatty"))
    return await pump(hijacked, output(), None if silent else sink, stdin_eof,
                      tty=tty, detach_keys=keys)


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    cid = request.match_info["id"]
    try:
        keys = parse_detach_keys(request.query.get("detachKeys", ""))
    except ValueError:
        raise InvalidParameter(
            f"Invalid detach keys ({request.query['detachKeys']}) provided") from None
    tty = cid.startswith("tty")
    try:
        hijacked = await hijack(request, tty=tty)
        async with hijacked:
            request.app[STATE].results[cid] = await _serve(hijacked, cid, tty, keys)
        return hijacked.response
    finally:
        request.app[STATE].done(cid).set()


@routes.post("/containers/{id}/misbehave")
async def misbehave(request: web.Request) -> web.StreamResponse:
    """Hijacks, writes, then returns an ordinary response: aiohttp must not send it."""
    hijacked = await hijack(request, tty=True)
    await hijacked.write(b"raw")
    await hijacked.close_write()
    request.app[STATE].done(request.match_info["id"]).set()
    return web.Response(text="stray bytes")


@routes.post("/containers/{id}/late")
async def late(request: web.Request) -> web.StreamResponse:
    """Hijacks only after the client had time to leave."""
    await asyncio.sleep(0.3)
    cid = request.match_info["id"]
    hijacked = await hijack(request, tty=False)
    async with hijacked:
        request.app[STATE].results[cid] = await _serve(hijacked, "silent", False, b"")
    request.app[STATE].done(cid).set()
    return hijacked.response


@routes.post("/exec/{id}/start")
async def exec_start(request: web.Request) -> web.StreamResponse:
    body = await read_json(request) or {}
    cid = request.match_info["id"]
    tty = bool(body.get("Tty"))
    hijacked = await hijack(request, tty=tty)
    async with hijacked:
        request.app[STATE].results[cid] = await _serve(hijacked, cid, tty, b"")
    request.app[STATE].done(cid).set()
    return hijacked.response


# --------------------------------------------------------------------------- fixtures

@dataclass
class Stub:
    sock: str
    state: State
    runner: web.AppRunner
    tmp: str


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    tmp = tempfile.mkdtemp(prefix="hj", dir="/tmp")   # AF_UNIX paths are short
    app = make_app([routes])
    app[STATE] = State()
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.UnixSite(runner, os.path.join(tmp, "docker.sock"))
    await site.start()
    try:
        yield Stub(os.path.join(tmp, "docker.sock"), app[STATE], runner, tmp)
    finally:
        await runner.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
async def quiet_logs(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    """No warnings, errors or tracebacks from aiohttp, asyncio or us; no loop errors."""
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    yield
    await asyncio.sleep(0.05)
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    bad = [r for r in records if r.levelno >= logging.WARNING or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]
    assert not loop_errors, loop_errors


# --------------------------------------------------------------------------- raw helpers

def request_bytes(path: str, *, upgrade: bool = True, body: bytes = b"",
                  ctype: str = "text/plain") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: api.moby.localhost", f"Content-Type: {ctype}",
             f"Content-Length: {len(body)}"]
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, path)
    return sock


async def read_head(sock: socket.socket) -> tuple[list[str], bytes]:
    """The response head (status line + header lines) and whatever followed it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 65536),
                                       TIMEOUT)
        assert chunk, f"EOF inside the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), rest


async def read_to_eof(sock: socket.socket, data: bytes = b"") -> bytes:
    loop = asyncio.get_running_loop()
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), TIMEOUT):
        data += chunk
    return data


def headers_of(head: list[str]) -> dict[str, str]:
    pairs = [line.split(": ", 1) for line in head[1:]]
    assert len({k.lower() for k, _ in pairs}) == len(pairs), head
    return {k.lower(): v for k, v in pairs}


async def finished(stub: Stub, cid: str) -> str:
    await asyncio.wait_for(stub.state.done(cid).wait(), TIMEOUT)
    for _ in range(200):          # aiohttp forgets the connection once it is really closed
        if not stub.runner.server or not stub.runner.server.connections:
            break
        await asyncio.sleep(0.01)
    assert stub.runner.server is not None and not stub.runner.server.connections
    return stub.state.results.get(cid, "")


# --------------------------------------------------------------------------- raw sockets

async def test_upgrade_early_stdin_and_half_close_in_one_go(stub: Stub) -> None:
    """Request, stdin and EOF before the server even ran the handler: nothing is lost,
    the half-close is "stdin ended", output continues, and the stream ends in EOF."""
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/echo1/attach?stdin=1&stdout=1")
                            + b"abc\ndef\n")
    sock.shutdown(socket.SHUT_WR)
    head, rest = await read_head(sock)
    body = await read_to_eof(sock, rest)
    sock.close()
    assert head[0] == "HTTP/1.1 101 UPGRADED"
    headers = headers_of(head)
    assert headers["content-type"] == MEDIA_MULTIPLEXED
    assert headers["connection"] == "Upgrade" and headers["upgrade"] == "tcp"
    assert headers["api-version"] == API_VERSION and headers["ostype"] == "linux"
    assert headers["server"].startswith("Docker/") and headers["docker-experimental"] == "false"
    assert not {"content-length", "transfer-encoding", "date"} & headers.keys()
    # decode() rejects any stray byte after the last frame
    assert demux(body) == {1: b"hello\nABC\nDEF\nbye\n", 2: b"err\n"}
    assert await finished(stub, "echo1") == "eof"


async def test_upgrade_stdin_after_101_in_pieces(stub: Stub) -> None:
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/v1.41/containers/echo2/attach") + b"one ")
    head, rest = await read_head(sock)
    assert head[0] == "HTTP/1.1 101 UPGRADED"
    assert headers_of(head)["content-type"] == MEDIA_RAW    # API < 1.42
    for piece in (b"two ", b"three"):
        await loop.sock_sendall(sock, piece)
        await asyncio.sleep(0.02)
    sock.shutdown(socket.SHUT_WR)
    body = await read_to_eof(sock, rest)
    sock.close()
    frames = decode(body)
    assert frames[:2] == [(1, b"hello\n"), (2, b"err\n")] and frames[-1] == (1, b"bye\n")
    assert b"".join(p for _, p in frames[2:-1]) == b"ONE TWO THREE"
    assert await finished(stub, "echo2") == "eof"


async def test_large_stdin_and_output_with_flow_control(stub: Stub) -> None:
    payload = bytes(range(97, 123)) * 40000          # ~1 MiB of a-z
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    reader = asyncio.ensure_future(read_to_eof(sock))
    await loop.sock_sendall(sock, request_bytes("/containers/quiet-big/attach") + payload)
    sock.shutdown(socket.SHUT_WR)
    data = await reader
    sock.close()
    _, _, body = data.partition(b"\r\n\r\n")
    assert demux(body) == {1: payload.upper() + b"bye\n"}
    assert await finished(stub, "quiet-big") == "eof"


async def test_exec_start_body_then_stdin_in_same_send(stub: Stub) -> None:
    """Upgrade with a JSON body: aiohttp switches after the body; stdin follows it."""
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/v1.50/exec/quiet-exec/start", body=body,
                                                ctype="application/json") + b"xyz")
    sock.shutdown(socket.SHUT_WR)
    head, rest = await read_head(sock)
    data = await read_to_eof(sock, rest)
    sock.close()
    assert head[0] == "HTTP/1.1 101 UPGRADED"
    assert demux(data) == {1: b"XYZbye\n"}
    assert await finished(stub, "quiet-exec") == "eof"


async def test_without_upgrade_header_answers_200_raw_stream(stub: Stub) -> None:
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/echo3/attach", upgrade=False))
    head, rest = await read_head(sock)
    assert head[0] == "HTTP/1.1 200 OK"
    headers = headers_of(head)
    assert headers["content-type"] == MEDIA_RAW and "upgrade" not in headers
    assert headers["api-version"] == API_VERSION
    await loop.sock_sendall(sock, b"q")
    sock.shutdown(socket.SHUT_WR)
    body = await read_to_eof(sock, rest)
    sock.close()
    assert demux(body) == {1: b"hello\nQbye\n", 2: b"err\n"}
    assert await finished(stub, "echo3") == "eof"


async def test_errors_before_hijack_are_json(stub: Stub) -> None:
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/echo4/attach?detachKeys=ctrl-"))
    head, rest = await read_head(sock)
    assert head[0].startswith("HTTP/1.1 400 ")
    length = int(headers_of(head)["content-length"])
    while len(rest) < length:
        rest += await loop.sock_recv(sock, 4096)
    sock.close()
    assert json.loads(rest) == {"message": "Invalid detach keys (ctrl-) provided"}


@pytest.mark.parametrize("query, keys", [("", b"\x10\x11"), ("?detachKeys=ctrl-x,y", b"\x18y")])
async def test_tty_raw_bytes_and_detach_keys(stub: Stub, query: str, keys: bytes) -> None:
    cid = f"tty-{len(query)}"
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes(f"/containers/{cid}/attach{query}"))
    head, rest = await read_head(sock)
    assert headers_of(head)["content-type"] == MEDIA_RAW
    await loop.sock_sendall(sock, b"ls " + keys[:1])      # a partial sequence is held back
    await asyncio.sleep(0.05)
    await loop.sock_sendall(sock, keys[1:] + b"never")
    body = await read_to_eof(sock, rest)                  # detach half-closes our side
    sock.close()
    assert body == b"hello\nerr\nLS "                     # raw bytes, no frames
    assert await finished(stub, cid) == "detached"


@pytest.mark.parametrize("cid", ["silent1", "chatty1"])
async def test_client_goes_away_mid_stream(stub: Stub, cid: str) -> None:
    """Full close (not half-close): `closed` fires whether or not output is flowing, the
    handler ends with "gone", aiohttp forgets the connection, nothing is logged."""
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes(f"/containers/{cid}/attach"))
    head, rest = await read_head(sock)
    assert head[0] == "HTTP/1.1 101 UPGRADED"
    if cid.startswith("chatty"):
        while len(rest) < 50:
            rest += await loop.sock_recv(sock, 4096)
    sock.close()
    assert await finished(stub, cid) == "gone"


async def test_handler_returning_a_response_after_hijack_writes_nothing(stub: Stub) -> None:
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/mb/misbehave"))
    head, rest = await read_head(sock)
    await asyncio.wait_for(stub.state.done("mb").wait(), TIMEOUT)
    await asyncio.sleep(0.1)
    assert await read_to_eof(sock, rest) == b"raw"
    sock.close()
    await finished(stub, "mb")


@pytest.mark.parametrize("upgrade", [True, False])
async def test_client_gone_before_hijack(stub: Stub, upgrade: bool) -> None:
    """The handler still gets a Hijacked (closed from the start or at once); no errors."""
    cid = f"late-{upgrade}"
    sock = await connect(stub.sock)
    await asyncio.get_running_loop().sock_sendall(
        sock, request_bytes(f"/containers/{cid}/late", upgrade=upgrade))
    sock.close()
    assert await finished(stub, cid) == "gone"


async def test_half_close_is_not_gone(stub: Stub) -> None:
    """A client that half-closes at once (docker run without -i) still gets everything."""
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/chatty2/attach"))
    await read_head(sock)
    sock.shutdown(socket.SHUT_WR)
    await asyncio.sleep(0.1)
    received = b""
    while received.count(b"tick") < 20:                   # output flowing after our EOF
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), TIMEOUT)
        assert chunk, "the server ended the stream on our half-close"
        received += chunk
    assert not stub.state.done("chatty2").is_set()
    sock.close()
    assert await finished(stub, "chatty2") == "gone"


async def test_server_shutdown_mid_stream(stub: Stub) -> None:
    sock = await connect(stub.sock)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, request_bytes("/containers/silent2/attach"))
    await read_head(sock)
    await asyncio.wait_for(stub.runner.cleanup(), TIMEOUT)    # cancels the handler
    await asyncio.wait_for(stub.state.done("silent2").wait(), TIMEOUT)
    assert await read_to_eof(sock) == b""                   # the socket was closed
    sock.close()


# --------------------------------------------------------------------------- real clients

async def test_docker_py_attach_socket(stub: Stub) -> None:
    docker = pytest.importorskip("docker")

    def run() -> bytes:
        client = docker.APIClient(base_url=f"unix://{stub.sock}", version="1.50", timeout=10)
        try:
            raw = client.attach_socket("quiet-py", params={"stdin": 1, "stdout": 1,
                                                           "stderr": 1, "stream": 1})
            raw._sock.sendall(b"from docker-py")
            raw._sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := raw.read(65536):
                data += chunk
            raw.close()
            return data
        finally:
            client.close()

    data = await asyncio.wait_for(asyncio.to_thread(run), TIMEOUT)
    assert demux(data) == {1: b"FROM DOCKER-PYbye\n"}
    assert await finished(stub, "quiet-py") == "eof"


async def cli(stub: Stub, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    env = dict(os.environ, DOCKER_HOST=f"unix://{stub.sock}", DOCKER_CONFIG=stub.tmp,
               DOCKER_CLI_HINTS="false")
    env.pop("DOCKER_API_VERSION", None)
    proc = await asyncio.create_subprocess_exec(
        DOCKER_CLI, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), TIMEOUT * 2)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_cli_attach_with_piped_stdin(stub: Stub) -> None:
    code, out, err = await cli(stub, "attach", "--sig-proxy=false", "echo-cli",
                               stdin=b"abc\n")
    assert (out, err) == (b"hello\nABC\nbye\n", b"err\n")
    assert code == 3                                    # the wait endpoint's StatusCode
    assert await finished(stub, "echo-cli") == "eof"


async def test_cli_attach_no_stdin_half_closes_at_once(stub: Stub) -> None:
    code, out, err = await cli(stub, "attach", "--no-stdin", "--sig-proxy=false", "echo-ns")
    assert (code, out, err) == (3, b"hello\nbye\n", b"err\n")
    assert await finished(stub, "echo-ns") == "eof"


async def test_cli_exec_interactive(stub: Stub) -> None:
    """exec start carries a JSON body before the upgrade; the CLI then reads ExitCode."""
    code, out, err = await cli(stub, "exec", "-i", "ctr", "cat", stdin=b"piped in\n")
    assert (code, out, err) == (5, b"PIPED IN\nbye\n", b"")
    assert await finished(stub, "quiet-ctr") == "eof"
