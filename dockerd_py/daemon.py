"""Composition root: engine + API app + listeners, and the process lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import ssl
from urllib.parse import urlparse

from aiohttp import web

from . import config as config_mod
from .api import archive as archive_api
from .api import build as build_api
from .api import containers, exec, images, networks, server, stats, system, volumes
from .api import distribution as distribution_api
from .api.keys import ENGINE
from .config import Config
from .engine.engine import Engine
from .errors import InvalidParameter
from .pidfile import DirLock, PidFile

log = logging.getLogger("dockerd_py")

ROUTE_TABLES = (system.routes, images.routes, containers.routes, exec.routes, volumes.routes,
                stats.routes, archive_api.routes, networks.routes, distribution_api.routes,
                build_api.routes)


def make_app(engine: Engine) -> web.Application:
    app = server.make_app(ROUTE_TABLES)
    app[ENGINE] = engine
    return app


def _unix_socket(path: str, group: str) -> socket.socket:
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


def _tls_context(cfg: Config) -> ssl.SSLContext | None:
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


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._stop = asyncio.Event()

    async def run(self) -> None:
        cfg = self.cfg
        listeners = parse_hosts(cfg)
        os.makedirs(cfg.exec_root, mode=0o700, exist_ok=True)
        os.makedirs(cfg.data_root, mode=0o711, exist_ok=True)
        pidfile = PidFile(cfg.effective_pidfile)
        pidfile.acquire()
        locks = [DirLock(cfg.data_root, "data root"), DirLock(cfg.exec_root, "exec root")]
        try:
            for lock in locks:
                lock.acquire()
            await self._serve(listeners)
        finally:
            for lock in locks:
                lock.release()
            pidfile.release()

    async def _serve(self, listeners: list[tuple[str, str, int | None]]) -> None:
        cfg = self.cfg
        # Child exits through pidfds on the loop, not a thread per runc/conmon child.
        if asyncio.PidfdChildWatcher is not None and hasattr(os, "pidfd_open"):
            with contextlib.suppress(OSError):
                os.close(os.pidfd_open(os.getpid()))
                watcher = asyncio.PidfdChildWatcher()
                watcher.attach_loop(asyncio.get_running_loop())
                asyncio.set_child_watcher(watcher)
        engine = Engine(cfg)
        await engine.start()
        app = make_app(engine)
        runner = web.AppRunner(app, handle_signals=False, access_log=None,
                               shutdown_timeout=2.0)
        await runner.setup()
        sockets: list[str] = []
        try:
            for scheme, address, port in listeners:
                if scheme == "unix":
                    sock = _unix_socket(address, cfg.group)
                    sockets.append(address)
                    await web.SockSite(runner, sock).start()
                else:
                    await web.TCPSite(runner, address, port, ssl_context=_tls_context(cfg)).start()
                log.info("API listen on %s", address if port is None else f"{address}:{port}")
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, lambda: self._reload(engine))
            log.info("Daemon has completed initialization")
            await self._stop.wait()
            log.info("Processing signal 'terminated'")
        finally:
            await runner.cleanup()
            await engine.close()
            for path in sockets:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            log.info("Daemon shutdown complete")

    def _reload(self, engine: Engine) -> None:
        try:
            new, changed = config_mod.reload(self.cfg)
        except Exception as e:
            log.error("Error reconfiguring the daemon: %s", e)
            return
        self.cfg = engine.config = engine.containers.config = new
        if "log_level" in changed or "debug" in changed:
            set_log_level(new.log_level)
        log.info("Reloaded configuration: %s", ", ".join(changed) or "no changes")


def set_log_level(level: str) -> None:
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
              "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL,
              "panic": logging.CRITICAL}
    if level not in levels:
        raise InvalidParameter(f"unable to parse logging level: {level}")
    logging.getLogger().setLevel(levels[level])
