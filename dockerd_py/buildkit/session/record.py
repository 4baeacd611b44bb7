"""One client session: who it is and which gRPC services the client serves to us.

A BuildKit client opens `POST /session` with X-Docker-Expose-Session-* headers, upgrades
the connection to h2c and then serves gRPC on it; the daemon is the gRPC client. The
headers name the session and list every method the client exposes
(`/moby.filesync.v1.FileSync/DiffCopy`, ...); a method not listed is never called.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import grpc.aio

HEADER_ID = "X-Docker-Expose-Session-Uuid"
HEADER_NAME = "X-Docker-Expose-Session-Name"
HEADER_SHARED_KEY = "X-Docker-Expose-Session-Sharedkey"
HEADER_METHOD = "X-Docker-Expose-Session-Grpc-Method"

# The methods this package calls, as the client lists them.
FILESYNC_DIFFCOPY = "/moby.filesync.v1.FileSync/DiffCopy"
FILESEND_DIFFCOPY = "/moby.filesync.v1.FileSend/DiffCopy"
SECRETS_GET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
SSH_CHECK = "/moby.sshforward.v1.SSH/CheckAgent"
SSH_FORWARD = "/moby.sshforward.v1.SSH/ForwardAgent"
AUTH_CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_METHOD = re.compile(r"/[A-Za-z0-9_.]{1,200}/[A-Za-z0-9_]{1,100}")
_MAX_METHODS = 256
_MAX_TEXT = 4096


class SessionError(Exception):
    """A session call failed, or the client broke the protocol."""


class NotFound(SessionError):
    """The client does not have what was asked for (a secret id, an ssh id)."""


class Unsupported(SessionError):
    """The client does not expose the method this needs (e.g. no --ssh given)."""


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    shared_key: str
    methods: frozenset[str]
    channel: grpc.aio.Channel

    def supports(self, method: str) -> bool:
        return method in self.methods

    def require(self, method: str, what: str) -> None:
        if method not in self.methods:
            raise Unsupported(f"the client's session does not offer {what} ({method})")


@dataclass(frozen=True)
class SessionHeaders:
    id: str
    name: str
    shared_key: str
    methods: frozenset[str]


def parse_headers(headers: Iterable[tuple[str, str]]) -> SessionHeaders:
    """The session's identity from a /session request's headers (repeated headers allowed,
    names case-insensitive, method lists possibly comma-joined). Raises SessionError."""
    found: dict[str, list[str]] = {}
    for key, value in headers:
        found.setdefault(key.lower(), []).append(value)
    ids = found.get(HEADER_ID.lower(), [])
    if len(ids) != 1 or not _ID.fullmatch(ids[0]):
        raise SessionError(f"invalid or missing {HEADER_ID} header")
    name = _one_text(found, HEADER_NAME)
    shared_key = _one_text(found, HEADER_SHARED_KEY)
    methods: set[str] = set()
    for value in found.get(HEADER_METHOD.lower(), []):
        for method in value.split(","):
            method = method.strip()
            if not _METHOD.fullmatch(method):
                raise SessionError(f"invalid {HEADER_METHOD} header: {method[:100]!r}")
            methods.add(method)
    if len(methods) > _MAX_METHODS:
        raise SessionError(f"too many {HEADER_METHOD} headers")
    return SessionHeaders(ids[0], name, shared_key, frozenset(methods))


def _one_text(found: dict[str, list[str]], header: str) -> str:
    values = found.get(header.lower(), [])
    if len(values) > 1:
        raise SessionError(f"repeated {header} header")
    value = values[0] if values else ""
    if len(value) > _MAX_TEXT or not value.isprintable():
        raise SessionError(f"invalid {header} header")
    return value
