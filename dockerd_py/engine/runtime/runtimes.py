"""The OCI runtimes a container or build step may name, as dockerd's `runtimes`.

runc is always known, and crun as found on this host; daemon.json's entries
are added and win, as in dockerd. The settings are replaced whole on reload.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidParameter
from .oci import OCIRuntime

_CRUN_WRAPPER = os.path.join(os.path.dirname(__file__), "..", "..", "..", "contrib",
                             "crun-hybrid")


@dataclass(frozen=True)
class RuntimeSettings:
    state_root: str                 # the exec root: each runtime keeps its state in runtime-<name>
    default: str = "runc"
    configured: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@functools.cache
def _crun_path() -> str:
    """The crun to run: the hybrid-cgroup wrapper where needed, else the crun on PATH
    (its full path, as `docker info` shows it; the bare name when not installed)."""
    hybrid = os.path.ismount("/sys/fs/cgroup/unified")
    wrapper = os.path.realpath(_CRUN_WRAPPER)
    if hybrid and os.access(wrapper, os.X_OK):
        return wrapper
    return shutil.which("crun") or "crun"


class Runtimes:
    def __init__(self, settings: RuntimeSettings) -> None:
        self.settings = settings

    def reconfigure(self, settings: RuntimeSettings) -> None:
        self.settings = settings

    @property
    def default(self) -> str:
        return self.settings.default

    def all(self) -> dict[str, dict[str, Any]]:
        """Every runtime by name, with the path that runs and its extra arguments."""
        known: dict[str, dict[str, Any]] = {"runc": {"path": "runc"},
                                            "crun": {"path": _crun_path()}}
        known.update({name: {**entry, "path": entry.get("path") or name}
                      for name, entry in self.settings.configured.items()})
        return known

    def get(self, name: str) -> OCIRuntime:
        entry = self.all().get(name)
        if entry is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return OCIRuntime(name, entry["path"], entry.get("runtimeArgs") or (),
                          root=os.path.join(self.settings.state_root, f"runtime-{name}"))
