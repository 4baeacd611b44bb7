"""`RUN --mount=type=secret`: secrets are fetched from the client when a step needs them,
never stored by the daemon (the caller keeps them in memory or a tmpfs)."""

from __future__ import annotations

import re

from dockerd_py.protos.buildkit.session import secrets_pb2

from .calls import unary
from .record import SECRETS_GET, NotFound, Session, SessionError

MAX_SECRET_SIZE = 500 * 1024  # buildkit's secretsprovider refuses larger ones as well
_SECRET_ID = re.compile(r"[A-Za-z0-9_.-]{1,255}")


class SessionSecrets:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def get(self, secret_id: str) -> bytes:
        """The secret's bytes; NotFound when the client has no such secret."""
        if not _SECRET_ID.fullmatch(secret_id):
            raise SessionError(f"invalid secret id {secret_id[:100]!r}")
        if not self.session.supports(SECRETS_GET):
            raise NotFound(f"secret {secret_id}: not found (no secrets were given to the build)")
        response = await unary(self.session, SECRETS_GET,
                               secrets_pb2.GetSecretRequest(ID=secret_id),
                               secrets_pb2.GetSecretResponse.FromString,
                               what=f"secret {secret_id}")
        if len(response.data) > MAX_SECRET_SIZE:
            raise SessionError(f"secret {secret_id}: larger than {MAX_SECRET_SIZE} bytes")
        return response.data
