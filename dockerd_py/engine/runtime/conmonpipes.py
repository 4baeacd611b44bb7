"""The pipes conmon talks to its parent through, and the messages it sends on them
(CONMON-NOTES §2): sync (the container's pid, or the runtime's error) and start."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from ...errors import InternalError


class Pipes:
    """The socketpairs conmon talks to its parent through (CONMON-NOTES §2)."""

    def __init__(self, attach: bool) -> None:
        pair = socket.socketpair
        kind = socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC
        self.sync, self._sync_child = pair(socket.AF_UNIX, kind)
        self.start, self._start_child = pair(socket.AF_UNIX, kind)
        self.attach: socket.socket | None = None
        self._attach_child: socket.socket | None = None
        if attach:
            self.attach, self._attach_child = pair(socket.AF_UNIX, kind)
        for s in self.parent_ends():
            s.setblocking(False)

    def parent_ends(self) -> list[socket.socket]:
        return [s for s in (self.sync, self.start, self.attach) if s is not None]

    def child_ends(self) -> list[socket.socket]:
        return [s for s in (self._sync_child, self._start_child, self._attach_child)
                if s is not None]

    def env(self) -> dict[str, str]:
        env = {"_OCI_SYNCPIPE": str(self._sync_child.fileno()),
               "_OCI_STARTPIPE": str(self._start_child.fileno())}
        if self._attach_child is not None:
            env["_OCI_ATTACHPIPE"] = str(self._attach_child.fileno())
        return env

    def close_child_ends(self) -> None:
        for s in self.child_ends():
            s.close()

    def close(self) -> None:
        self.close_child_ends()
        for s in self.parent_ends():
            s.close()


async def read_message(sock: socket.socket, what: str, timeout: float) -> dict[str, Any]:
    """One `{"data": N[, "message": ...]}` packet; InternalError on EOF or timeout."""
    loop = asyncio.get_running_loop()
    try:
        packet = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)
    except TimeoutError:
        raise InternalError(f"conmon: no {what} message within {timeout:.0f}s") from None
    if not packet:
        raise InternalError(f"conmon exited before sending its {what} message")
    try:
        message: dict[str, Any] = json.loads(packet)
        int(message["data"])
    except (ValueError, KeyError, TypeError):
        raise InternalError(f"conmon: bad {what} message {packet[:200]!r}") from None
    return message
