"""An HTTP listener for the tests: aiohttp in a thread, answering with a handler
the test gives, remembering the Authorization header of every request it got.

    with Listener("127.0.0.2", handler) as spy:   # handler(request) -> response
        ... spy.url ... spy.seen -> [(method, path_qs, authorization or "")]

`upstream` is an aiohttp session on the listener's loop, for handlers that pass
requests on to a real registry.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Listener:
    def __init__(self, host: str, handler: Handler) -> None:
        self.handler = handler
        with socket.socket() as s:
            s.bind((host, 0))
            self.port = int(s.getsockname()[1])
        self.ip = host
        self.host = f"{host}:{self.port}"
        self.url = f"http://{self.host}"
        self.seen: list[tuple[str, str, str]] = []
        self.upstream: aiohttp.ClientSession
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError(f"listener on {self.host} did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def authorized(self) -> list[tuple[str, str, str]]:
        """The requests that came with an Authorization header."""
        return [s for s in self.seen if s[2]]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{path:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.ip, self.port).start()
        self.upstream = aiohttp.ClientSession(auto_decompress=False)
        self._ready.set()
        await self._stop.wait()
        await self.upstream.close()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.rel_url.path_qs,
                          request.headers.get("Authorization", "")))
        return await self.handler(request)


async def relay(listener: Listener, request: web.Request, upstream: str,
                authorization: str = "") -> web.Response:
    """Pass a request on to `upstream` (a registry URL), as the client sent it but with
    `authorization` (when given) for the registry; the answer goes back whole."""
    headers = {k: v for k, v in request.headers.items()
               if k.lower() in ("accept", "authorization", "content-type")}
    if authorization:
        headers["Authorization"] = authorization
    body = await request.read()
    async with listener.upstream.request(request.method, upstream + request.rel_url.path_qs,
                                         headers=headers, data=body or None,
                                         allow_redirects=False) as resp:
        data = await resp.read()
        kept = {k: v for k, v in resp.headers.items()
                if k in ("Content-Type", "Docker-Content-Digest", "WWW-Authenticate",
                         "Docker-Distribution-Api-Version", "Location", "Link", "Range",
                         "Docker-Upload-UUID")}
        return web.Response(status=resp.status, body=data if request.method != "HEAD" else None,
                            headers=kept)


async def endless(request: web.Request, *, status: int = 200,
                  content_type: str = "application/json", limit: int = 512 << 20
                  ) -> web.StreamResponse:
    """A body that never ends, as far as any sane client is concerned: `limit` bytes of
    JSON-looking filler, chunked, until the client hangs up."""
    response = web.StreamResponse(status=status, headers={"Content-Type": content_type})
    await response.prepare(request)
    chunk = b'{"tags":["' + b"a" * (1 << 20)
    sent = 0
    try:
        while sent < limit:
            await response.write(chunk)
            sent += len(chunk)
            chunk = b"a" * (1 << 20)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client gave up: what we want
    return response
