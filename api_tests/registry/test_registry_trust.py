"""What a registry can make the daemon do: where credentials go, and how much it reads.

A registry (or something in its place) answers with absolute URLs of its own
choosing: the next page of a tag list (`Link: next`), where to upload a blob
(`Location`), where to fetch one (a redirect to storage). Credentials go only to
the origin (scheme, host, port) that asked for them, as distribution's client
keys its challenges; the others are followed without them. Token servers get
credentials only over TLS unless their host is insecure. Every body the daemon
keeps in memory is capped: an endless one is an error, not an OOM kill.

Listeners on 127.0.0.1 and 127.0.0.2 stand in front of the reference registry
(docker-registry) and play the hostile parts.
"""

from __future__ import annotations

import base64
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from aiohttp import web

from .fixtures import Registry
from .listener import Listener, endless, relay

Docker = Callable[..., Any]


def random_rootfs(path: Path, size: int = 256 << 10) -> Path:
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(os.urandom(size)))
    return path


def peak_rss(pid: int) -> int:
    """The process's high-water mark of resident memory, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def not_found() -> web.Response:
    return web.json_response({"errors": [{"code": "NOT_FOUND", "message": "not here"}]},
                             status=404)


def test_credentials_stay_with_the_registry_origin(docker: Docker, daemon: Any,
                                                   basic_registry: Registry, tmp_path: Path,
                                                   unique_name: Callable[..., str]) -> None:
    """Tag pages and uploads sent to 127.0.0.2, blobs redirected to another port of
    127.0.0.1: all followed, none with the registry's credentials."""
    user, password = basic_registry.user, basic_registry.password  # type: ignore[attr-defined]
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    repo = f"trust/{unique_name('origin')}"
    upstream = basic_registry.url

    async def front(request: web.Request) -> web.StreamResponse:  # the registry's origin
        path = request.path
        if path == f"/v2/{repo}/tags/list" and request.method == "GET":
            return web.json_response({"name": repo, "tags": ["v1"]}, headers={
                "Link": f'<{other.url}/v2/{repo}/tags/list?last=v1>; rel="next"'})
        if "/blobs/sha256:" in path and request.method == "GET":
            raise web.HTTPTemporaryRedirect(f"{storage.url}/store/{path.rsplit('/', 1)[1]}")
        response = await relay(front_listener, request, upstream)
        if request.method == "POST" and "/blobs/uploads/" in path and response.status == 202:
            response.headers["Location"] = (
                f"{other.url}/upload?to={quote(response.headers['Location'], safe='')}")
        return response

    async def elsewhere(request: web.Request) -> web.StreamResponse:  # 127.0.0.2
        if request.path == f"/v2/{repo}/tags/list":
            return web.json_response({"name": repo, "tags": ["v2"]})
        if request.path == "/upload" and request.method == "PUT":
            query = parse_qs(request.query_string)
            target = query["to"][0]
            target += ("&" if "?" in target else "?") + "digest=" + query["digest"][0]
            async with other.upstream.put(target, data=await request.read(), headers={
                    "Authorization": basic, "Content-Type": "application/octet-stream"}) as r:
                return web.Response(status=r.status, headers={
                    k: v for k, v in r.headers.items() if k == "Docker-Content-Digest"})
        if request.path == "/upload" and request.method == "DELETE":
            return web.Response(status=204)
        return not_found()

    async def store(request: web.Request) -> web.StreamResponse:  # another port
        digest = request.path.rsplit("/", 1)[1]
        async with storage.upstream.get(f"{upstream}/v2/{repo}/blobs/{digest}",
                                        headers={"Authorization": basic}) as r:
            return web.Response(status=r.status, body=await r.read(),
                                headers={"Content-Type": "application/octet-stream"})

    local = f"{unique_name('orig')}:latest"
    docker("import", random_rootfs(tmp_path / "rootfs.tar"), local)
    with Listener("127.0.0.1", front) as front_listener, \
            Listener("127.0.0.2", elsewhere) as other, Listener("127.0.0.1", store) as storage:
        remote = f"{front_listener.host}/{repo}"
        docker("login", front_listener.host, "-u", user, "--password-stdin",
               input=password + "\n")
        try:
            for tag in ("v1", "v2"):
                docker("tag", local, f"{remote}:{tag}")
                docker("push", f"{remote}:{tag}")
                docker("rmi", f"{remote}:{tag}")
            docker("rmi", local)
            pulled = docker("pull", "--all-tags", remote)
            assert f"Status: Downloaded newer image for {remote}" in pulled.stdout
            assert docker("image", "inspect", f"{remote}:v1", f"{remote}:v2").returncode == 0
        finally:
            docker("logout", front_listener.host)
            docker("rmi", f"{remote}:v1", f"{remote}:v2", local, check=False)
        assert front_listener.authorized(), "the registry itself never got the credentials"
        assert [s for s in other.seen if s[0] == "PUT"], "the upload never went to 127.0.0.2"
        assert [s for s in other.seen if "tags/list" in s[1]], "page 2 never fetched"
        assert storage.seen, "no blob was fetched through the redirect"
        assert other.authorized() == [], "credentials went to another host"
        assert storage.authorized() == [], "credentials went to another port"


