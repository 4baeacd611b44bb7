"""Registry credentials and the authentication handshake.

A registry says how it wants to be authenticated in the ``WWW-Authenticate``
header of a 401: ``Basic realm=...`` (send the credentials on every request)
or ``Bearer realm=...,service=...,scope=...`` (fetch a token for the scopes
from the realm, with the credentials if any, and send that). An `Authorizer`
holds one set of credentials for one registry, remembers the challenge, and
caches tokens per scope set until they expire, so every request of a pull or
push, and later pulls with the same credentials, reuse them.

The registry sends its Authorization header only to the endpoint that issued
the challenge (registry.py). A bearer challenge names the token server (its
realm), which gets the credentials (a password or a refresh token) as the token
protocol wants, but only over TLS, unless the realm's host is one the daemon
may talk to in clear (insecure-registries, 127.0.0.0/8): over plain HTTP
anyone on the path would read them. Token answers are read up to a cap.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ssl import CERT_NONE, SSLContext
from typing import Any
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from ..errors import DaemonError, Unauthorized
from .bodies import MAX_TOKEN, read_capped, read_head
from .endpoints import RegistrySettings, is_insecure
from .errors import registry_error, transport_error

_TOKEN_LEEWAY = 10.0        # refresh a token this many seconds before it expires
_DEFAULT_TOKEN_LIFE = 60.0  # the distribution spec's default for a missing expires_in


class NoCredentials(DaemonError):
    """A registry wants Basic auth and the client sent no credentials (500, as dockerd)."""


@dataclass(frozen=True)
class AuthConfig:
    """The credentials a client sends (X-Registry-Auth, /auth, X-Registry-Config)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""   # an OAuth2 refresh token from an earlier login
    registry_token: str = ""   # a bearer token to send as is
    server_address: str = ""

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)

    @property
    def key(self) -> tuple[str, ...]:
        return (self.username, self.password, self.identity_token, self.registry_token)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> AuthConfig:
        if not doc:
            return cls()

        def text(name: str) -> str:
            value = doc.get(name)
            return value if isinstance(value, str) else ""

        username, password = text("username"), text("password")
        if not username and text("auth"):  # "auth" is base64("user:password")
            try:
                username, _, password = _b64decode(text("auth")).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        return cls(username, password, text("identitytoken"), text("registrytoken"),
                   text("serveraddress"))


def _b64decode(value: str) -> bytes:
    """base64 in either alphabet, padding optional (old clients send std, new url-safe)."""
    value = value.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)


def decode_header(value: str | None) -> dict[str, Any] | None:
    """X-Registry-Auth: base64 JSON AuthConfig. Empty or undecodable means anonymous,
    as dockerd does."""
    if not value:
        return None
    try:
        doc = json.loads(_b64decode(value))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


@dataclass(frozen=True)
class Challenge:
    scheme: str                  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)


_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """WWW-Authenticate values -> challenges (one scheme per header, as registries send)."""
    out = []
    for header in headers:
        scheme, _, rest = header.strip().partition(" ")
        params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
                  .replace('\\"', '"') for m in _PARAM.finditer(rest)}
        if scheme:
            out.append(Challenge(scheme.lower(), params))
    return out


@dataclass
class _Token:
    value: str
    expires: float


def _loopback_only(host: str) -> bool:
    return is_insecure(host, RegistrySettings())


