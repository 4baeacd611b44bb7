"""Adapter for an OCI runtime binary (runc, crun, or anything runc-compatible).

One `OCIRuntime` per configured runtime (daemon.json "runtimes"): the binary's
path, extra global arguments, and the state directory (`--root`) this daemon
keeps its containers in, apart from other users of the same runtime.

Lifecycle of a container, as driven by the engine:

    create   not here: conmon runs `<runtime> create` itself (see monitor.py),
             using `global_args()` as its `--runtime-arg`s
    start    `start`        created -> running
    pause    `pause`        running -> paused  (freezer)
    resume   `resume`       paused  -> running
    kill     `kill`         signal to init, or to every process with all=True
    update   `update`       new cgroup limits (OCI LinuxResources JSON)
    state    `state`        the runtime's view: status, pid, bundle, ...
    ps       `ps`           host pids of the container's processes
    delete   `delete`       removes the runtime's state and the container's cgroup;
                            force=True kills a running container first

Every call is an async subprocess. A failure is translated here, at the
boundary, into `dockerd_py.errors` carrying the runtime's own message:
`NotFound` when the runtime does not know the container, `Conflict` when the
container is in the wrong state for the operation, `InternalError` otherwise.
The runtime writes its messages as JSON lines (`--log-format json`, understood
by runc and crun); plain text is accepted too.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Sequence
from typing import Any

from ...errors import Conflict, DaemonError, InternalError, NotFound
from .signals import signal_name

# Phrases with which runc and crun say "no such container" / "wrong state".
_NOT_FOUND = re.compile(
    r"container does not exist|container not found|no such container|"
    r"(error opening file|cannot open directory) `[^`]*`: No such file or directory",
    re.IGNORECASE,
)
_CONFLICT = re.compile(
    r"not running|is stopped|container not paused|already paused|not paused|"
    r"cannot (pause|resume|start|kill|exec)|is not (running|paused|created)|"
    r"container is (paused|running|stopped)|process already finished|"
    r"cannot start a container that has (stopped|run)|cannot start an already running",
    re.IGNORECASE,
)
# runc's logrus text format: time="..." level=error msg="..."
_LOGRUS_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


def runtime_message(output: bytes | str) -> str:
    """The human part of a runtime's error output (JSON log lines, logrus text or plain)."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    messages: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if isinstance(record, dict) and "msg" in record:
                if record.get("level", "error") in ("error", "fatal", "panic"):
                    messages.append(str(record["msg"]))
                continue
        if m := _LOGRUS_MSG.search(line):
            if "level=error" in line or "level=fatal" in line:
                messages.append(json.loads(f'"{m.group(1)}"'))
            continue
        messages.append(line)
    return "; ".join(messages) or text.strip()


def translate_error(action: str, cid: str, message: str) -> DaemonError:
    """A runtime failure as the daemon's error category."""
    if _NOT_FOUND.search(message):
        return NotFound(f"No such container: {cid}: {message}")
    if _CONFLICT.search(message):
        return Conflict(f"cannot {action} container {cid}: {message}")
    return InternalError(f"runtime {action} of container {cid} failed: {message}")


def start_failure_exit_code(message: str) -> int:
    """The exit code dockerd records when a container or exec cannot start, from
    the runtime's message (moby daemon/errors.go): 126 the command cannot be
    invoked, 127 not found (or a bind mount of the wrong type), 128 anything else.
    126 and 127 are configuration errors: dockerd answers them with 400."""
    text = message.lower()
    if any(s in text for s in ("permission denied", "is a directory",
                               "operation not permitted")):
        return 126
    if any(s in text for s in ("not a directory", "executable file not found",
                               "no such file or directory")):
        return 127
    return 128


