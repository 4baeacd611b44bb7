"""File modes that do not depend on the process umask.

The daemon runs with umask 0077 (`DAEMON_UMASK`): what it writes under its roots
(metadata, logs, bundles, blobs) is private unless made otherwise. What containers see
is made with explicit modes, as dockerd (umask 0022) makes it: mount points, bind
sources, working directories, /etc files (0755 directories, 0644 files). The OCI
runtime and its monitor run with dockerd's umask (`CHILD_UMASK`): runc creates mount
points and device nodes in a container's root filesystem.
"""

from __future__ import annotations

import os

DAEMON_UMASK = 0o077
CHILD_UMASK = 0o022


def makedirs(path: str, mode: int = 0o755) -> None:
    """os.makedirs(path, exist_ok=True), every directory it creates getting exactly mode."""
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path and not os.path.isdir(parent):
        makedirs(parent, mode)
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.isdir(path):
            return
        raise
    os.chmod(path, mode)
