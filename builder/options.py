"""What a build was asked for: the options of POST /build, decoded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .run import RunOptions


@dataclass(frozen=True)
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()                         # normalized references
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    run: RunOptions = RunOptions()
    auth: dict[str, Any] = field(default_factory=dict)  # X-Registry-Config
