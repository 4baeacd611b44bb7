"""A client of conmon's attach socket (CONMON-NOTES §4).

The socket is `<process dir>/attach`, SOCK_SEQPACKET, and serves any number of
clients at once. conmon -> client: one packet per read from the container, byte 0
the stream (2 stdout, 3 stderr), the rest data; client -> conmon: raw stdin
bytes. A client's half-close closes the container's stdin unless conmon runs
with --leave-stdin-open. There is no replay: output produced before connecting
is only in the log file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import AsyncIterator

from ...errors import Conflict
from .process import STDERR, STDOUT

_CONMON_STREAM = {2: STDOUT, 3: STDERR}  # conmon's stdpipe_t on the attach socket
_ATTACH_READ = 8192 + 1                  # conmon: STDIO_BUF_SIZE + the stream byte
_ATTACH_WRITE = 8192                     # conmon reads 32 KiB; SEQPACKET truncates
_SUN_PATH_MAX = 107


class AttachStream:
    """A client of conmon's attach socket.

    recv() gives (STDOUT|STDERR, bytes) per packet — conmon sends one packet per
    read from the container, so packets are not lines — and None at the end (the
    container exited, or remove). send() writes stdin; close_stdin() half-closes,
    which closes the container's stdin when conmon runs without
    --leave-stdin-open (Docker's StdinOnce). With a TTY all output is STDOUT.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    @classmethod
    async def connect(cls, path: str) -> AttachStream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.setblocking(False)
        dirfd = -1
        try:
            target = path
            if len(os.fsencode(path)) > _SUN_PATH_MAX:  # conmon binds the same way
                dirfd = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
                target = f"/proc/self/fd/{dirfd}/{os.path.basename(path)}"
            await asyncio.get_running_loop().sock_connect(sock, target)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            raise Conflict(f"container is not running (attach socket: {e.strerror})") from e
        except BaseException:
            sock.close()
            raise
        finally:
            if dirfd >= 0:
                os.close(dirfd)
        return cls(sock)

    async def recv(self) -> tuple[int, bytes] | None:
        while True:
            try:
                packet = await self._loop.sock_recv(self._sock, _ATTACH_READ)
            except (ConnectionResetError, OSError) as e:
                if isinstance(e, ConnectionResetError) or e.errno in (errno.EBADF, errno.ENOTCONN):
                    return None
                raise
            if not packet:
                return None
            stream = _CONMON_STREAM.get(packet[0])
            if stream is not None and len(packet) > 1:
                return stream, packet[1:]

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        while (item := await self.recv()) is not None:
            yield item

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            for off in range(0, len(view), _ATTACH_WRITE):
                await self._loop.sock_sendall(self._sock, view[off:off + _ATTACH_WRITE])
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Conflict("container is not running (its stdin is closed)") from e

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> AttachStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
