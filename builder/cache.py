"""The build cache key: what makes two steps the same step.

A key is an explicit digest (where the legacy builder compared the configs of
the parent's child images): the parent image ID, the step's full command line
(RUN's command with the build args in effect, or a metadata step's `#(nop)`
marker, which for COPY/ADD carries the content digest of every source) and
the runtime config the step ran with. Equal keys give the same image, so a
fully cached rebuild reads only rows and digests. The engine keeps the
entries (engine/images/buildcache.py): they go with their image, and with
`docker builder prune`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def step_key(parent_id: str, created_by: str, runtime_config: dict[str, Any],
             inputs: list[str] | None = None) -> str:
    document = json.dumps([parent_id, created_by, runtime_config, inputs or []],
                          sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(document.encode()).hexdigest()
