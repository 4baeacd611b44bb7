"""A small registry front (aiohttp, in a thread) that misbehaves on request.

It relays /v2/ requests to a real registry, and can instead:
  * serve other bytes for a blob (`corrupt[digest] = bytes`),
  * serve a made-up manifest for a reference (`manifests[ref] = (body, media type)`),
  * stop relaying a blob after `stall_after` bytes, set `stalled`, wait for
    `release`, then cut the client's connection if the registry went away.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
from aiohttp import web

_RELAYED = ("Content-Type", "Content-Length", "Docker-Content-Digest", "WWW-Authenticate",
            "Docker-Distribution-Api-Version", "Location", "Link")


class Relay:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.corrupt: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.stall_after: int | None = None
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.blob_requests: list[str] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.host = f"127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("relay did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._ready.set()
        await self._stop.wait()
        await self._session.close()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = path.split("/")
        if "/manifests/" in path and parts[-1] in self.manifests:
            body, media_type = self.manifests[parts[-1]]
            return web.Response(body=body, headers={"Content-Type": media_type})
        if "/blobs/" in path and request.method == "GET":
            self.blob_requests.append(parts[-1])
            if parts[-1] in self.corrupt:
                return web.Response(body=self.corrupt[parts[-1]],
                                    headers={"Content-Type": "application/octet-stream"})
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("accept", "authorization", "content-type")}
        body = await request.read()
        upstream = await self._session.request(request.method, self.upstream + path_qs(request),
                                               headers=headers, data=body or None,
                                               allow_redirects=False)
        async with upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k in _RELAYED})
            await response.prepare(request)
            sent = 0
            stall = self.stall_after if "/blobs/" in path else None
            try:
                async for chunk in upstream.content.iter_chunked(64 << 10):
                    await response.write(chunk)
                    sent += len(chunk)
                    if stall is not None and sent >= stall and not self.stalled.is_set():
                        self.stalled.set()
                        await asyncio.to_thread(self.release.wait, 60)
            except (aiohttp.ClientError, ConnectionError):
                pass
            if upstream.content.at_eof() and sent == int(upstream.headers.get(
                    "Content-Length", sent)):
                await response.write_eof()
            elif request.transport is not None:
                request.transport.abort()  # the registry went away mid-blob: so does the relay
            return response


def path_qs(request: web.Request) -> str:
    return request.rel_url.path_qs
