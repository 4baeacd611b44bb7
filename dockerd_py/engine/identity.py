"""The daemon's ID (`docker info` ID): made once per data root, kept across restarts."""

from __future__ import annotations

import os
import uuid


def daemon_id(data_root: str) -> str:
    path = os.path.join(data_root, "engine-id")
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4())
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(value)
        os.rename(tmp, path)
        return value
