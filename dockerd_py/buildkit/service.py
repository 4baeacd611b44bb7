"""The BuildKit front end as the API sees it: hand it a hijacked /grpc or /session
connection and it serves it until the client leaves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from dockerd_py.errors import InvalidParameter
from dockerd_py.protos.buildkit.control import control_pb2_grpc as pb_grpc
from dockerd_py.protos.buildkit.control import gateway_pb2_grpc as gw_grpc

from .control import Cache, Control, Solver
from .gateway import Gateway
from .session import Session, SessionError, SessionHeaders, parse_headers
from .sessions import LiveSession, SessionRegistry
from .transport import ControlServer, Pipe, SessionLink, SocketDir

log = logging.getLogger(__name__)


class BuildKit:
    def __init__(self, exec_root: str, solver: Solver, cache: Cache) -> None:
        self.sockets = SocketDir(exec_root)
        self.sessions = SessionRegistry()
        self.control = Control(solver, cache, self.sessions)
        self._server = ControlServer(self.sockets)
        server = self._server.server
        pb_grpc.add_ControlServicer_to_server(  # type: ignore[no-untyped-call]
            self.control, server)
        gw_grpc.add_LLBBridgeServicer_to_server(  # type: ignore[no-untyped-call]
            Gateway(self.control), server)
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self._server.start()

    async def close(self) -> None:
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.stop()
        self.sockets.remove()

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def serve_control(self, pipe: Pipe) -> None:
        """A /grpc connection: the client calls Control."""
        self._track()
        await self._server.serve(pipe)

    @staticmethod
    def session_headers(headers: Iterable[tuple[str, str]]) -> SessionHeaders:
        """Check a /session request's headers before it is upgraded."""
        try:
            return parse_headers(headers)
        except SessionError as e:
            raise InvalidParameter(str(e)) from None

    async def serve_session(self, pipe: Pipe, headers: SessionHeaders) -> None:
        """A /session connection: the client serves, the daemon calls, until it leaves."""
        self._track()
        link = SessionLink(self.sockets)
        channel = await link.open()
        session = Session(headers.id, headers.name, headers.shared_key, headers.methods,
                          channel)
        live = LiveSession(session, asyncio.Event())
        try:
            await self.sessions.add(live)
        except Exception:
            await link.close()
            await pipe.close(1.0)
            raise
        try:
            await link.serve(pipe)
        finally:
            live.closed.set()
            await self.sessions.remove(live)
            log.debug("session %s ended", headers.id)
