"""What the steps of a stage see of their build and stage (protocols), and the
records they share: kept apart so that the step modules (runstep, copystep) and the
dispatcher depend on this, never on each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.checks import Finding
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import DaemonError

from .backend import Backend
from .cachemounts import CacheMounts
from .context import BuildContext
from .layer import StepFS
from .observer import BuildObserver, Vertex
from .options import BuildOptions
from .request import NamedContext


class BuildScope(Protocol):
    """What a stage reads and reaches of its build (build.py's Build)."""

    backend: Backend
    context: BuildContext
    dockerfile: ins.Dockerfile
    options: BuildOptions
    state_dir: str                            # the build's private directory
    used_args: set[str]                       # build args some ARG consumed
    meta_values: dict[str, str | None]        # the ARGs before the first FROM
    step_numbers: dict[int, int]              # id(instruction) -> its "Step N"
    total_steps: int

    def bk_step_name(self, stage: int, index: int, text: str) -> str:
        """BuildKit's name of the index-th counted step of a stage."""

    async def copy_source(self, before: int, name: str) -> ImageRecord | None:
        """The image `COPY --from=name` reads."""

    def image_view(self, image: ImageRecord | None) -> AbstractAsyncContextManager[str]:
        """A read-only mount of an image's root filesystem."""

    def named_context(self, before: int, name: str) -> NamedContext | None:
        """The `--build-context` name stands for (None: a stage or an image)."""

    def source_view(self, before: int, name: str) -> AbstractAsyncContextManager[str]:
        """The root directory `from=name` reads ("": the build context)."""

    async def source_digest(self, before: int, name: str, path: str) -> str:
        """What identifies the content of `path` in source `name` (for cache keys)."""

    cache_mounts: CacheMounts

    async def report_findings(self, findings: list[Finding]) -> None:
        """Build checks found while the steps run (UndefinedVar): warnings, unless
        skipped."""


# The steps BuildKit shows and numbers ("[stage-1 2/5] RUN make"); the others are hidden.
COUNTED_STEPS = (ins.Run, ins.Copy, ins.Workdir)

# Build args every build accepts without an ARG (moby's builtinAllowedBuildArgs).
BUILTIN_ARGS = frozenset({"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                          "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy",
                          "ALL_PROXY", "all_proxy"})


class StepFailed(DaemonError):
    """A RUN whose command exited non-zero; `code` becomes the CLI's exit status."""

    status = 500

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class StageState:
    image: ImageRecord | None = None            # the latest step's image (None: scratch)
    config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in the stage
    author: str = ""
    cmd_set: bool = False
    cache_busted: bool = False


class StageScope(Protocol):
    """What a step handler reaches of its stage (dispatch.py's StageBuilder)."""

    build: BuildScope
    stage: ins.Stage
    state: StageState
    observer: BuildObserver
    vertex: Vertex                              # the step running now
    backend: Backend

    def env_for_expansion(self) -> dict[str, str]:
        """ENV, then the ARGs in scope: what words are expanded with."""

    def build_args_in_effect(self) -> list[str]:
        """K=V of the ARGs with a value that ENV does not override."""

    def builtin_args_env(self) -> list[str]:
        """The proxy build args given, as K=V."""

    async def _commit(self, created_by: str, config: dict[str, Any], *,
                      inputs: list[str] | None = None,
                      change: Callable[[StepFS], Awaitable[None]] | None = None,
                      container_lines: bool = False, runs_command: bool = False) -> None:
        """Record the step: from the cache, or by running `change` on a new layer."""
