"""Exec routes: create, start (hijacked or detached), resize, inspect."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from ..errors import DaemonError, InvalidParameter
from .hijack import hijack, pump
from .httputil import json_response, query_int, read_body
from .keys import EXECS
from .streams import parse_detach_keys

routes = web.RouteTableDef()


@routes.post("/containers/{id}/exec")
async def create_exec(request: web.Request) -> web.Response:
    body = await read_body(request, "ExecCreate", required=True)
    if body.get("DetachKeys"):
        try:
            parse_detach_keys(body["DetachKeys"])
        except ValueError:
            raise InvalidParameter(f"Invalid escape keys ({body['DetachKeys']}) provided") from None
    session = request.app[EXECS].create(request.match_info["id"], body)
    return json_response({"Id": session.id}, status=201)


@routes.post("/exec/{id}/start")
async def start_exec(request: web.Request) -> web.StreamResponse:
    execs = request.app[EXECS]
    body = await read_body(request, "ExecStart") or {}
    session = execs.check_startable(request.match_info["id"])
    detach = bool(body.get("Detach"))
    console = body.get("ConsoleSize")
    if detach:
        await execs.start(session.id, detach=True, console_size=console)
        return web.Response(status=200)
    # As dockerd: answer 101 before the process exists. Output sent right behind the
    # response head can be swallowed by clients that read the head through a buffer
    # and then switch to the raw socket (docker-py). The framing is the one this start
    # asks for (its Tty), whatever the process was created with.
    hijacked = await hijack(request, tty=bool(body.get("Tty")))
    try:
        stream = await execs.start(session.id, detach=False, console_size=console)
    except DaemonError as e:  # too late for an HTTP error: tell the client in the stream
        await hijacked.write_frame(1, f"{e}\n".encode())
        await hijacked.close_write()
        await hijacked.close()
        return hijacked.response
    assert stream is not None
    keys = session.config.get("DetachKeys")

    async def output() -> AsyncIterator[tuple[int, bytes]]:
        while (item := await stream.recv()) is not None:
            yield item
        # The CLI asks for the exit code as soon as the output ends: record it first.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(session.done.wait(), 5)

    async def stdin(data: bytes) -> None:
        await stream.send(data)

    async def stdin_eof() -> None:
        stream.close_stdin()

    try:
        await pump(hijacked, output(), stdin if session.config.get("AttachStdin") else None,
                   stdin_eof, tty=session.tty,
                   detach_keys=parse_detach_keys(keys) if keys else None)
        await hijacked.linger()
    finally:
        stream.close()
        await hijacked.close()
    return hijacked.response


@routes.post("/exec/{id}/resize")
async def resize_exec(request: web.Request) -> web.Response:
    request.app[EXECS].resize(request.match_info["id"], query_int(request, "h", 0) or 0,
                                     query_int(request, "w", 0) or 0)
    return web.Response(status=200)


@routes.get("/exec/{id}/json")
async def inspect_exec(request: web.Request) -> web.Response:
    return json_response(request.app[EXECS].get(request.match_info["id"]).to_api())
