"""Registry credentials from the client's docker config (buildx's auth provider), for
the pulls a build makes (base images, --cache-from): the daemon never reads the user's
config itself."""

from __future__ import annotations

import re

from dockerd_py.protos.buildkit.session import auth_pb2

from .calls import unary
from .record import AUTH_CREDENTIALS, NotFound, Session, SessionError

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_MAX_FIELD = 16 * 1024


class SessionAuth:
    def __init__(self, session: Session) -> None:
        self.session = session

    async def credentials(self, host: str) -> tuple[str, str]:
        """(username, secret) the client holds for host; ("", "") when it has none.
        A username of "" with a secret is an identity token, as in docker's config."""
        _check_host(host)
        if not self.session.supports(AUTH_CREDENTIALS):
            return "", ""
        try:
            response = await unary(self.session, AUTH_CREDENTIALS,
                                   auth_pb2.CredentialsRequest(Host=host),
                                   auth_pb2.CredentialsResponse.FromString,
                                   what=f"credentials for {host}")
        except NotFound:
            return "", ""
        if len(response.Username) > _MAX_FIELD or len(response.Secret) > _MAX_FIELD:
            raise SessionError(f"credentials for {host}: oversized answer")
        return response.Username, response.Secret


def _check_host(host: str) -> None:
    if not _HOST.fullmatch(host):
        raise SessionError(f"invalid registry host {host[:100]!r}")
