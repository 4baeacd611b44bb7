"""The parsed Dockerfile: typed instruction records, what `parser` hands to its callers.

This module is the contract between `parser` (text → these objects) and those who
act on them: the builder's dispatcher (these objects → image) and
`engine/images/changes.py` (change lines → an image config). Words are kept
exactly as written, before variable expansion: expansion depends on the ARG and
ENV values in effect when the instruction runs, so the caller calls
`expand(expander)` on each instruction with a function that expands one word
(`lexer`), and gets back a copy with every field the reference expands replaced.
RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK, MAINTAINER and ONBUILD are never
expanded by the builder.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Self

from .errors import DockerfileError as DockerfileError  # raised by Dockerfile
from .lexer import expand_heredoc

Expander = Callable[[str], str]


@dataclass(frozen=True)
class Heredoc:
    name: str       # the delimiter word (EOF); for COPY/ADD <<EOF the source file's name
    content: str    # the body, newline-terminated as written
    expand: bool    # False when the delimiter was quoted (<<'EOF', <<"EOF")
    chomp: bool = False  # <<-EOF: leading tabs stripped

    def body(self) -> str:
        """The content with `<<-` leading tabs removed (as the reference writes it out)."""
        if not self.chomp:
            return self.content
        return re.sub(r"(?m)^\t+", "", self.content)

    def rendered(self, env: Mapping[str, str]) -> str:
        """COPY/ADD inline file content: body() with variables expanded unless the delimiter
        was quoted; quotes in the text stay (the reference's ExpandRaw)."""
        return expand_heredoc(self.body(), env) if self.expand else self.body()


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

    def expand(self, expander: Expander) -> Self:
        """The image (and --platform) with the meta ARGs: pass an expander over those only."""
        flags = _expand_flags(self.flags, ("platform",), expander)
        platform = expander(self.platform) if self.platform is not None else None
        return replace(self, image=expander(self.image), platform=platform, flags=flags)


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

    def expand(self, expander: Expander) -> Self:
        return replace(self, pairs=[(expander(k), expander(v)) for k, v in self.pairs])


@dataclass(frozen=True)
class Arg(Instruction):
    args: list[tuple[str, str | None]] = field(default_factory=list)  # None: no default

    def expand(self, expander: Expander) -> Self:
        return replace(self, args=[(expander(k), expander(v) if v is not None else None)
                                   for k, v in self.args])


@dataclass(frozen=True)
class Label(Instruction):
    pairs: list[tuple[str, str]] = field(default_factory=list)
    expandable: bool = True       # False for `docker build --label` (never expanded)

    def expand(self, expander: Expander) -> Self:
        if not self.expandable:
            return self
        return replace(self, pairs=[(expander(k), expander(v)) for k, v in self.pairs])

    @classmethod
    def from_option(cls, key: str, value: str) -> Label:
        """The step the reference appends to the last stage for each `--label k=v`, in
        sorted key order; printed unquoted ("LABEL k=v w")."""
        return cls(keyword="LABEL", original=f"LABEL {key}={value}", line=0,
                   pairs=[(key, value)], expandable=False)


@dataclass(frozen=True)
class Expose(Instruction):
    ports: list[str] = field(default_factory=list)

    def expand(self, expander: Expander) -> Self:
        """The reference splits each expanded port on whitespace (EXPOSE $PORTS with
        PORTS="80 443" gives two ports); a quoted "80 443" stays one invalid port there and
        splits here, the only difference."""
        return replace(self, ports=[p for port in self.ports for p in expander(port).split()])


@dataclass(frozen=True)
class Volume(Instruction):
    paths: list[str] = field(default_factory=list)

    def expand(self, expander: Expander) -> Self:
        return replace(self, paths=[expander(p) for p in self.paths])


@dataclass(frozen=True)
class User(Instruction):
    user: str = ""

    def expand(self, expander: Expander) -> Self:
        return replace(self, user=expander(self.user))


@dataclass(frozen=True)
class Workdir(Instruction):
    path: str = ""

    def expand(self, expander: Expander) -> Self:
        return replace(self, path=expander(self.path))


@dataclass(frozen=True)
class Copy(Instruction):
    sources: list[str] = field(default_factory=list)
    dest: str = ""
    heredocs: list[Heredoc] = field(default_factory=list)  # COPY <<EOF /dest

    # flags: "from", "chown", "chmod" (also "link", "parents", "exclude" accepted; repeated
    # --exclude values are joined with "\n")
    # sources excludes the <<EOF words: each heredoc is an inline file named Heredoc.name,
    # its content from Heredoc.rendered(env)

    def expand(self, expander: Expander) -> Self:
        """Sources, dest, --chown and --chmod (ADD: also --checksum); never --from."""
        names = ("chown", "chmod", "checksum") if self.keyword == "ADD" else ("chown", "chmod")
        return replace(self, sources=[expander(s) for s in self.sources],
                       dest=expander(self.dest), flags=_expand_flags(self.flags, names, expander))


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

    def expand(self, expander: Expander) -> Self:
        return replace(self, signal=expander(self.signal))


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
    # what the reference prints to the build output (in red) before step 1, e.g. about empty
    # continuation lines; each entry is one or more lines without the final newline
    warnings: list[str] = field(default_factory=list)

    def target_index(self, target: str | None) -> int:
        """The index of the --target stage (case-insensitive), the last stage without one."""
        if not target:
            return len(self.stages) - 1
        for stage in self.stages:
            if stage.name is not None and stage.name == target.lower():
                return stage.index
        raise DockerfileError(f"failed to reach build target {target} in Dockerfile")

    def step_count(self, target: str | None = None, labels: int = 0) -> int:
        """M in "Step N/M", as the legacy builder counts: meta ARGs, then every FROM and
        instruction of the stages up to and including the target (all stages before it,
        needed or not), plus one LABEL step per `--label` option."""
        stages = self.stages[: self.target_index(target) + 1]
        return len(self.meta_args) + sum(1 + len(s.instructions) for s in stages) + labels


def _expand_flags(flags: dict[str, str], names: tuple[str, ...],
                  expander: Expander) -> dict[str, str]:
    return {k: expander(v) if k in names else v for k, v in flags.items()}


replace = dataclasses.replace
