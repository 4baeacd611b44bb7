"""What a build was asked for: the options of POST /build, decoded, or of a BuildKit
request (solve.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .request import AuthSource, CacheSource, NamedContext, SecretSource, SshSource
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
    # BuildKit's (absent on the legacy path: the steps that need them fail as BuildKit's do)
    contexts: Mapping[str, NamedContext] = field(default_factory=dict)
    secrets: SecretSource | None = None
    ssh: SshSource | None = None
    auth_source: AuthSource | None = None
    entitlements: frozenset[str] = frozenset()
    cache_sources: tuple[CacheSource, ...] = ()
    buildkit: bool = False                             # a BuildKit client asked
