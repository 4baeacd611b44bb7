"""What the streaming server asks of a container runtime, and the stream types it
hands over.

kubelet's streaming server (pkg/kubelet/cri/streaming) calls its runtime with
readers and writers; here they are small asyncio interfaces. A stream given as
None was not asked for by the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class TerminalSize:
    """A TTY size, as the client's resize stream sends it ({"Width":..,"Height":..})."""

    width: int
    height: int


class InputStream(Protocol):
    """Bytes from the client (stdin, or a forwarded connection's data)."""

    async def read(self) -> bytes:
        """The next bytes; b"" once the client closed its side."""


class OutputStream(Protocol):
    """Bytes to the client (stdout, stderr, or a forwarded connection's data)."""

    async def write(self, data: bytes) -> None:
        """Send; returns quietly once the client is gone."""

    async def close(self) -> None:
        """No more data on this stream (a half-close: the client sees EOF)."""


class StreamingRuntime(Protocol):
    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        """Run cmd in the container, copying the streams, until it exits; its exit
        code. Raises (DaemonError) when the process cannot be started."""

    async def attach(self, container_id: str, *, tty: bool, stdin: InputStream | None,
                     stdout: OutputStream | None, stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        """Connect the streams to the container's main process until its output ends."""

    async def port_forward(self, pod_sandbox_id: str, port: int, reader: InputStream,
                           writer: OutputStream) -> None:
        """Copy bytes between the client and 127.0.0.1:port in the pod's network
        namespace until both directions ended. Raises when it cannot connect."""
