"""Which stages a build runs, and what each one waits for.

Pure. A stage depends on the stage its FROM names and on the stages its
`COPY --from` flags name (by name or index); names that are not stages are
images; RUN's `--mount=from=` counts as a `COPY --from`. `--target` cuts the
Dockerfile after the target stage, and only the stages the last one reaches
are built (as BuildKit does; the legacy builder ran every stage before the
target).
"""

from __future__ import annotations

from dataclasses import dataclass

from dockerd_py.dockerfile.errors import DockerfileError
from dockerd_py.dockerfile.instructions import Copy, Dockerfile, Instruction, Run, Stage
from dockerd_py.dockerfile.runflags import parse_mounts


@dataclass(frozen=True)
class Plan:
    stages: list[Stage]             # every stage up to the target, in file order
    needed: list[int]               # indexes of the stages to build, in file order
    deps: dict[int, set[int]]       # stage index -> stage indexes it waits for
    target: int                     # index of the stage whose image is the result


def stage_index(stages: list[Stage], name: str, before: int) -> int | None:
    """The stage `name` (a stage name, case-insensitive, or an index) refers to from
    stage `before`, or None when it names an image."""
    lowered = name.lower()
    for stage in stages[:before]:
        if stage.name is not None and stage.name == lowered:
            return stage.index
    if name.isascii() and name.isdigit():
        index = int(name)
        if index >= before:
            raise DockerfileError(f"invalid from flag value {name}: refers to current or "
                                  "future build stage")
        return index
    return None


def from_stage(stages: list[Stage], image: str, before: int) -> int | None:
    """The stage a FROM names, if any (FROM takes names, never indexes)."""
    lowered = image.lower()
    for stage in stages[:before]:
        if stage.name is not None and stage.name == lowered:
            return stage.index
    return None


def _sources(inst: Instruction) -> list[str]:
    """The stages or images an instruction reads: COPY --from, RUN --mount=from=."""
    if isinstance(inst, Copy):
        source = inst.flags.get("from")
        return [source] if source else []
    if isinstance(inst, Run) and inst.flags.get("mount"):
        try:
            return [m.from_ for m in parse_mounts(inst.flags["mount"]) if m.from_]
        except DockerfileError:
            return []  # the step reports it when it runs (with its variables expanded)
    return []


def make_plan(dockerfile: Dockerfile, target: str = "",
              from_images: dict[int, str] | None = None) -> Plan:
    """from_images: each stage's FROM after ARG expansion (defaults to the raw word)."""
    stages = dockerfile.stages
    if not stages:
        raise DockerfileError("no build stage in current context")
    last = len(stages) - 1
    if target:
        wanted = target.lower()
        found = [s.index for s in stages if s.name == wanted]
        if not found:
            raise DockerfileError(f"failed to reach build target {target} in Dockerfile")
        last = found[0]
    stages = stages[:last + 1]
    deps: dict[int, set[int]] = {}
    for stage in stages:
        image = (from_images or {}).get(stage.index, stage.base.image)
        wanted_deps: set[int] = set()
        base = from_stage(stages, image, stage.index)
        if base is not None:
            wanted_deps.add(base)
        for inst in stage.instructions:
            for source in _sources(inst):
                index = stage_index(stages, source, stage.index)
                if index is not None:
                    wanted_deps.add(index)
        deps[stage.index] = wanted_deps
    needed: set[int] = set()
    pending = [last]
    while pending:
        index = pending.pop()
        if index not in needed:
            needed.add(index)
            pending.extend(deps[index])
    return Plan(stages, sorted(needed), deps, last)
