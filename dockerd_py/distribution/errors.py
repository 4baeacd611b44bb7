"""Registry failures as Docker words them.

Registries answer errors as ``{"errors": [{"code", "message", "detail"}]}``;
distribution's client prints one as ``<code in lower case>: <message>``
("manifest unknown: manifest unknown"). Transport failures read like Go's
http client: ``Get "https://host/v2/": dial tcp ...: connect: connection refused``.
"""

from __future__ import annotations

import asyncio
import json
import ssl

import aiohttp

from ..engine.reference import Reference
from ..errors import DaemonError, NotFound


class RegistryError(DaemonError):
    """An error answer from a registry; `codes` are its errcode values."""

    def __init__(self, message: str, http_status: int, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.codes = codes
        # Only "not found" keeps its status: a 401 passed on would make the CLI
        # prompt for a login, which dockerd's answers (500) never do.
        self.status = 404 if http_status == 404 else 500


class TransportError(DaemonError):
    """The registry could not be reached or the connection broke."""

    status = 500


def registry_error(http_status: int, body: bytes, *, fallback: str) -> RegistryError:
    codes: list[str] = []
    texts: list[str] = []
    try:
        doc = json.loads(body)
        for err in doc.get("errors") or []:
            code = str(err.get("code") or "UNKNOWN")
            codes.append(code)
            texts.append(f"{code.lower().replace('_', ' ')}: {err.get('message') or ''}".rstrip())
    except (ValueError, AttributeError, TypeError):
        pass
    if not texts:
        return RegistryError(fallback, http_status)
    # distribution prints the first; the rest are logged, not shown.
    return RegistryError(texts[0], http_status, tuple(codes))


def go_method(method: str) -> str:
    return method[:1].upper() + method[1:].lower()


def transport_error(method: str, url: str, exc: BaseException) -> TransportError:
    return TransportError(f'{go_method(method)} "{url}": {_reason(exc)}')


def _resolver() -> str:
    """" on <nameserver>:53", as Go's resolver words a failed lookup."""
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "nameserver":
                    server = fields[1]
                    return f" on [{server}]:53" if ":" in server else f" on {server}:53"
    except OSError:
        pass
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = str(exc.certificate_error)
        if "unable to get local issuer" in detail or "self-signed" in detail \
                or "self signed" in detail:
            return ("tls: failed to verify certificate: "
                    "x509: certificate signed by unknown authority")
        if "mismatch" in detail or "not valid for" in detail:
            return (f"tls: failed to verify certificate: x509: certificate is not valid "
                    f"for {exc.host}")
        return f"tls: failed to verify certificate: {detail}"
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError, ssl.SSLError)):
        text = str(exc)
        if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text \
                or "http request" in text.lower():
            return "http: server gave HTTP response to HTTPS client"
        return f"tls: {text}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"dial tcp: lookup {exc.host}{_resolver()}: no such host"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, OSError) and os_error.strerror:
            host = f"{exc.host}:{exc.port}"
            if isinstance(os_error, ConnectionRefusedError):
                return f"dial tcp {host}: connect: connection refused"
            if "Name or service not known" in os_error.strerror or \
                    "Temporary failure in name resolution" in os_error.strerror:
                return f"dial tcp: lookup {exc.host}{_resolver()}: no such host"
            return f"dial tcp {host}: {os_error.strerror.lower()}"
        return str(exc)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                        ConnectionResetError, asyncio.IncompleteReadError)):
        return "unexpected EOF"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "i/o timeout"
    return str(exc) or type(exc).__name__


def not_found(err: RegistryError, ref: Reference) -> DaemonError:
    """moby's translatePullError for the codes that mean 'no such image'."""
    code = err.codes[0] if err.codes else ""
    if code == "DENIED":
        return NotFound(f"pull access denied for {ref.familiar_name}, repository does not "
                        f"exist or may require 'docker login': {err}")
    if code == "MANIFEST_UNKNOWN":
        return NotFound(f"manifest for {ref.familiar()} not found: {err}")
    if code == "NAME_UNKNOWN":
        return NotFound(f"repository {ref.familiar_name} not found: {err}")
    return err
