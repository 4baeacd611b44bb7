"""The records a monitor hands out: monitored processes and their exits.

`Process` is what monitor.py persists as `monitor.json` in the process's
directory (`save`) and reads back after a daemon restart (`Process.load`, which
also picks up a conmon pid recorded only in conmon.pid), so its fields are a
storage format: add fields with defaults, never rename. `ExitStatus` is how an
exit is reported (exits.py reads it from conmon's exit file). The stream numbers
are Docker's stdcopy numbering, used by attach streams and container logs alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ...errors import InternalError, NotFound
from .oci import OCIRuntime

# Stream numbers as Docker's stdcopy frames them (attach and logs both use them).
STDIN, STDOUT, STDERR = 0, 1, 2
LOST_EXIT_CODE = 255                     # monitor died without recording the exit

Kind = Literal["container", "exec"]


@dataclass(frozen=True)
class ExitStatus:
    code: int            # exit status, or 128+signal (Docker's convention)
    finished_at: int     # ns since the epoch (when conmon wrote the exit file)
    oom_killed: bool = False
    error: str = ""      # why there is no real exit code (monitor lost)


@dataclass(frozen=True)
class Process:
    """A monitored process: a container's init or an exec session (monitor.json)."""

    id: str              # container id, or exec id
    container_id: str
    kind: Kind
    dir: str
    pid: int
    conmon_pid: int
    terminal: bool
    stdin: bool
    runtime: dict[str, Any]
    log_path: str | None
    created_at: int      # ns since the epoch

    @property
    def attach_path(self) -> str:
        return os.path.join(self.dir, "attach")

    @property
    def ctl_path(self) -> str:
        return os.path.join(self.dir, "ctl")

    @property
    def persist_dir(self) -> str:
        return os.path.join(self.dir, "persist")

    def oci_runtime(self) -> OCIRuntime:
        return OCIRuntime.from_record(self.runtime)

    def save(self) -> None:
        """Writes this record to `<dir>/monitor.json` (atomically)."""
        write_atomic(os.path.join(self.dir, "monitor.json"), json.dumps(asdict(self)).encode())

    @classmethod
    def load(cls, d: str, what: str) -> Process:
        """The record in directory d; NotFound ("No such <what>: <name of d>") if none."""
        try:
            with open(os.path.join(d, "monitor.json"), "rb") as f:
                proc = cls(**json.loads(f.read()))
            if not proc.conmon_pid:  # recorded before conmon ran: it may have since
                conmon_pid = read_int(conmon_pid_file(d)) or 0
                proc = dataclasses.replace(proc, conmon_pid=conmon_pid)
            return proc
        except FileNotFoundError:
            raise NotFound(f"No such {what}: {os.path.basename(d)}") from None
        except (ValueError, TypeError) as e:
            raise InternalError(f"unreadable monitor state in {d}: {e}") from e


# --- files of a process directory -----------------------------------------------------


def conmon_pid_file(d: str) -> str:
    """conmon's --conmon-pidfile for the process in directory d."""
    return os.path.join(d, "conmon.pid")


def write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None
