"""The live client sessions (POST /session), by id, for Solve to find.

A session is announced by the `X-Docker-Expose-Session-*` headers of its
request (session/record.py parses them); its Session record carries the gRPC
channel transport.SessionLink dials. Solve may arrive before the session is
registered (buildx starts both at once), so a lookup waits a while for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dockerd_py.errors import Conflict, InvalidParameter

from .session import Session

LOOKUP_WAIT = 10.0   # how long Solve waits for its session to connect


@dataclass(frozen=True)
class LiveSession:
    session: Session
    closed: asyncio.Event   # the client's connection ended


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._changed = asyncio.Condition()

    async def add(self, live: LiveSession) -> None:
        async with self._changed:
            if live.session.id in self._sessions:
                raise Conflict(f"session {live.session.id} already exists")
            self._sessions[live.session.id] = live
            self._changed.notify_all()

    async def remove(self, live: LiveSession) -> None:
        async with self._changed:
            if self._sessions.get(live.session.id) is live:
                del self._sessions[live.session.id]
            self._changed.notify_all()

    async def get(self, sid: str, wait: float = LOOKUP_WAIT) -> LiveSession:
        """The session, waiting up to `wait` for it to connect."""
        # BuildKit scopes session ids in places ("<shared key>:<id>"); the id is the tail
        _, _, tail = sid.partition(":")
        sid = tail or sid

        def present() -> bool:
            live = self._sessions.get(sid)
            return live is not None and not live.closed.is_set()

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(present), wait)
            except TimeoutError:
                raise InvalidParameter(f"no active session for {sid}: context deadline "
                                       "exceeded") from None
            return self._sessions[sid]
