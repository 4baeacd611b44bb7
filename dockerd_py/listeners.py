"""The daemon's listeners: -H addresses parsed as dockerd parses them, unix sockets made
safely, TLS for TCP."""

from __future__ import annotations

import grp
import os
import socket
import ssl
from urllib.parse import urlparse

from .config import Config
from .errors import InvalidParameter


def unix_socket(path: str, group: str) -> socket.socket:
    """Bind a unix socket, replacing a stale socket file but never a live one."""
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody answers: left by a daemon that died
        else:
            raise InvalidParameter(f"{path}: address already in use by a running daemon")
        finally:
            probe.close()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = -1
    if gid >= 0:
        os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    return sock


def tls_context(cfg: Config) -> ssl.SSLContext | None:
    if not (cfg.tls or cfg.tlsverify):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cfg.tlscert, cfg.tlskey)
    if cfg.tlsverify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cfg.tlscacert)
    return ctx


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def parse_hosts(cfg: Config) -> list[tuple[str, str, int | None]]:
    """(scheme, address, port) for each -H; TCP off loopback requires --tlsverify."""
    out: list[tuple[str, str, int | None]] = []
    for raw in cfg.hosts:
        if raw.startswith("fd://"):
            raise InvalidParameter("fd:// sockets (systemd activation) are not supported")
        if "://" not in raw:
            raw = ("unix://" if raw.startswith("/") else "tcp://") + raw
        url = urlparse(raw)
        if url.scheme == "unix":
            out.append(("unix", url.path or "/var/run/docker.sock", None))
        elif url.scheme == "tcp":
            host = url.hostname or "127.0.0.1"
            if not cfg.tlsverify and not _is_loopback(host):
                raise InvalidParameter(f"refusing to listen on {raw} without --tlsverify: "
                                       "only loopback addresses may be served without TLS "
                                       "client verification")
            out.append(("tcp", host, url.port or (2376 if cfg.tls or cfg.tlsverify else 2375)))
        else:
            raise InvalidParameter(f"invalid host {raw!r}: expected unix:// or tcp://")
    return out