class OCIRuntime:
    """An OCI runtime binary; all methods are coroutines that run it once."""

    def __init__(self, name: str, path: str, args: Sequence[str] = (), *,
                 root: str | None = None, json_log: bool = True) -> None:
        self.name = name
        self.path = shutil.which(path) or path  # conmon needs a path it can access(X_OK)
        self.args = tuple(args)
        self.root = root
        self.json_log = json_log

    def __repr__(self) -> str:
        return f"OCIRuntime({self.name!r}, {self.path!r}, args={self.args!r}, root={self.root!r})"

    def global_args(self) -> list[str]:
        """Arguments before the sub-command; conmon gets them as --runtime-arg."""
        out = list(self.args)
        if self.json_log:
            out += ["--log-format", "json"]
        if self.root:
            out += ["--root", self.root]
        return out

    def to_record(self) -> dict[str, Any]:
        """What monitor.py persists, so a restarted daemon drives the same runtime."""
        return {"name": self.name, "path": self.path, "args": list(self.args),
                "root": self.root, "json_log": self.json_log}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OCIRuntime:
        return cls(record["name"], record["path"], record.get("args", ()),
                   root=record.get("root"), json_log=record.get("json_log", True))

    async def _run(self, action: str, cid: str, *argv: str, stdin: bytes | None = None,
                   timeout: float = 60.0) -> bytes:
        cmd = [self.path, *self.global_args(), *argv]
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise InternalError(f"cannot run OCI runtime {self.name} ({self.path}): {e}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise InternalError(
                f"runtime {action} of container {cid} timed out after {timeout:.0f}s") from None
        except asyncio.CancelledError:
            if proc.returncode is None:
                proc.kill()
            raise
        if proc.returncode != 0:
            message = runtime_message(err) or f"exit status {proc.returncode}"
            raise translate_error(action, cid, message)
        return out

    async def start(self, cid: str) -> None:
        await self._run("start", cid, "start", cid)

    async def state(self, cid: str) -> dict[str, Any]:
        """The runtime's state record: {"id", "pid", "status", "bundle", "created", ...}."""
        out = await self._run("inspect", cid, "state", cid)
        try:
            state: dict[str, Any] = json.loads(out)
        except ValueError as e:
            raise InternalError(f"runtime state of {cid}: unreadable output {out[:200]!r}") from e
        return state

    async def kill(self, cid: str, sig: int | str = "TERM", *, all: bool = False) -> None:
        argv = ["kill", *(["--all"] if all else []), cid, signal_name(sig)]
        await self._run("kill", cid, *argv)

    async def pause(self, cid: str) -> None:
        await self._run("pause", cid, "pause", cid)

    async def resume(self, cid: str) -> None:
        await self._run("unpause", cid, "resume", cid)

    async def delete(self, cid: str, *, force: bool = False, missing_ok: bool = True) -> None:
        """Removes the runtime's state; a container it does not know is not an error
        unless missing_ok=False."""
        try:
            await self._run("delete", cid, "delete", *(["--force"] if force else []), cid)
        except NotFound:
            if not missing_ok:
                raise

    async def update(self, cid: str, resources: dict[str, Any]) -> None:
        """New limits, as an OCI `linux.resources` object (runc/crun `update -r -`)."""
        body = json.dumps(resources).encode()
        await self._run("update", cid, "update", "--resources", "-", cid, stdin=body)

    async def ps(self, cid: str) -> list[int]:
        """Host pids of every process in the container."""
        out = await self._run("top", cid, "ps", "--format", "json", cid)
        try:
            pids = json.loads(out) or []
        except ValueError as e:
            raise InternalError(f"runtime ps of {cid}: unreadable output {out[:200]!r}") from e
        return [int(p) for p in pids]

    async def version(self) -> str:
        """First line of `<runtime> --version` (for `docker info` / `docker version`)."""
        proc = await asyncio.create_subprocess_exec(
            self.path, "--version", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return out.decode(errors="replace").splitlines()[0] if out else ""

    def available(self) -> bool:
        return os.access(self.path, os.X_OK)
