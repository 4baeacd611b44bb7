"""Making a directory's entries durable before a metadata row names them.

A rename or mkdir is only on disk once its parent directory is: until then a power
loss may undo it while the sqlite commit that refers to it survives. Callers fsync the
parent once after the last entry a transaction will refer to and before that
transaction commits (one fsync covers every entry made in the directory before it).
"""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
