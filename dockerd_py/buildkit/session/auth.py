"""Registry credentials from the client's docker config (buildx's auth provider), for
pulls and pushes a build makes: the daemon never reads the user's config itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockerd_py.protos.buildkit.session import auth_pb2

from .calls import unary
from .record import AUTH_CREDENTIALS, AUTH_FETCH_TOKEN, NotFound, Session, SessionError

_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_MAX_FIELD = 16 * 1024


@dataclass(frozen=True)
class Token:
    token: str
    expires_in: int  # seconds, 0 when the registry said nothing
    issued_at: int   # unix seconds, 0 when unknown


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

    async def fetch_token(self, host: str, realm: str, service: str,
                          scopes: list[str]) -> Token | None:
        """A registry token the client fetched itself (its credentials never leave it);
        None when the client does not offer it, so the caller uses credentials()."""
        _check_host(host)
        if not self.session.supports(AUTH_FETCH_TOKEN):
            return None
        request = auth_pb2.FetchTokenRequest(ClientID="buildkit-client", Host=host, Realm=realm,
                                             Service=service, Scopes=scopes)
        try:
            response = await unary(self.session, AUTH_FETCH_TOKEN, request,
                                   auth_pb2.FetchTokenResponse.FromString,
                                   what=f"token for {host}")
        except NotFound:
            return None
        if len(response.Token) > _MAX_FIELD * 4:
            raise SessionError(f"token for {host}: oversized answer")
        return Token(response.Token, response.ExpiresIn, response.IssuedAt)


def _check_host(host: str) -> None:
    if not _HOST.fullmatch(host):
        raise SessionError(f"invalid registry host {host[:100]!r}")
