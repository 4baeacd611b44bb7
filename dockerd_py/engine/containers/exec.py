"""Exec sessions (`docker exec`): records, OCI process, lifecycle.

As in dockerd, sessions live in memory only; a session's process runs under
its own conmon, so it is also reachable for a container started before a
daemon restart (the container's bundle is still there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from typing import Any

from ...errors import Conflict, InvalidParameter, NotFound
from ..runtime.attach import AttachStream
from ..runtime.contract import Supervisor
from ..runtime.hostlimits import host_limits
from ..runtime.process import Process
from ..runtime.spec import check_env
from ..runtime.users import resolve_user
from .bundle import read_in_root
from .records import ExecSession
from .store import ContainerStore


class ExecService:
    def __init__(self, containers: ContainerStore, monitor: Supervisor) -> None:
        self.containers = containers
        self.monitor = monitor
        self._sessions: dict[str, ExecSession] = {}

    def get(self, exec_id: str) -> ExecSession:
        try:
            return self._sessions[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def create(self, ref: str, config: dict[str, Any]) -> ExecSession:
        c = self.containers.get(ref)
        if c.state.status == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.status != "running":
            raise Conflict(f"container {c.id} is not running")
        if not config.get("Cmd"):
            raise InvalidParameter("No exec command specified")
        check_env(config.get("Env") or ())
        session = ExecSession(secrets.token_hex(32), c.id, dict(config))
        self._forget_removed_containers()
        self._sessions[session.id] = session
        self.containers.event(c, "exec_create: " + " ".join(config["Cmd"]), execID=session.id)
        return session

    def of_container(self, cid: str) -> list[str]:
        """The IDs of a container's exec sessions (inspect's ExecIDs), oldest first."""
        return [i for i, s in self._sessions.items() if s.container_id == cid]

    def forget(self, exec_id: str) -> None:
        """Drop a finished session (the health checker's probes)."""
        self._sessions.pop(exec_id, None)

    def _forget_removed_containers(self) -> None:
        """Sessions live as long as their container, as in dockerd."""
        live = {c.id for c in self.containers.list()}
        for exec_id in [i for i, s in self._sessions.items() if s.container_id not in live]:
            del self._sessions[exec_id]

    def _process(self, session: ExecSession, console_size: list[int] | None) -> dict[str, Any]:
        cid = session.container_id
        try:
            with open(os.path.join(self.monitor.container_dir(cid),
                                   "config.json")) as f:
                spec = json.load(f)
        except OSError:  # the container exited (or was removed) meanwhile
            raise Conflict(f"container {cid} is not running") from None
        process = dict(spec["process"])
        cfg = session.config
        c = self.containers.get(cid)
        process["args"] = list(cfg["Cmd"])
        env = list(process.get("env") or [])
        for item in cfg.get("Env") or []:
            key = item.split("=", 1)[0]
            env = [e for e in env if e.split("=", 1)[0] != key] + [item]
        process["env"] = env
        process["terminal"] = session.tty
        if cfg.get("WorkingDir"):
            process["cwd"] = cfg["WorkingDir"]
        if cfg.get("User"):
            rootfs = spec["root"]["path"]
            user = resolve_user(cfg["User"], read_in_root(rootfs, "/etc/passwd"),
                                read_in_root(rootfs, "/etc/group"),
                                c.host_config.get("GroupAdd") or ())
            process["user"] = {"uid": user.uid, "gid": user.gid,
                               "additionalGids": list(user.additional_gids)}
        if cfg.get("Privileged"):
            caps = sorted(host_limits().bounding_caps)
            process["capabilities"] = {k: caps for k in
                                       ("bounding", "effective", "permitted")}
        if session.tty and console_size and console_size[0] and console_size[1]:
            process["consoleSize"] = {"height": int(console_size[0]),
                                      "width": int(console_size[1])}
        return process

    def check_startable(self, exec_id: str) -> ExecSession:
        """What start() would refuse, checked before a client connection is hijacked."""
        session = self.get(exec_id)
        if session.running or session.exit_code is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c = self.containers.get(session.container_id)
        if c.state.status == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.status != "running":
            raise Conflict(f"container {c.id} is not running")
        return session

    async def start(self, exec_id: str, *, detach: bool,
                    console_size: list[int] | None = None) -> AttachStream | None:
        session = self.check_startable(exec_id)
        c = self.containers.get(session.container_id)
        session.running = True
        monitor = self.monitor
        try:
            runtime = monitor.load(c.id).oci_runtime()
            process = await asyncio.to_thread(self._process, session, console_size)
            proc, stream = await monitor.exec(
                c.id, exec_id, process, runtime, terminal=session.tty,
                stdin=bool(session.config.get("AttachStdin")), stdin_once=not session.tty,
                attach=not detach)
        except BaseException:
            session.running = False
            session.exit_code = 126
            session.done.set()
            raise
        session.process = proc
        session.pid = proc.pid
        cmd = " ".join(session.config["Cmd"])
        self.containers.event(c, "exec_start: " + cmd, execID=exec_id)
        asyncio.get_running_loop().create_task(self._wait(session, proc))
        return stream

    async def _wait(self, session: ExecSession, proc: Process) -> None:
        monitor = self.monitor
        status = await monitor.wait(proc)
        session.exit_code = status.code
        session.running = False
        session.done.set()
        with contextlib.suppress(Exception):
            await monitor.remove_exec(session.id)
        with contextlib.suppress(NotFound):
            c = self.containers.get(session.container_id)
            self.containers.event(c, "exec_die", execID=session.id,
                                   exitCode=str(status.code))

    def resize(self, exec_id: str, height: int, width: int) -> None:
        session = self.get(exec_id)
        if session.process is None or not session.running:
            raise Conflict(f"Exec {exec_id} is not running")
        self.monitor.resize(session.process, height, width)
