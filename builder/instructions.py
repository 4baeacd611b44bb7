"""The parsed Dockerfile: what the parser hands to the dispatcher.

This module is the contract between `parser` (text → these objects) and the
dispatcher (these objects → image). Words are kept exactly as written, before
variable expansion: expansion depends on the ARG and ENV values in effect when
the instruction runs, so the dispatcher calls `expand(expander)` on each
instruction with a function that expands one word (`shell_lex`), and gets back a
copy with every field the reference expands replaced. RUN, CMD, ENTRYPOINT,
SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are never expanded by the builder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self

Expander = Callable[[str], str]


class DockerfileError(ValueError):
    """A malformed Dockerfile; `line` is 1-based (0 when not tied to a line)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Heredoc:
    name: str       # the delimiter word (EOF); for COPY/ADD <<EOF the source file's name
    content: str    # the body, newline-terminated as written
    expand: bool    # False when the delimiter was quoted (<<'EOF', <<"EOF")
    chomp: bool = False  # <<-EOF: leading tabs stripped


@dataclass(frozen=True)
class Instruction:
    keyword: str                  # upper case: "RUN"
    original: str                 # source text, continuations joined, as "Step N/M : ..." prints
    line: int                     # 1-based first line
    flags: dict[str, str] = field(default_factory=dict)  # --name=value, names without "--"

    def expand(self, expander: Expander) -> Self:
        """A copy with the fields the reference expands run through `expander`."""
        return self


@dataclass(frozen=True)
class From(Instruction):
    image: str = ""
    stage_name: str | None = None   # lower-cased, as the reference
    platform: str | None = None


@dataclass(frozen=True)
class Run(Instruction):
    command: list[str] = field(default_factory=list)  # shell form: one string
    shell_form: bool = True
    heredocs: list[Heredoc] = field(default_factory=list)


@dataclass(frozen=True)
class Cmd(Instruction):
    command: list[str] = field(default_factory=list)
    shell_form: bool = True


@dataclass(frozen=True)
class Entrypoint(Instruction):
    command: list[str] = field(default_factory=list)
    shell_form: bool = True


@dataclass(frozen=True)
class Env(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Arg(Instruction):
    args: list[tuple[str, str | None]] = field(default_factory=list)  # None: no default


@dataclass(frozen=True)
class Label(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Expose(Instruction):
    ports: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Volume(Instruction):
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class User(Instruction):
    user: str = ""


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str = ""


@dataclass(frozen=True)
class Copy(Instruction):
    sources: list[str] = field(default_factory=list)
    dest: str = ""
    heredocs: list[Heredoc] = field(default_factory=list)  # COPY <<EOF /dest

    # flags: "from", "chown", "chmod" (also "link", "parents", "exclude" accepted)


@dataclass(frozen=True)
class Add(Copy):
    pass  # flags: "chown", "chmod", "checksum", "keep-git-dir"


@dataclass(frozen=True)
class Onbuild(Instruction):
    expression: str = ""          # the trigger, e.g. "RUN echo hi"


@dataclass(frozen=True)
class Shell(Instruction):
    shell: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StopSignal(Instruction):
    signal: str = ""


@dataclass(frozen=True)
class Healthcheck(Instruction):
    test: list[str] = field(default_factory=list)  # ["NONE"], ["CMD", ...], ["CMD-SHELL", "..."]
    interval: int = 0             # nanoseconds; 0 = not given (inherit)
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Maintainer(Instruction):
    name: str = ""


@dataclass
class Stage:
    index: int
    base: From
    instructions: list[Instruction] = field(default_factory=list)

    @property
    def name(self) -> str | None:
        return self.base.stage_name


@dataclass
class Dockerfile:
    directives: dict[str, str] = field(default_factory=dict)  # "syntax", "escape", "check"
    escape: str = "\\"
    meta_args: list[Arg] = field(default_factory=list)  # ARGs before the first FROM
    stages: list[Stage] = field(default_factory=list)

    def step_count(self) -> int:
        """M in "Step N/M": every instruction of every stage, FROMs and meta ARGs included."""
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in self.stages)


replace = dataclasses.replace
