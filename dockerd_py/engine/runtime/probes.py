"""/proc probes: is a recorded pid still the monitor we started?

A monitor's pid comes from a file written long ago (conmon.pid), possibly before a
daemon restart, so the pid may have been reused. `conmon_alive(proc)` accepts it
only if the process is a conmon whose command line names the process's id and
directory, and is not a zombie. Everything here is a cheap read of /proc; a pid
that cannot be read counts as gone.
"""

from __future__ import annotations

import os

from .process import Process


def cmdline(pid: int) -> list[bytes]:
    """argv of pid, [] if it is gone or unreadable."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return True


def conmon_alive(proc: Process) -> bool:
    """True if conmon_pid is still this process's conmon (not a reused pid)."""
    argv = cmdline(proc.conmon_pid)
    if not argv or not os.path.basename(argv[0]).startswith(b"conmon"):
        return False
    if proc.id.encode() not in argv or proc.dir.encode() not in argv:
        return False
    return not is_zombie(proc.conmon_pid)
