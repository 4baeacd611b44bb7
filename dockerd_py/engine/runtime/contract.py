"""The runtime contract (after containerd's core/runtime): processes that run in
containers, under monitors that outlive the daemon, on an OCI runtime.

An *OCI runtime* (runc, crun, any daemon.json entry; ``oci.OCIRuntime``) turns a
bundle (a directory with config.json and a root filesystem) into a container
and does the kernel's work: start, kill, pause, resume, delete, update, ps.
``RuntimeRegistry`` names them as dockerd's ``runtimes`` do, with a default.

A *supervisor* (``Supervisor``; conmon per process in this daemon) owns a
container's stdio, pty, log file and exit status, so the container outlives
the daemon. A supervised process is a ``Process`` record (process.py); its end
is an ``ExitStatus``.

Lifecycle of a container's process:
  * ``bundle_dir(cid)`` makes the bundle's directory; the caller writes config.json.
  * ``create(cid, runtime, ...)`` starts the monitor and `runtime create`; the
    process exists ("created", its pid known) but has not run. Attach now to see
    all of its output; then ``runtime.start(cid)`` runs it.
  * ``attach(proc)`` connects to its stdio; ``resize`` sets its pty size;
    ``reopen_log`` makes the monitor reopen its log after a rotation.
  * ``wait(proc)`` resolves with its exit status; ``exit_status`` tells it
    without waiting (None while it runs). Exits that happened while the daemon
    was down are found there too.
  * ``exec(cid, exec_id, process, runtime, ...)`` runs a further process in the
    container under a monitor of its own, with the same machinery.
  * ``remove(cid)`` / ``remove_exec(exec_id)``: runtime delete, monitor gone,
    files gone; safe to repeat.
After a daemon restart a new supervisor on the same root finds every process
again (``load``, ``load_exec``, ``processes``).

Build steps do not need a monitor: ``OCIRuntime.run`` runs a bundle in the
foreground with its output piped to the caller.
"""

from __future__ import annotations

import builtins
from typing import Any, Protocol

from .attach import AttachStream
from .oci import OCIRuntime
from .process import ExitStatus, Process

__all__ = ["AttachStream", "ExitStatus", "OCIRuntime", "Process", "RuntimeRegistry",
           "Supervisor"]


class RuntimeRegistry(Protocol):
    @property
    def default(self) -> str:
        """The runtime a container gets when it names none."""

    def all(self) -> dict[str, dict[str, Any]]:
        """Every runtime by name: the path that runs and its extra arguments."""

    def get(self, name: str) -> OCIRuntime:
        """InvalidParameter for a name no runtime has."""


class Supervisor(Protocol):
    async def start(self) -> None:
        """Begin watching for exits (at daemon start, before anything is loaded)."""

    async def close(self) -> None: ...

    def bundle_dir(self, cid: str) -> str: ...

    def container_dir(self, cid: str) -> str: ...

    async def create(self, cid: str, runtime: OCIRuntime, *, terminal: bool = False,
                     stdin: bool = False, stdin_once: bool = True,
                     log_path: str | None = None, name: str | None = None,
                     journald_tag: str | None = None) -> Process: ...

    async def exec(self, cid: str, exec_id: str, process: dict[str, Any],
                   runtime: OCIRuntime, *, terminal: bool = False, stdin: bool = False,
                   stdin_once: bool = True, attach: bool = True
                   ) -> tuple[Process, AttachStream | None]: ...

    def load(self, cid: str) -> Process:
        """The container's process (NotFound when it has no monitor)."""

    def load_exec(self, exec_id: str) -> Process: ...

    def processes(self) -> builtins.list[Process]: ...

    def alive(self, proc: Process) -> bool:
        """Whether its monitor still runs."""

    def exit_status(self, proc: Process) -> ExitStatus | None: ...

    async def wait(self, proc: Process) -> ExitStatus: ...

    async def attach(self, proc: Process) -> AttachStream: ...

    def resize(self, proc: Process, height: int, width: int) -> None: ...

    def reopen_log(self, proc: Process) -> None: ...

    async def remove(self, cid: str) -> None: ...

    async def remove_exec(self, exec_id: str) -> None: ...
