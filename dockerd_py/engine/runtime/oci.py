"""Adapter for an OCI runtime binary (runc, crun, or anything runc-compatible).

One `OCIRuntime` per configured runtime (daemon.json "runtimes"): the binary's
path, extra global arguments, and the state directory (`--root`) this daemon
keeps its containers in, apart from other users of the same runtime.

Lifecycle of a container, as driven by the engine:

    create   not here: conmon runs `<runtime> create` itself (see monitor.py),
             using `global_args()` as its `--runtime-arg`s
    run      `run`          a build step: create, start and wait in one process,
                            in the foreground (`ForegroundRun`)
    start    `start`        created -> running
    pause    `pause`        running -> paused  (freezer)
    resume   `resume`       paused  -> running
    kill     `kill`         signal to init, or to every process with all=True
    update   `update`       new cgroup limits (OCI LinuxResources JSON)
    state    `state`        the runtime's view: status, pid, bundle, ...
    ps       `ps`           host pids of the container's processes
    delete   `delete`       removes the runtime's state and the container's cgroup;
                            force=True kills a running container first

Every call is an async subprocess, and every command line starts with
`global_args()`: this is the only place that builds one. A failure is
translated here, at the boundary, into `dockerd_py.errors` carrying the
runtime's own message: `NotFound` when the runtime does not know the container,
`Conflict` when the container is in the wrong state for the operation,
`InternalError` otherwise. The runtime writes its messages as JSON lines
(`--log-format json`, understood by runc and crun), to stderr or to its `--log`
file; plain text is accepted too (`runtime_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Sequence
from typing import Any

from ...errors import Conflict, DaemonError, InternalError, NotFound
from ..modes import CHILD_UMASK
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
    """The human part of a runtime's error output (JSON log lines, logrus text or plain);
    all of it when no line reads as an error."""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    return "; ".join(runtime_errors(text)) or text.strip()


def runtime_errors(text: str) -> list[str]:
    """The error messages in a runtime's output: JSON records at level error, fatal or
    panic (no level: error), logrus text at level error or fatal, and any other
    non-empty line as it is. Records at other levels (warning, info) are skipped."""
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
    return messages


def logged_error(log_path: str) -> str:
    """The errors a runtime wrote to its `--log` file, joined; "" if none (or no file)."""
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return "; ".join(runtime_errors(text))


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

    def global_args(self, log: str | None = None) -> list[str]:
        """Arguments before the sub-command; conmon gets them as --runtime-arg.
        log: a file for the runtime's own messages instead of its stderr."""
        out = list(self.args)
        if log:
            out += ["--log", log]
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
                umask=CHILD_UMASK,
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

    async def run(self, cid: str, bundle: str, log_path: str) -> ForegroundRun:
        """`run` of the bundle as container cid, in the foreground (see ForegroundRun);
        the runtime's own messages go to log_path."""
        proc = await asyncio.create_subprocess_exec(
            self.path, *self.global_args(log=log_path), "run", "--bundle", bundle, cid,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, umask=CHILD_UMASK)
        return ForegroundRun(self, cid, proc, log_path)

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


class ForegroundRun:
    """A `<runtime> run` in the foreground: the container's command with its stdout
    and stderr as pipes (`stdout`, `stderr`; read both to their end, then wait()),
    stdin /dev/null, in a session of its own, with no monitor and no console.

    The runtime's messages go to its log file, so they never mix with the
    command's output, except its last words when it cannot start the command,
    which it writes to stderr too: is_runtime_output() recognises them. After a
    non-zero exit, failure() tells a runtime failure (the error dockerd prints)
    from the command's own exit code. The container's runtime state stays until
    delete(); kill() ends a run that is abandoned (cancelled) and deletes it.
    """

    def __init__(self, runtime: OCIRuntime, cid: str, proc: asyncio.subprocess.Process,
                 log_path: str) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self.runtime = runtime
        self.cid = cid
        self.log_path = log_path
        self.stdout: asyncio.StreamReader = proc.stdout
        self.stderr: asyncio.StreamReader = proc.stderr
        self._proc = proc

    async def wait(self) -> int:
        """The exit code: the command's, or the runtime's when failure() says so."""
        return await self._proc.wait()

    async def is_runtime_output(self, data: bytes) -> bool:
        """Is this stderr data the runtime's own error (already in its log)?"""
        if b"failed" not in data:  # runc and crun: "... failed: <why>"
            return False
        return await asyncio.to_thread(self._logged_in, data)

    def _logged_in(self, data: bytes) -> bool:
        message = logged_error(self.log_path)
        return bool(message) and message in data.decode("utf-8", "replace")

    def failure(self) -> InternalError | None:
        """The error dockerd reports when the runtime could not start the command
        (blocking: reads the log); None when the command itself ran."""
        message = logged_error(self.log_path)
        if not message:
            return None
        message = message.replace("runc run failed", "runc create failed", 1)  # as dockerd's
        return InternalError(
            f"failed to create shim task: OCI runtime create failed: {message}: unknown")

    async def kill(self) -> None:
        """Stop an abandoned run: every process in the container, then the runtime."""
        with contextlib.suppress(Exception):
            await self.runtime.kill(self.cid, "KILL", all=True)
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._proc.wait())
        await self.delete()

    async def delete(self) -> None:
        """Removes the container's runtime state (best effort, not cancellable)."""
        with contextlib.suppress(Exception):
            await asyncio.shield(self.runtime.delete(self.cid, force=True))
