"""The streaming server's wire protocols at their edges, on the daemon's real server and
a real container: URLs come from the CRI's Exec/PortForward RPCs (grpc), then the bytes
are driven by hand -- SPDY as client-go writes it (spdyclient.py), websockets as
kubelet's older clients speak them (v4 binary/base64 channels, the port-forward channel
pairs). What crictl does not exercise: tokens, negotiation failures, refused streams,
hostile frames."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import subprocess
import sys
from typing import Any

import aiohttp
import pytest

from dockerd_py.protos.cri import api_pb2 as pb

from ..conftest import REPO_ROOT
from ..lifetime import die_with_test_run
from .conftest import PAGE, WEB_PORT, Pod
from .spdyclient import EXEC_PROTOCOLS, SpdyClient, exec_streams, status_of

# grpc's C core must not live in the test process: its fork handlers abort the crictl
# children the other tests start. Each call runs in a child python of its own.
_CALL = """
import sys, grpc
from dockerd_py.protos.cri import api_pb2 as pb, api_pb2_grpc as rpc
sock, method, request = sys.argv[1:4]
with grpc.insecure_channel("unix:" + sock) as channel:
    request = getattr(pb, method + "Request").FromString(bytes.fromhex(request))
    reply = getattr(rpc.RuntimeServiceStub(channel), method)(request, timeout=60)
    sys.stdout.write(reply.SerializeToString().hex())
