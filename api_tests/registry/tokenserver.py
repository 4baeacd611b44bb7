"""A token server for the reference registry's `auth: token` mode (run as a script).

GET /token?service=&scope=...&account= with Basic credentials grants the
requested actions to the one known user (nothing to anyone else); with
offline_token=true it also hands out a refresh token, which POST /token
(grant_type=refresh_token) accepts instead of a password. Tokens are JWTs
signed RS256 with the certificate in their x5c header, which the registry
trusts through its rootcertbundle.

    python3 tokenserver.py PORT KEY CERT ISSUER USER PASSWORD
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

PORT, KEY, CERT, ISSUER, USER, PASSWORD = sys.argv[1:7]
_key = serialization.load_pem_private_key(open(KEY, "rb").read(), password=None)
_cert_der = x509.load_pem_x509_certificate(open(CERT, "rb").read()).public_bytes(
    serialization.Encoding.DER)
_refresh_tokens: set[str] = set()
_log = open(sys.argv[7], "a") if len(sys.argv) > 7 else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(service: str, account: str, access: list[dict[str, object]]) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(_cert_der).decode()]}
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": account, "aud": service, "exp": now + 300, "nbf": now - 10,
              "iat": now, "jti": secrets.token_hex(8), "access": access}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _key.sign(signing_input.encode(), padding.PKCS1v15(),  # type: ignore[union-attr]
                          hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _access(scopes: list[str]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for scope in scopes:
        for one in scope.split(" "):
            parts = one.split(":")
            if len(parts) == 3:
                out.append({"type": parts[0], "name": parts[1], "actions": parts[2].split(",")})
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt: str, *args: object) -> None:
        if _log is not None:
            _log.write((fmt % args) + "\n")
            _log.flush()

    def _reply(self, status: int, doc: dict[str, object]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _grant(self, authorized: bool, service: str, scopes: list[str], offline: bool) -> None:
        access = _access(scopes) if authorized else []
        doc: dict[str, object] = {"token": _jwt(service, USER if authorized else "", access),
                                  "expires_in": 300}
        doc["access_token"] = doc["token"]
        if authorized and offline:
            refresh = secrets.token_hex(16)
            _refresh_tokens.add(refresh)
            doc["refresh_token"] = refresh
        self._reply(200, doc)

    def do_GET(self) -> None:
        query = parse_qs(urlparse(self.path).query)
        header = self.headers.get("Authorization", "")
        authorized = False
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if (user, password) != (USER, PASSWORD):
                self._reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                              "message": "invalid username or password"}]})
                return
            authorized = True
        self._grant(authorized, query.get("service", [""])[0], query.get("scope", []),
                    query.get("offline_token", [""])[0] == "true")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if form.get("grant_type", [""])[0] != "refresh_token" or \
                form.get("refresh_token", [""])[0] not in _refresh_tokens:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                          "message": "invalid refresh token"}]})
            return
        self._grant(True, form.get("service", [""])[0], form.get("scope", [""])[0].split(" "),
                    False)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler)
    print("ready", flush=True)
    server.serve_forever()