class Authorizer:
    """Credentials for one registry, its challenge, and the tokens it granted.
    `plain_ok(host[:port])` (blocking) tells whether credentials may go to that host
    over plain HTTP: the registry settings' notion of insecure."""

    def __init__(self, creds: AuthConfig,
                 plain_ok: Callable[[str], bool] = _loopback_only) -> None:
        self.creds = creds
        self._plain_ok = plain_ok
        self.challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self.refresh_token = ""     # granted by a token server on login (offline_token)

    def learn(self, headers: list[str]) -> bool:
        """Adopt the challenge of a 401; True if it changes what we would send."""
        known = {c.scheme: c for c in parse_challenges(headers)}
        chosen = known.get("bearer") or known.get("basic")
        if chosen is None:
            return False
        changed = chosen != self.challenge
        if changed:
            self._tokens.clear()  # granted for another challenge
        self.challenge = chosen
        return changed

    def pinged(self, status: int, headers: list[str]) -> None:
        """What the endpoint's /v2/ answered: a 401 names the challenge, anything else
        means none is wanted now (distribution's client keeps no stale one either)."""
        if status == 401:
            self.learn(headers)
        elif self.challenge is not None:
            self.challenge = None
            self._tokens.clear()

    def forget(self, scopes: tuple[str, ...]) -> None:
        self._tokens.pop(scopes, None)

    async def header(self, session: aiohttp.ClientSession, ssl: Any, scopes: tuple[str, ...],
                     what: str) -> dict[str, str]:
        """The Authorization header for a request needing `scopes` (none if unknown yet).
        `what` ("GET \"url\"") prefixes errors, as Go's http client does."""
        challenge = self.challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            if not self.creds.username:
                raise NoCredentials(f"{what}: no basic auth credentials")
            pair = f"{self.creds.username}:{self.creds.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if self.creds.registry_token:
            return {"Authorization": "Bearer " + self.creds.registry_token}
        token = self._tokens.get(scopes)
        if token is None or token.expires - _TOKEN_LEEWAY < time.monotonic():
            token = await self._fetch_token(session, ssl, challenge, scopes)
            self._tokens[scopes] = token
        return {"Authorization": "Bearer " + token.value}

    async def _fetch_token(self, session: aiohttp.ClientSession, ssl: Any, challenge: Challenge,
                           scopes: tuple[str, ...], *, offline: bool = False) -> _Token:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise Unauthorized(f"invalid token auth challenge realm: {realm!r}")
        service = challenge.params.get("service", "")
        creds = self.creds
        headers = {}
        query: list[tuple[str, str]] = []
        if service:
            query.append(("service", service))
        query += [("scope", s) for s in scopes]
        refresh = creds.identity_token or self.refresh_token
        if refresh or creds.username:
            ssl = await self._credentials_tls(realm, ssl)
        try:
            if refresh:  # OAuth2 refresh-token grant, as the distribution token spec says
                form = {"grant_type": "refresh_token", "refresh_token": refresh,
                        "service": service, "client_id": "docker", "scope": " ".join(scopes)}
                # The token is in the body: a redirect must not carry it elsewhere.
                resp = await session.post(realm, data=form, ssl=ssl, allow_redirects=False)
            else:
                if creds.username:
                    pair = f"{creds.username}:{creds.password}".encode()
                    headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
                    query.append(("account", creds.username))
                if offline:
                    query += [("offline_token", "true"), ("client_id", "docker")]
                url = realm + ("&" if "?" in realm else "?") + urlencode(query)
                resp = await session.get(url, headers=headers, ssl=ssl)
            async with resp:
                if resp.status != 200:
                    raise registry_error(resp.status, await read_head(resp), fallback=(
                        f"token auth attempt for registry: {resp.method} {realm} request "
                        f"failed with status: {resp.status} {resp.reason}"))
                body = await read_capped(resp, MAX_TOKEN, f"token response from {realm}")
        except (TimeoutError, aiohttp.ClientError) as e:
            raise transport_error("GET", realm, e) from None
        try:
            doc = json.loads(body)
            value = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise Unauthorized("authorization server did not include a token in the response")
        if isinstance(doc.get("refresh_token"), str):
            self.refresh_token = doc["refresh_token"]
        life = doc.get("expires_in")
        life = float(life) if isinstance(life, (int, float)) and life > 0 else _DEFAULT_TOKEN_LIFE
        return _Token(value, time.monotonic() + life)

    async def _credentials_tls(self, realm: str, ssl: Any) -> Any:
        """The TLS setting for sending credentials to the token server: plain HTTP or
        an unverified certificate only for a host that may be insecure, else the
        endpoint's verifying context or the system's roots."""
        if isinstance(ssl, SSLContext) and ssl.verify_mode != CERT_NONE:
            verifying: Any = ssl
        else:
            verifying = True
        url = URL(realm)
        if url.scheme == "https" and verifying is ssl:
            return ssl
        host = url.host or ""
        if ":" in host:
            host = f"[{host}]"
        if url.explicit_port is not None:
            host = f"{host}:{url.explicit_port}"
        if await asyncio.to_thread(self._plain_ok, host):
            return ssl
        if url.scheme == "http":
            raise Unauthorized(f"refusing to send credentials to the token server {realm} "
                               "over plain HTTP: it is not an insecure registry")
        return verifying

    async def login(self, session: aiohttp.ClientSession, ssl: Any) -> str:
        """Prove the credentials against a bearer challenge; the refresh token if granted."""
        assert self.challenge is not None and self.challenge.scheme == "bearer"
        token = await self._fetch_token(session, ssl, self.challenge, (), offline=True)
        self._tokens[()] = token
        return self.refresh_token