def test_tag_pagination_is_bounded(docker: Docker, plain_registry: Registry,
                                   unique_name: Callable[..., str]) -> None:
    """A tag list whose next page never stops coming, or leads back to itself."""
    async def pages(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/tags/list"):
            repo = request.path[len("/v2/"):-len("/tags/list")]
            if repo.endswith("-loop"):
                return web.json_response({"name": repo, "tags": ["a"]}, headers={
                    "Link": f'<{request.path}?n=1>; rel="next"'})
            n = int(request.query.get("last", "0"))
            # A sane server would stop here; pre-cap clients would then pull 3000 tags.
            link = {"Link": f'<{request.path}?last={n + 1}>; rel="next"'} if n < 3000 else {}
            return web.json_response({"name": repo, "tags": [f"t{n}"]}, headers=link)
        return await relay(listener, request, plain_registry.url)

    with Listener("127.0.0.1", pages) as listener:
        forever = docker("pull", "--all-tags", f"{listener.host}/x/{unique_name('pages')}",
                         check=False)
        assert forever.returncode == 1
        assert "the registry paginates past 1000 pages" in forever.stderr, forever.stderr
        assert len(listener.seen) < 1010
        looping = docker("pull", "--all-tags", f"{listener.host}/x/{unique_name('p')}-loop",
                         check=False)
        assert looping.returncode == 1
        assert "the next page link loops back" in looping.stderr, looping.stderr


def test_endless_bodies_fail_clearly_and_memory_stays_bounded(
        docker: Docker, daemon: Any, plain_registry: Registry,
        unique_name: Callable[..., str]) -> None:
    """Each answer the daemon reads into memory, streamed for 512 MiB: the ping, a token,
    a tag list page, a manifest, an error. The daemon stops reading at its cap."""
    mode = {"now": ""}

    async def hostile(request: web.Request) -> web.StreamResponse:
        path, now = request.path, mode["now"]
        if path == "/v2/" and now == "ping":
            return await endless(request)
        if path == "/v2/" and now == "token":
            return web.Response(status=401, headers={"WWW-Authenticate": (
                f'Bearer realm="{listener.url}/token",service="endless"')})
        if path == "/token":
            return await endless(request)
        if path.endswith("/tags/list") and now == "tags":
            return await endless(request)
        if "/manifests/" in path and now == "manifest":
            return await endless(request,
                                 content_type="application/vnd.oci.image.manifest.v1+json")
        if "/manifests/" in path and now == "error":
            return await endless(request, status=404)
        return await relay(listener, request, plain_registry.url)

    pid = daemon.proc.pid
    before = peak_rss(pid)
    with Listener("127.0.0.1", hostile) as listener:
        name = f"{listener.host}/endless/{unique_name('e')}"
        expected = {
            "ping": "manifest unknown",  # the ping's body is not needed: the pull goes on
            "token": (f"token response from {listener.url}/token: the response exceeds the "
                      "limit of 1048576 bytes"),
            "tags": "the response exceeds the limit of 4194304 bytes",
            "manifest": "manifest latest: the response exceeds the limit of 4194304 bytes",
            "error": "unexpected status 404",
        }
        for now, message in expected.items():
            mode["now"] = now
            args = ("pull", "--all-tags", name) if now == "tags" else ("pull", f"{name}:latest")
            result = docker(*args, check=False)
            assert result.returncode == 1, (now, result.stdout)
            assert message in result.stderr, (now, result.stderr)
    grown = peak_rss(pid) - before
    assert grown < 128 << 20, f"the daemon's peak memory grew by {grown >> 20} MiB"
    assert docker("version").returncode == 0


def test_credentials_go_to_a_plain_http_token_server_only_if_insecure(
        docker: Docker, lo_address: str, registry_daemon_config: Callable[..., None],
        unique_name: Callable[..., str]) -> None:
    """A registry on 127.0.0.1 whose token server is plain HTTP on another address:
    the password stays home until that address is an insecure registry."""
    async def token_server(request: web.Request) -> web.StreamResponse:
        return web.json_response({"token": "t0k", "expires_in": 300})

    async def registry(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") == "Bearer t0k":
            return web.json_response({})
        return web.Response(status=401, headers={"WWW-Authenticate": (
            f'Bearer realm="{tokens.url}/token",service="plain"')})

    with Listener(lo_address, token_server) as tokens, \
            Listener("127.0.0.1", registry) as front:
        refused = docker("login", front.host, "-u", "carol", "--password-stdin",
                         input="pa55word\n", check=False)
        assert refused.returncode == 1
        assert (f"refusing to send credentials to the token server {tokens.url}/token over "
                "plain HTTP") in refused.stderr, refused.stderr
        assert tokens.authorized() == [], "the password went over plain HTTP"

        registry_daemon_config({"insecure-registries": [lo_address]})
        allowed = docker("login", front.host, "-u", "carol", "--password-stdin",
                         input="pa55word\n")
        assert "Login Succeeded" in allowed.stdout
        docker("logout", front.host)
        (sent,) = {s[2] for s in tokens.authorized()}
        assert base64.b64decode(sent.split()[1]) == b"carol:pa55word"
