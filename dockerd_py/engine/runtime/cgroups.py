"""The monitors' cgroup: where conmon processes live, apart from the daemon's service.

conmon is moved into one shared cgroup `<cgroup_parent>/conmon` in the
hierarchies that service managers use to track a unit's processes (cgroup2, and
the v1 `name=systemd` hierarchy): stopping the daemon's service must not kill
the monitors. Resource controllers are left alone. One shared cgroup, never one
per container: nothing to leak. Only conmon is concerned: the runtime places the
container in its own cgroup (cgroupsPath) in every hierarchy.

Contract: `place_in_cgroup(parent, pid)` creates the cgroup where missing and
moves pid into it, blocking (a migration can wait for an RCU grace period, so
callers run it in a thread); a hierarchy that refuses is logged, not raised.
`remove_cgroup(parent)` removes the cgroup if no process is left in it (best
effort, for tests and teardown).
"""

from __future__ import annotations

import contextlib
import logging
import os

log = logging.getLogger(__name__)


def conmon_cgroup_dirs(parent: str) -> list[str]:
    """`<mount>/<parent>/conmon` in the cgroup2 tree and the v1 name=systemd hierarchy."""
    dirs = []
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options):
            dirs.append(os.path.join(fields[4], parent.strip("/"), "conmon"))
    return dirs


def place_in_cgroup(parent: str, pid: int) -> None:
    for path in conmon_cgroup_dirs(parent):
        try:
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        except OSError as e:
            log.warning("cannot move conmon %d into %s: %s", pid, path, e)


def remove_cgroup(parent: str) -> None:
    for path in conmon_cgroup_dirs(parent):
        with contextlib.suppress(OSError):
            os.rmdir(path)