"""


class Runtime:
    """RuntimeService calls of the CRI under test."""

    def __init__(self, sock: str) -> None:
        self.sock = sock

    def _call(self, method: str, request: Any, reply: Any) -> Any:
        done = subprocess.run([sys.executable, "-c", _CALL, self.sock, method,
                               request.SerializeToString().hex()], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120, check=True,
                              preexec_fn=die_with_test_run)
        return reply.FromString(bytes.fromhex(done.stdout))

    def Exec(self, request: pb.ExecRequest) -> pb.ExecResponse:  # noqa: N802
        return self._call("Exec", request, pb.ExecResponse)  # type: ignore[no-any-return]

    def PortForward(self, request: pb.PortForwardRequest  # noqa: N802
                    ) -> pb.PortForwardResponse:
        return self._call("PortForward", request,  # type: ignore[no-any-return]
                          pb.PortForwardResponse)


@pytest.fixture(scope="module")
def runtime(cri_daemon: object) -> Runtime:
    return Runtime(cri_daemon.cri_sock)  # type: ignore[attr-defined]


def _exec_url(runtime: Runtime, cid: str, cmd: list[str], *,
              stdin: bool = False, tty: bool = False) -> str:
    reply = runtime.Exec(pb.ExecRequest(container_id=cid, cmd=cmd, stdin=stdin, tty=tty,
                                        stdout=True, stderr=not tty))
    assert reply.url.startswith("http://127.0.0.1:")
    return str(reply.url)


def test_tokens_are_single_use(runtime: Runtime, stream_pod: Pod) -> None:
    url = _exec_url(runtime, stream_pod.web, ["echo", "once"])
    c = SpdyClient(url, EXEC_PROTOCOLS)
    assert c.status == 101 and c.headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
    streams = exec_streams(c, stdin=False, tty=False)
    c.until(streams["stdout"], streams["error"])
    assert bytes(c.data[streams["stdout"]]) == b"once\n"
    assert status_of(c, streams["error"]) == {"metadata": {}, "status": "Success"}
    c.close()
    again = SpdyClient(url, EXEC_PROTOCOLS)
    assert again.status == 404
    base = url.rsplit("/", 2)[0]
    for path in ("/exec/AAAAAAAAAAA", "/attach/" + url.rsplit("/", 1)[1], "/exec/", "/other"):
        assert SpdyClient(base + path, EXEC_PROTOCOLS).status == 404


def test_a_token_is_for_its_own_verb(runtime: Runtime, stream_pod: Pod) -> None:
    url = _exec_url(runtime, stream_pod.web, ["true"])
    assert SpdyClient(url.replace("/exec/", "/portforward/"), ["portforward.k8s.io"]).status \
        == 404


def test_negotiation_failures(runtime: Runtime, stream_pod: Pod) -> None:
    c = SpdyClient(_exec_url(runtime, stream_pod.web, ["true"]), [])
    assert c.status == 400 and b"X-Stream-Protocol-Version is required" in c.body
    c = SpdyClient(_exec_url(runtime, stream_pod.web, ["true"]), ["v9.channel.k8s.io"])
    assert c.status == 403 and b"unable to negotiate protocol" in c.body
    assert "x-accepted-stream-protocol-versions" in c.headers
    # an older client: v2 has no resize stream and reports failures as text
    c = SpdyClient(_exec_url(runtime, stream_pod.web, ["sh", "-c", "exit 4"]),
                   ["v2.channel.k8s.io"])
    assert c.headers["x-stream-protocol-version"] == "v2.channel.k8s.io"
    err = c.create_stream({"streamType": "error"})
    out = c.create_stream({"streamType": "stdout"})
    c.create_stream({"streamType": "stderr"})
    c.until(out, err)
    assert bytes(c.data[err]).startswith(b"command terminated with non-zero exit code")


def test_unexpected_streams_are_refused(runtime: Runtime,
                                        stream_pod: Pod) -> None:
    c = SpdyClient(_exec_url(runtime, stream_pod.web, ["echo", "fine"]), EXEC_PROTOCOLS)
    err = c.create_stream({"streamType": "error"})
    bogus = c.create_stream({"streamType": "bogus"})
    stdin = c.create_stream({"streamType": "stdin"})       # not asked for in the request
    assert bogus in c.reset and stdin in c.reset and err not in c.reset
    out = c.create_stream({"streamType": "stdout"})
    dup = c.create_stream({"streamType": "stdout"})
    assert dup in c.reset
    c.ping(7)
    c.create_stream({"streamType": "stderr"})
    c.until(out, err)
    assert bytes(c.data[out]) == b"fine\n"
    assert 7 in c.pings


@pytest.mark.parametrize("frame", [
    struct.pack(">II", 1, 0x00FFFFFF),                           # a 16 MiB data frame
    struct.pack(">HHI", 0x8003, 1, 30) + bytes(30),              # SYN_STREAM, bad zlib
    struct.pack(">HHI", 0x8002, 1, 10) + bytes(10),              # SPDY/2
    struct.pack(">II", 9, 4) + b"data",                          # a stream never opened
])
def test_hostile_frames_end_the_connection(runtime: Runtime, stream_pod: Pod,
                                           frame: bytes) -> None:
    c = SpdyClient(_exec_url(runtime, stream_pod.web, ["true"]), EXEC_PROTOCOLS)
    c.sock.sendall(frame)
    c.sock.settimeout(30)
    try:
        while True:
            c.read_frame()
    except (EOFError, ConnectionError):
        pass
    c.close()


async def _ws_exec(url: str, protocol: str, stdin: bytes) -> dict[int, bytes]:
    got: dict[int, bytes] = {}
    b64 = "base64" in protocol
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(url, protocols=(protocol,)) as ws:
        assert ws.protocol == protocol
        if b64:
            await ws.send_str("0" + base64.b64encode(stdin).decode())
        else:
            await ws.send_bytes(b"\x00" + stdin)
        async for msg in ws:
            if b64:
                channel, data = int(msg.data[0]), base64.b64decode(msg.data[1:])
            else:
                channel, data = msg.data[0], msg.data[1:]
            got[channel] = got.get(channel, b"") + data
            if channel == 3:
                break
    return got


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_websocket_v4_channels(runtime: Runtime, stream_pod: Pod,
                               protocol: str) -> None:
    """kubelet's websocket: without v5's close signal stdin cannot end, so the command
    reads one line."""
    url = _exec_url(runtime, stream_pod.web, ["sh", "-c", "read l; echo got:$l; exit 5"],
                    stdin=True)
    got = asyncio.run(_ws_exec(url, protocol, b"hello\n"))
    assert got[1] == b"got:hello\n"
    status = json.loads(got[3])
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


async def _ws_forward(url: str) -> list[bytes]:
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(url, protocols=("v4.channel.k8s.io",)) as ws:
        heads = [(await ws.receive()).data, (await ws.receive()).data]
        await ws.send_bytes(b"\x00GET /index.html HTTP/1.0\r\n\r\n")
        data = [m.data async for m in ws]
    return heads + data


def test_websocket_port_forward_channels(runtime: Runtime,
                                         stream_pod: Pod) -> None:
    """kubelet's websocket port-forward: channels 0 (data) and 1 (error) for the port,
    each opened with the port in two little-endian bytes."""
    url = runtime.PortForward(pb.PortForwardRequest(pod_sandbox_id=stream_pod.id,
                                                    port=[WEB_PORT])).url
    messages = asyncio.run(_ws_forward(url))
    port = struct.pack("<H", WEB_PORT)
    assert messages[:2] == [b"\x00" + port, b"\x01" + port]
    body = b"".join(m[1:] for m in messages[2:] if m[:1] == b"\x00")
    assert PAGE.encode() in body


def test_websocket_unmasked_frame_is_refused(runtime: Runtime,
                                             stream_pod: Pod) -> None:
    url = _exec_url(runtime, stream_pod.web, ["sleep", "30"])
    host, _, rest = url[len("http://"):].partition("/")
    addr, _, port = host.rpartition(":")
    with socket.create_connection((addr, int(port)), timeout=30) as s:
        s.sendall((f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").encode())
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += s.recv(1)
        assert reply.startswith(b"HTTP/1.1 101")
        assert b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in reply        # RFC 6455's example
        s.sendall(b"\x82\x02\x00x")                               # unmasked
        rest_bytes = b""
        while chunk := s.recv(4096):
            rest_bytes += chunk
    close = rest_bytes[rest_bytes.find(b"\x88"):]
    assert close[:1] == b"\x88" and struct.unpack(">H", close[2:4])[0] == 1002
