"""Network namespaces pinned at <exec-root>/netns/<container id> (blocking; use threads).

A pinned namespace outlives the container's processes, so teardown can run
after the container exited, and a restarted daemon finds it by name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

from ...errors import InternalError
from ..mount import unmount


def path(root: str, cid: str) -> str:
    return os.path.join(root, cid)


def create(root: str, cid: str) -> str:
    target = path(root, cid)
    if os.path.ismount(target):
        return target
    os.makedirs(root, mode=0o700, exist_ok=True)
    with open(target, "w"):
        pass
    done = subprocess.run(["unshare", f"--net={target}", "true"], capture_output=True)
    if done.returncode != 0:
        with contextlib.suppress(OSError):
            os.unlink(target)
        raise InternalError("creating a network namespace: "
                            + done.stderr.decode(errors="replace").strip())
    return target


def remove(root: str, cid: str) -> None:
    target = path(root, cid)
    unmount(target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target)


def exists(root: str, cid: str) -> bool:
    return os.path.ismount(path(root, cid))
