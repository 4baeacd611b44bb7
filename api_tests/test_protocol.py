"""The wire protocol as clients see it (API-NOTES §3.1-3.3, §3.6, §3.8, §3.13).

Raw HTTP over the unix socket (http.client and asyncio streams) where the exact
bytes matter, and the stock CLI, docker-py and aiodocker where their parsing
of our answers is what matters.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import os
import re
import socket
import tarfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from dockerd_py.api import server as api_server
from dockerd_py.api.httputil import json_response, read_json

API = "1.50"
SERVER_RE = re.compile(r"^Docker/\S+ \(linux\)$")
NOT_SWARM = ('This node is not a swarm manager. Use "docker swarm init" or '
             '"docker swarm join" to connect this node to swarm and try again.')


# --------------------------------------------------------------------------- raw HTTP helpers

class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("api.moby.localhost", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._unix_path)
        self.sock = sock


class Reply:
    def __init__(self, resp: http.client.HTTPResponse, body: bytes) -> None:
        self.status = resp.status
        self.headers = resp.headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def message(self) -> str:
        assert self.headers.get("Content-Type") == "application/json", self.headers
        doc = self.json()
        assert isinstance(doc, dict) and set(doc) == {"message"}, doc
        return str(doc["message"])


def call(daemon: Any, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None, timeout: float = 60.0) -> Reply:
    conn = UnixHTTPConnection(daemon.sock, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Reply(resp, resp.read())
    finally:
        conn.close()


def q(value: Any) -> str:
    return urllib.parse.quote(json.dumps(value, separators=(",", ":")), safe="")


def assert_docker_headers(headers: Any) -> None:
    __tracebackhide__ = True
    assert headers.get("Api-Version") == API, dict(headers)
    assert SERVER_RE.match(headers.get("Server", "")), dict(headers)
    assert headers.get_all("Server") == [headers["Server"]], "aiohttp's own Server header leaked"
    assert headers.get("Ostype") == "linux", dict(headers)
    assert headers.get("Docker-Experimental") in ("true", "false"), dict(headers)


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def own_image(docker: Any, busybox_tar: Path,
              unique_name: Callable[..., str]) -> Iterator[tuple[str, str]]:
    """(id, tag) of an image only this test uses: busybox with a unique label."""
    tag = unique_name("img") + ":v1"
    out = docker("import", "-c", f"LABEL test.unique={tag}", busybox_tar, tag).stdout
    image_id = out.strip().splitlines()[-1]
    assert image_id.startswith("sha256:"), out
    yield image_id, tag
    docker("rmi", "-f", image_id, check=False)


# --------------------------------------------------------------------------- /_ping and headers

@pytest.mark.parametrize("path", ["/_ping", f"/v{API}/_ping", "/v1.24/_ping"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_ping(daemon: Any, method: str, path: str) -> None:
    r = call(daemon, method, path)
    assert r.status == 200
    assert r.body == (b"OK" if method == "GET" else b"")
    h = r.headers
    assert_docker_headers(h)
    assert h.get("Builder-Version") in ("1", "2")
    assert h.get("Cache-Control") == "no-cache, no-store, must-revalidate"
    assert h.get("Pragma") == "no-cache"
    assert h.get("Content-Type", "").startswith("text/plain")
    if method == "HEAD":
        assert h.get("Content-Length") == "0"


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/version", 200),
    ("GET", f"/v{API}/info", 200),
    ("GET", "/nope", 404),
    ("POST", "/_ping", 404),                    # wrong method: page not found, as dockerd
    ("GET", "/v1.23/version", 400),
    ("GET", "/images/nope-no-such-image/json", 404),
    ("GET", "/swarm", 503),
    ("GET", "/events?since=0&until=1", 200),    # a streaming (chunked) response
    ("POST", "/images/load", 200),              # errors of a load go in-band, as dockerd
])
def test_docker_headers_on_every_response(daemon: Any, method: str, path: str,
                                          status: int) -> None:
    body = b"definitely not a tar archive" * 40 if path.endswith("/load") else None
    r = call(daemon, method, path, body=body)
    assert r.status == status, r.body
    assert_docker_headers(r.headers)
    if status >= 400:
        assert r.message()
    if path.endswith("/load"):
        assert b'"errorDetail"' in r.body


# --------------------------------------------------------------------------- negotiation

def test_cli_negotiates_latest(docker: Any) -> None:
    out = docker("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}}")
    assert out.stdout.split() == [API, API]
    out = docker("version", "--format", "{{.Server.MinAPIVersion}}")
    assert out.stdout.strip() == "1.24"


def test_cli_with_pinned_older_api(docker: Any, busybox_image: str) -> None:
    env = {"DOCKER_API_VERSION": "1.41"}
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}", env=env)
    assert busybox_image in out.stdout.split()
    out = docker("version", "--format", "{{.Client.APIVersion}}", env=env)
    assert out.stdout.strip() == "1.41"


def test_cli_with_unsupported_api(docker: Any) -> None:
    r = docker("images", env={"DOCKER_API_VERSION": "1.23"}, check=False)
    assert r.returncode == 1
    assert ("Error response from daemon: client version 1.23 is too old. Minimum supported "
            "API version is 1.24, please upgrade your client to a newer version") in r.stderr


def test_dockerpy_negotiates_latest(daemon: Any) -> None:
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=daemon.host, version="auto")
    try:
        assert client.api.api_version == API
        assert client.version()["ApiVersion"] == API
        assert client.ping() is True
    finally:
        client.close()


async def test_aiodocker_negotiates_latest(aiodocker_client: Any) -> None:
    docker = aiodocker_client()
    version = await docker.version()
    assert version["ApiVersion"] == API
    assert version["MinAPIVersion"] == "1.24"
    assert docker.api_version == f"v{API}"  # aiodocker keeps the "v" prefix


@pytest.mark.parametrize("version", ["1.24", "1.41", "1.44", API])
def test_supported_prefixes(daemon: Any, version: str) -> None:
    r = call(daemon, "GET", f"/v{version}/version")
    assert r.status == 200
    assert r.json()["ApiVersion"] == API
    assert_docker_headers(r.headers)


@pytest.mark.parametrize("version,message", [
    ("1.23", "client version 1.23 is too old. Minimum supported API version is 1.24, "
             "please upgrade your client to a newer version"),
    ("1.0", "client version 1.0 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version"),
    ("1.51", "client version 1.51 is too new. Maximum supported API version is 1.50"),
    ("1.99", "client version 1.99 is too new. Maximum supported API version is 1.50"),
])
def test_unsupported_prefixes(daemon: Any, version: str, message: str) -> None:
    r = call(daemon, "GET", f"/v{version}/version")
    assert r.status == 400
    assert r.headers.get("Content-Type") == "application/json"  # exactly: no charset
    assert r.message() == message


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("path", ["/nope", "/v1.50/nope", "/images", "/v1.50/containers/x/nope"])
def test_unknown_path(daemon: Any, path: str) -> None:
    r = call(daemon, "GET", path)
    assert r.status == 404
    assert r.headers.get("Content-Type") == "application/json"
    assert r.json() == {"message": "page not found"}


def test_error_body_shape(daemon: Any) -> None:
    r = call(daemon, "GET", "/images/nope:latest/json")
    assert r.status == 404
    assert r.headers.get("Content-Type") == "application/json"
    assert r.message() == "No such image: nope:latest"


def test_cli_renders_error_message(docker: Any) -> None:
    r = docker("rmi", "nope", check=False)
    assert r.returncode == 1
    assert "Error response from daemon: No such image: nope:latest" in r.stderr
    assert '{"message"' not in r.stderr and '{"message"' not in r.stdout


def test_cli_inspect_missing_object(docker: Any) -> None:
    r = docker("inspect", "nope", check=False)
    assert r.returncode == 1
    assert "Error: No such object: nope" in r.stderr


# --------------------------------------------------------------------------- filters

def test_filters_both_wire_forms(daemon: Any, own_image: tuple[str, str]) -> None:
    image_id, tag = own_image
    repo = tag.split(":")[0]
    bools = call(daemon, "GET", "/images/json?filters=" + q({"reference": {repo: True}}))
    lists = call(daemon, "GET", "/images/json?filters=" + q({"reference": [repo]}))
    assert bools.status == lists.status == 200
    assert bools.json() == lists.json()
    assert [i["Id"] for i in bools.json()] == [image_id]
    none = call(daemon, "GET", "/images/json?filters=" + q({"reference": {"no-such-repo": True}}))
    assert none.json() == []
    # label filter, both forms, AND with reference
    both = {"reference": [repo], "label": [f"test.unique={tag}"]}
    assert [i["Id"] for i in call(daemon, "GET", "/images/json?filters=" + q(both)).json()] \
        == [image_id]
    wrong = {"reference": {repo: True}, "label": {"test.unique=other": True}}
    assert call(daemon, "GET", "/images/json?filters=" + q(wrong)).json() == []


def test_filters_clients_agree(docker: Any, dockerpy: Any, own_image: tuple[str, str]) -> None:
    image_id, tag = own_image
    repo = tag.split(":")[0]
    # the Go CLI sends map-of-bools, docker-py map-of-lists
    cli = docker("images", "--no-trunc", "-q", "--filter", f"reference={repo}").stdout.split()
    py = [i.id for i in dockerpy.images.list(filters={"reference": repo})]
    assert cli == py == [image_id]


@pytest.mark.parametrize("raw", ["{bad", "[]", '{"reference":"busybox"}', '{"reference":{"x":1}}'])
def test_filters_malformed(daemon: Any, raw: str) -> None:
    r = call(daemon, "GET", "/images/json?filters=" + urllib.parse.quote(raw, safe=""))
    assert r.status == 400
    assert r.message().startswith("invalid filter")


@pytest.mark.parametrize("path", ["/images/json", "/events", "/images/prune"])
def test_filters_unknown_key(daemon: Any, path: str) -> None:
    method = "POST" if path.endswith("prune") else "GET"
    r = call(daemon, method, path + "?filters=" + q({"x": {"y": True}}))
    assert r.status == 400
    assert r.message() == "invalid filter 'x'"


# --------------------------------------------------------------------------- bodies

def test_load_non_tar_is_rejected(daemon: Any) -> None:
    # dockerd answers 200 and reports the error in the stream, before any progress.
    r = call(daemon, "POST", "/images/load", body=b"this is not a tar archive\n" * 100,
             headers={"Content-Type": "application/x-tar"})
    assert r.status == 200
    messages = [json.loads(line) for line in r.body.splitlines() if line.strip()]
    assert len(messages) == 1 and "invalid tar archive" in messages[0]["error"]
    assert messages[0]["errorDetail"] == {"message": messages[0]["error"]}


def test_cli_load_errors(docker: Any) -> None:
    r = docker("load", input=b"this is not a tar archive\n" * 100, check=False)
    assert r.returncode == 1
    assert "invalid tar archive" in r.stderr
    assert '{"message"' not in r.stderr and "errorDetail" not in r.stderr

    r = docker("load", input=tar_bytes({"hello.txt": b"hi\n"}), check=False)
    assert r.returncode == 1
    assert "no manifest.json or index.json" in r.stderr


def test_cli_load_in_band_error(docker: Any, daemon: Any, unique_name: Callable[..., str]) -> None:
    """A layer whose content does not match the config's diff ID: the error comes after
    the 200 (progress already sent), in-band as errorDetail, and the CLI shows it."""
    tag = unique_name("bad") + ":v1"
    layer = tar_bytes({"file.txt": b"real content\n"})
    wrong_diff = "sha256:" + "0" * 64
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [wrong_diff]},
                         "config": {}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": ["layer/layer.tar"]}]).encode()
    archive = tar_bytes({"layer/layer.tar": layer, "config.json": config,
                         "manifest.json": manifest})

    r = call(daemon, "POST", "/images/load", body=archive)
    assert r.status == 200  # progress went out before the layer was checked
    messages = [json.loads(line) for line in r.body.splitlines() if line.strip()]
    assert "errorDetail" in messages[-1], messages
    assert "does not match its diff ID" in messages[-1]["errorDetail"]["message"]
    assert messages[-1]["error"] == messages[-1]["errorDetail"]["message"]

    r = docker("load", input=archive, check=False)
    assert r.returncode == 1
    assert "does not match its diff ID" in r.stderr
    assert "errorDetail" not in r.stderr + r.stdout
    assert docker("image", "inspect", tag, check=False).returncode == 1


def test_huge_load_body_refused_early(daemon: Any) -> None:
    """20 MB declared, 64 KiB sent: the error (in-band after a 200, as dockerd sends load
    errors) must come without waiting for the rest."""
    declared = 20 << 20
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(20.0)  # a hang guard, not a timing assertion
        s.connect(daemon.sock)
        s.sendall(b"POST /v1.50/images/load HTTP/1.1\r\nHost: docker\r\n"
                  b"Content-Type: application/x-tar\r\n"
                  + f"Content-Length: {declared}\r\n\r\n".encode())
        s.sendall(b"\xff" * (64 << 10))
        head = b""
        try:
            while b"errorDetail" not in head:
                chunk = s.recv(65536)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            pytest.fail("daemon waited for the whole 20 MB body before answering")
    assert head.startswith(b"HTTP/1.1 200 "), head[:200]
    assert b'"errorDetail"' in head, head[:400]


# read_json, through the real app factory (headers, error middleware), on a test route:
# no endpoint of the daemon takes a JSON body yet.

_json_routes = web.RouteTableDef()


@_json_routes.post("/test/json")
async def _echo_json(request: web.Request) -> web.Response:
    return json_response({"got": await read_json(request)})


@_json_routes.post("/test/json-required")
async def _echo_json_required(request: web.Request) -> web.Response:
    return json_response({"got": await read_json(request, required=True)})


@pytest.fixture
async def json_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import tempfile
    sock_dir = tempfile.mkdtemp(prefix="dpy-json-", dir="/tmp")
    sock = os.path.join(sock_dir, "s.sock")
    runner = web.AppRunner(api_server.make_app([_json_routes]))
    await runner.setup()
    await web.UnixSite(runner, sock).start()
    yield sock
    await runner.cleanup()
    try:
        os.unlink(sock)
    except FileNotFoundError:
        pass
    os.rmdir(sock_dir)


async def _raw(sock: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        writer.write(head + body)
        await writer.drain()
        return await asyncio.wait_for(_read_response(reader), 20)
    finally:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def _post(path: str, body: bytes, ctype: str | None = "application/json",
          length: int | None = None) -> tuple[bytes, bytes]:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    head += f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    return head.encode(), body


async def test_read_json_valid_and_empty(json_app: str) -> None:
    status, headers, body = await _raw(json_app, *_post("/v1.50/test/json", b'{"a": [1, 2]}'))
    assert status == 200 and json.loads(body) == {"got": {"a": [1, 2]}}
    assert headers["api-version"] == API and headers["ostype"] == "linux"
    status, _, body = await _raw(json_app, *_post("/test/json", b"", ctype=None))
    assert status == 200 and json.loads(body) == {"got": None}
    status, _, body = await _raw(json_app, *_post("/test/json-required", b"", ctype=None))
    assert status == 400 and json.loads(body) == {"message": "request body is empty"}


@pytest.mark.parametrize("payload", [b"{not json", b'{"a": 1', b"\xff\xfe{}", b"[1, 2,]"])
async def test_read_json_invalid(json_app: str, payload: bytes) -> None:
    status, headers, body = await _raw(json_app, *_post("/test/json", payload))
    assert status == 400
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) == {"message"} and doc["message"].startswith("invalid JSON")


async def test_read_json_wrong_content_type(json_app: str) -> None:
    status, _, body = await _raw(json_app, *_post("/test/json", b"{}", ctype="text/plain"))
    assert status == 400
    assert json.loads(body)["message"] == \
        'unsupported Content-Type header (text/plain): must be "application/json"'


@pytest.mark.parametrize("chunked", [False, True])
async def test_read_json_body_in_pieces(json_app: str, chunked: bool) -> None:
    """A valid 1 MB document that arrives in several writes is read whole."""
    doc = {"Env": [f"VAR{i}=" + "x" * 100 for i in range(10000)]}
    payload = json.dumps(doc).encode()
    reader, writer = await asyncio.open_unix_connection(json_app)
    try:
        if chunked:
            writer.write(b"POST /test/json HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        else:
            writer.write(b"POST /test/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         + f"\r\nContent-Length: {len(payload)}\r\n\r\n".encode())
        for i in range(0, len(payload), 32 << 10):
            piece = payload[i:i + (32 << 10)]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            await asyncio.sleep(0)
        if chunked:
            writer.write(b"0\r\n\r\n")
        status, _, body = await asyncio.wait_for(_read_response(reader), 20)
    finally:
        writer.close()
    assert status == 200, body[:300]
    assert json.loads(body) == {"got": doc}


async def test_read_json_huge_declared_body(json_app: str) -> None:
    """Content-Length: 20 MB, 1 KiB sent: refused at once from the header."""
    head, body = _post("/test/json", b"[" + b"0," * 500, length=20 << 20)
    status, _, reply = await _raw(json_app, head, body)
    assert status == 400
    assert json.loads(reply) == {"message": "request body is too large"}


async def test_read_json_huge_chunked_body(json_app: str) -> None:
    """A chunked 20 MB body: the server answers after reading past its cap (8 MiB),
    long before the client has sent everything."""
    total = 20 << 20
    chunk = b"[" + b"0," * ((64 << 10) // 2 - 1) + b"0"  # 64 KiB pieces of JSON-ish text
    reader, writer = await asyncio.open_unix_connection(json_app)
    sent = 0
    try:
        writer.write(b"POST /test/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        response = asyncio.ensure_future(asyncio.wait_for(_read_response(reader), 60))
        while sent < total and not response.done():
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
        if not response.done():
            writer.write(b"0\r\n\r\n")
        status, _, reply = await response
    finally:
        writer.close()
    assert status == 400
    assert json.loads(reply) == {"message": "request body is too large"}
    assert sent < total, "the server read the whole 20 MB body before refusing it"


# --------------------------------------------------------------------------- query booleans

@pytest.mark.parametrize("value,expected", [
    ("1", True), ("true", True), ("True", True), ("yes", True), ("anything", True),
    ("0", False), ("no", False), ("false", False), ("False", False), ("none", False),
    ("NONE", False), ("", False),
])
def test_query_bool_values(daemon: Any, own_image: tuple[str, str], value: str,
                           expected: bool) -> None:
    image_id, tag = own_image
    # shared-size: SharedSize is computed only when the flag is true
    r = call(daemon, "GET", f"/images/json?shared-size={value}&filters="
             + q({"reference": [tag.split(":")[0]]}))
    assert r.status == 200
    [entry] = r.json()
    assert (entry["SharedSize"] != -1) is expected
    # all: accepted in every spelling, same listing (no intermediate images here)
    r = call(daemon, "GET", f"/images/json?all={value}&filters=" + q({"reference": [tag]}))
    assert r.status == 200 and [i["Id"] for i in r.json()] == [image_id]


@pytest.mark.parametrize("value", ["0", "no", "false", "none", ""])
def test_query_bool_false_force(daemon: Any, docker: Any, own_image: tuple[str, str],
                                unique_name: Callable[..., str], value: str) -> None:
    image_id, _ = own_image
    docker("tag", image_id, unique_name("other") + ":x")  # a second repository
    r = call(daemon, "DELETE", f"/images/{image_id}?force={value}")
    assert r.status == 409, r.body
    assert "must be forced" in r.message()


@pytest.mark.parametrize("value", ["1", "true", "True"])
def test_query_bool_true_force(daemon: Any, docker: Any, own_image: tuple[str, str],
                               unique_name: Callable[..., str], value: str) -> None:
    image_id, _ = own_image
    docker("tag", image_id, unique_name("other") + ":x")
    r = call(daemon, "DELETE", f"/images/{image_id}?force={value}")
    assert r.status == 200, r.body
    assert {"Deleted": image_id} in r.json()
    assert call(daemon, "GET", f"/images/{image_id}/json").status == 404


# --------------------------------------------------------------------------- events

def test_events_headers_before_any_event(daemon: Any) -> None:
    conn = UnixHTTPConnection(daemon.sock, timeout=5.0)  # hang guard: headers come at once
    try:
        conn.request("GET", "/v1.50/events?filters=" + q({"type": {"image": True}}))
        try:
            resp = conn.getresponse()
        except TimeoutError:
            pytest.fail("/events sent no headers while no event happened")
        assert resp.status == 200
        assert resp.headers.get("Content-Type") == "application/json"
        assert_docker_headers(resp.headers)
    finally:
        conn.close()


def test_events_stream_live(daemon: Any, docker: Any, own_image: tuple[str, str],
                            unique_name: Callable[..., str]) -> None:
    image_id, _ = own_image
    conn = UnixHTTPConnection(daemon.sock, timeout=30.0)
    try:
        conn.request("GET", "/events?filters=" + q({"image": [image_id], "type": ["image"]}))
        resp = conn.getresponse()
        assert resp.status == 200
        new_tag = unique_name("live") + ":t"
        docker("tag", image_id, new_tag)
        line = resp.readline()
        ev = json.loads(line)
        assert ev["Type"] == "image" and ev["Action"] == "tag"
        assert ev["Actor"]["ID"] == image_id
        assert ev["Actor"]["Attributes"]["name"] == new_tag
        assert ev["status"] == "tag" and ev["id"] == image_id  # legacy fields below 1.52
        assert isinstance(ev["time"], int) and ev["timeNano"] // 10**9 == ev["time"]
    finally:
        conn.close()


def _make_image_events(docker: Any, image_id: str, name: str) -> tuple[float, float]:
    start = time.time()
    docker("tag", image_id, name)
    docker("rmi", name)
    return start, time.time()


def test_events_since_until_replay(daemon: Any, docker: Any, own_image: tuple[str, str],
                                   unique_name: Callable[..., str]) -> None:
    image_id, _ = own_image
    name = unique_name("replay") + ":t"
    start, end = _make_image_events(docker, image_id, name)
    # until in the past: replay, then the stream ends on its own
    r = call(daemon, "GET", f"/events?since={start:.9f}&until={end:.9f}", timeout=30)
    assert r.status == 200
    events = [json.loads(line) for line in r.body.splitlines()]
    mine = [(e["Type"], e["Action"]) for e in events if e["Actor"]["ID"] == image_id]
    assert mine == [("image", "tag"), ("image", "untag")]
    assert all(start * 1e9 <= e["timeNano"] <= end * 1e9 for e in events)
    # the same window filtered to containers: nothing, and still ends
    r = call(daemon, "GET", f"/events?since={start:.9f}&until={end:.9f}&filters="
             + q({"type": {"container": True}}), timeout=30)
    assert r.status == 200 and r.body == b""
    # event filter
    r = call(daemon, "GET", f"/events?since={start:.9f}&until={end:.9f}&filters="
             + q({"event": ["untag"], "image": [image_id]}), timeout=30)
    assert [json.loads(x)["Action"] for x in r.body.splitlines()] == ["untag"]


def test_events_dockerpy(dockerpy: Any, docker: Any, own_image: tuple[str, str],
                         unique_name: Callable[..., str]) -> None:
    image_id, _ = own_image
    start, end = _make_image_events(docker, image_id, unique_name("py") + ":t")
    since, until = int(start), int(end) + 1  # docker-py sends whole seconds
    events = list(dockerpy.events(decode=True, since=since, until=until))
    assert events and all(since * 10**9 <= e["timeNano"] < until * 10**9 for e in events)
    # whole seconds may reach back to the image's own import: look from `start` on
    mine = [e["Action"] for e in events
            if e.get("Actor", {}).get("ID") == image_id and e["timeNano"] >= start * 1e9]
    assert mine == ["tag", "untag"]
    assert all(e["Type"] in ("image", "container", "network", "volume", "daemon")
               for e in events)


def test_events_cli(docker: Any, own_image: tuple[str, str],
                    unique_name: Callable[..., str]) -> None:
    image_id, _ = own_image
    start, end = _make_image_events(docker, image_id, unique_name("cli") + ":t")
    out = docker("events", "--since", f"{start:.9f}", "--until", f"{end:.9f}",
                 "--filter", f"image={image_id}", "--format", "{{.Type}} {{.Action}}",
                 timeout=30)
    assert out.stdout.splitlines() == ["image tag", "image untag"]


# --------------------------------------------------------------------------- info, df

def test_info_dockerpy(dockerpy: Any, daemon: Any, busybox_image: str) -> None:
    info = dockerpy.info()
    all_images = call(daemon, "GET", "/images/json?all=1").json()
    assert info["Images"] == len(all_images) >= 1
    assert info["DockerRootDir"] == str(daemon.data_root)
    assert info["Driver"] == "overlay2"
    assert info["NCPU"] == os.cpu_count()
    assert info["OSType"] == "linux"
    assert info["ServerVersion"] == dockerpy.version()["Version"]


def test_info_cli(docker: Any) -> None:
    cgroup = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    out = docker("info", "--format", "{{.Driver}} {{.CgroupVersion}}")
    assert out.stdout.split() == ["overlay2", cgroup]


def test_system_df(docker: Any, daemon: Any, busybox_image: str) -> None:
    count = len(call(daemon, "GET", "/images/json?all=1").json())
    out = docker("system", "df").stdout
    images_line = next(line for line in out.splitlines() if line.startswith("Images"))
    assert images_line.split()[1] == str(count), out
    verbose = docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose
    short_id = docker("image", "inspect", "--format", "{{.Id}}", busybox_image).stdout[7:19]
    assert short_id in verbose


# --------------------------------------------------------------------------- plugins, swarm

def test_plugins_empty(daemon: Any, docker: Any) -> None:
    r = call(daemon, "GET", "/plugins")
    assert r.status == 200 and r.json() == []
    assert docker("plugin", "ls", "-q").stdout.strip() == ""


@pytest.mark.parametrize("path", ["/swarm", "/nodes", "/services", "/tasks", "/secrets",
                                  "/configs", "/v1.50/nodes"])
def test_swarm_unavailable(daemon: Any, path: str) -> None:
    r = call(daemon, "GET", path)
    assert r.status == 503
    assert r.message() == NOT_SWARM


def test_cli_swarm_unavailable(docker: Any) -> None:
    r = docker("node", "ls", check=False)
    assert r.returncode == 1
    assert "Error response from daemon: " + NOT_SWARM in r.stderr
