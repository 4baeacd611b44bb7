"""The streaming runtime over our engine: exec and attach through the container
service's contracts (as api/exec.py and api/attach.py drive them), port forwarding
into a pod's network namespace.

setns(2) changes only the calling thread, and a pool thread would stay in the
pod's namespace for whatever it runs next; so a short-lived thread of its own
enters the namespace and makes the socket there (a socket keeps the namespace it
was made in), and the event loop connects and uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ...engine.containers.contract import Containers, Execs, StdioStream
from ...errors import Conflict, DaemonError
from .contract import InputStream, OutputStream, TerminalSize

READ_SIZE = 64 * 1024
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, nstype: int) -> None:
    """setns(2) (os.setns is Python 3.12's)."""
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class EngineStreamingRuntime:
    def __init__(self, containers: Containers, execs: Execs,
                 netns_of: Callable[[str], Path]) -> None:
        self._containers = containers
        self._execs = execs
        self._netns_of = netns_of

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        session = self._execs.create(container_id, {
            "Cmd": list(cmd), "Tty": tty, "AttachStdin": stdin is not None,
            "AttachStdout": stdout is not None, "AttachStderr": stderr is not None})
        stream = await self._execs.start(session.id, detach=False)
        if stream is None:  # pragma: no cover - start(detach=False) always streams
            raise Conflict("exec gave no stream")

        def do_resize(size: TerminalSize) -> None:
            self._execs.resize(session.id, size.height, size.width)

        try:
            await _pump(stream, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr,
                        resize=resize, do_resize=do_resize, close_stdin=True)
        finally:
            stream.close()
        await session.done.wait()
        return session.exit_code or 0

    async def attach(self, container_id: str, *, tty: bool, stdin: InputStream | None,
                     stdout: OutputStream | None, stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        c, stdio = await self._containers.attach(container_id)
        if stdio is None:  # pragma: no cover - live attaches always stream
            return

        def do_resize(size: TerminalSize) -> None:
            self._containers.resize(c.id, size.height, size.width)

        # As dockerd: the client's EOF closes the container's stdin only for StdinOnce
        # without a TTY; a container without OpenStdin ignores what is sent.
        try:
            await _pump(stdio, tty=c.tty, stdin=stdin, stdout=stdout, stderr=stderr,
                        resize=resize, do_resize=do_resize,
                        close_stdin=bool(c.config.get("StdinOnce")) and not c.tty,
                        forward_stdin=bool(c.config.get("OpenStdin")))
        finally:
            stdio.close()

    async def port_forward(self, pod_sandbox_id: str, port: int, reader: InputStream,
                           writer: OutputStream) -> None:
        netns = self._netns_of(pod_sandbox_id)
        sock = await _socket_in(netns)
        try:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        except OSError as e:
            sock.close()
            raise DaemonError(f"failed to connect to localhost:{port} inside namespace "
                              f"{str(netns)!r}: {e.strerror or e}") from None
        pod_reader, pod_writer = await asyncio.open_connection(sock=sock)
        try:
            await _forward(reader, writer, pod_reader, pod_writer)
        finally:
            pod_writer.close()


async def _forward(client: InputStream, to_client: OutputStream,
                   pod_reader: asyncio.StreamReader, pod_writer: asyncio.StreamWriter) -> None:
    """Both ways until the pod's side ends (client-go waits for that; a client that
    stops sending half-closes toward the pod)."""
    async def up() -> None:
        while data := await client.read():
            pod_writer.write(data)
            await pod_writer.drain()
        if pod_writer.can_write_eof():
            pod_writer.write_eof()

    sending = asyncio.ensure_future(up())
    try:
        while data := await pod_reader.read(READ_SIZE):
            await to_client.write(data)
    finally:
        if not sending.done():
            sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending


async def _socket_in(netns: Path) -> socket.socket:
    """A non-blocking TCP socket made inside the network namespace at netns."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def settle(result: socket.socket | BaseException) -> None:
        if done.cancelled():
            if isinstance(result, socket.socket):
                result.close()
        elif isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)

    def enter_and_make() -> None:
        result: socket.socket | BaseException
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, _CLONE_NEWNET)
            finally:
                os.close(fd)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            sock.setblocking(False)
            result = sock
        except OSError as e:
            result = DaemonError(f"failed to enter the network namespace {str(netns)!r}: "
                                 f"{e.strerror or e}")
        loop.call_soon_threadsafe(settle, result)

    # the thread ends right after: its namespace goes with it
    threading.Thread(target=enter_and_make, name="cri-netns", daemon=True).start()
    return await done


async def _pump(stream: StdioStream, *, tty: bool, stdin: InputStream | None,
                stdout: OutputStream | None, stderr: OutputStream | None,
                resize: AsyncIterator[TerminalSize] | None,
                do_resize: Callable[[TerminalSize], None], close_stdin: bool,
                forward_stdin: bool = True) -> None:
    """Output to the client until the process's output ends, stdin and resizes to
    the process meanwhile."""
    async def copy_stdin(source: InputStream) -> None:
        while data := await source.read():
            if forward_stdin:
                await stream.send(data)
        if close_stdin:
            stream.close_stdin()

    async def resizes(events: AsyncIterator[TerminalSize]) -> None:
        async for size in events:
            with contextlib.suppress(DaemonError):
                do_resize(size)

    helpers = []
    if stdin is not None:
        helpers.append(asyncio.ensure_future(copy_stdin(stdin)))
    if resize is not None:
        helpers.append(asyncio.ensure_future(resizes(resize)))
    try:
        while (item := await stream.recv()) is not None:
            kind, data = item
            target = stdout if tty or kind == 1 else stderr
            if target is not None:
                await target.write(data)
        for out in (stdout, stderr):
            if out is not None:
                await out.close()
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
