"""Build checks: BuildKit's Dockerfile linter rules, in its wording.

Pure: a parsed Dockerfile in, findings out. Each finding names its rule; the
builder reports it as a warning (`<Rule>: <message> (line N)`, the rule's
description and URL as its detail) and fails the build after the checks
when `# check=error=true` asks for it ("lint violation found for rules:
..."). `# check=skip=A,B` or `skip=all` turns rules off, as the
BUILDKIT_DOCKERFILE_CHECK build arg does. Implemented rules (BuildKit's
linter/ruleset.go): StageNameCasing, FromAsCasing, ConsistentInstructionCasing,
DuplicateStageName, ReservedStageName, JSONArgsRecommended,
MaintainerDeprecated, UndefinedArgInFrom, WorkdirRelativePath,
MultipleInstructionsDisallowed, LegacyKeyValueFormat, SecretsUsedInArgOrEnv,
NoEmptyContinuation. (UndefinedVar needs the base image's environment: the
builder runs it as it expands words.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import instructions as ins
from .errors import DockerfileError

_DOCS = "https://docs.docker.com/go/dockerfile/rule/"
RULES: dict[str, str] = {
    "StageNameCasing": "Stage names should be lowercase",
    "FromAsCasing": "The 'as' keyword should match the case of the 'from' keyword",
    "NoEmptyContinuation": "Empty continuation lines will become errors in a future release",
    "ConsistentInstructionCasing": "All commands within the Dockerfile should use the same "
                                   "casing (either upper or lower)",
    "DuplicateStageName": "Stage names should be unique",
    "ReservedStageName": "Reserved words should not be used as stage names",
    "JSONArgsRecommended": "JSON arguments recommended for ENTRYPOINT/CMD to prevent "
                           "unintended behavior related to OS signals",
    "MaintainerDeprecated": "The MAINTAINER instruction is deprecated, use a label instead "
                            "to define an image author",
    "UndefinedArgInFrom": "FROM command must use declared ARGs",
    "WorkdirRelativePath": "Relative workdir without an absolute workdir declared within the "
                           "build can have unexpected results if the base image changes",
    "UndefinedVar": "Variables should be defined before their use",
    "MultipleInstructionsDisallowed": "Multiple instructions of the same type should not be "
                                      "used in the same stage",
    "LegacyKeyValueFormat": "Legacy key/value format with whitespace separator should not "
                            "be used",
    "SecretsUsedInArgOrEnv": "Sensitive data should not be used in the ARG or ENV commands",
}
_PLATFORM_ARGS = frozenset({"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
                            "TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
                            "TARGETSTAGE"})
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
_SECRET = re.compile(r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|"
                     r"passwd|secret|token)(?:_|$)")
_NOT_SECRET = re.compile(r"(?i)(?:_|^)(?:public|file|version)(?:_|$)")


@dataclass(frozen=True)
class CheckConfig:
    skip: frozenset[str] = frozenset()
    skip_all: bool = False
    error: bool = False

    def merged(self, other: CheckConfig) -> CheckConfig:
        return CheckConfig(self.skip | other.skip, self.skip_all or other.skip_all,
                           self.error or other.error)


def parse_check(text: str) -> CheckConfig:
    """`skip=A,B|all;error=true;experimental=...` (linter.ParseLintOptions)."""
    text = text.strip()
    if not text:
        return CheckConfig()
    skip: set[str] = set()
    skip_all = error = False
    for part in text.split(";", 2):
        key, eq, value = part.partition("=")
        if not eq:
            raise DockerfileError(f'invalid check option "{part}"')
        key, value = key.strip(), value.strip()
        if key == "skip":
            if value == "all":
                skip_all = True
            else:
                skip.update(v.strip() for v in value.split(","))
        elif key == "error":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise DockerfileError(f'failed to parse check option "{part}": '
                                      f'strconv.ParseBool: parsing "{value}": invalid syntax')
            error = value.lower() in ("1", "t", "true")
        elif key != "experimental":
            raise DockerfileError(f'invalid check option "{key}"')
    return CheckConfig(frozenset(skip), skip_all, error)


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    line: int = 0

    @property
    def short(self) -> str:
        """BuildKit's LintFormatShort: "Rule: message (line N)"."""
        return f"{self.rule}: {self.message}" + (f" (line {self.line})" if self.line else "")

    @property
    def description(self) -> str:
        return RULES.get(self.rule, "")

    @property
    def url(self) -> str:
        words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+", self.rule)
        return _DOCS + "-".join(w.lower() for w in words) + "/"


def _keyword(inst: ins.Instruction) -> str:
    return inst.original.split(None, 1)[0] if inst.original else inst.keyword


def _consistent(word: str) -> bool:
    return word in (word.lower(), word.upper())


@dataclass
class _Run:
    out: list[Finding] = field(default_factory=list)

    def add(self, rule: str, message: str, line: int) -> None:
        self.out.append(Finding(rule, message, line))


def _from_checks(run: _Run, df: ins.Dockerfile) -> None:
    declared = {name for arg in df.meta_args for name, _ in arg.args} | _PLATFORM_ARGS
    seen: set[str] = set()
    for stage in df.stages:
        base = stage.base
        words = base.original.split()
        if len(words) >= 4 and words[-2].lower() == "as":
            keyword, as_word, name = words[0], words[-2], words[-1]
            if name != name.lower():
                run.add("StageNameCasing", f"Stage name '{name}' should be lowercase", base.line)
            if _consistent(keyword) and (as_word != (as_word.lower() if keyword.islower()
                                                    else as_word.upper())):
                run.add("FromAsCasing",
                        f"'{as_word}' and '{keyword}' keywords' casing do not match", base.line)
        if stage.name:
            if stage.name in ("context", "scratch"):
                run.add("ReservedStageName", "Stage name should not use the same name as "
                        f'reserved stage "{stage.name}"', base.line)
            if stage.name in seen:
                run.add("DuplicateStageName", f'Duplicate stage name "{stage.name}", stage '
                        "names should be unique", base.line)
            seen.add(stage.name)
        for text in (base.image, base.flags.get("platform", "")):
            for braced, bare in _VAR.findall(text):
                if (braced or bare) not in declared:
                    run.add("UndefinedArgInFrom",
                            f"FROM argument '{braced or bare}' is not declared", base.line)


def _casing(run: _Run, df: ins.Dockerfile) -> None:
    words = [(_keyword(s.base), s.base.line) for s in df.stages]
    words += [(_keyword(i), i.line) for s in df.stages for i in s.instructions]
    lower = sum(1 for w, _ in words if _consistent(w) and w == w.lower())
    upper = sum(1 for w, _ in words if _consistent(w) and w != w.lower())
    majority_lower = lower > upper
    for word, line in sorted(words, key=lambda x: x[1]):
        wrong = (majority_lower and word != word.lower()) or \
            (not majority_lower and word != word.upper())
        if wrong:
            casing = "lowercase" if majority_lower else "uppercase"
            run.add("ConsistentInstructionCasing", f"Command '{word}' should match the case "
                    f"of the command majority ({casing})", line)


def _stage_checks(run: _Run, stage: ins.Stage) -> None:
    shell_set = workdir_set = False
    used: dict[str, int] = {}
    for inst in stage.instructions:
        word = _keyword(inst)
        if isinstance(inst, ins.Maintainer):
            run.add("MaintainerDeprecated", "Maintainer instruction is deprecated in favor "
                    "of using label", inst.line)
        elif isinstance(inst, ins.Shell):
            shell_set = True
        elif isinstance(inst, (ins.Cmd, ins.Entrypoint)) and inst.shell_form and not shell_set:
            run.add("JSONArgsRecommended", f"JSON arguments recommended for {word} to "
                    "prevent unintended behavior related to OS signals", inst.line)
        elif isinstance(inst, ins.Workdir):
            if not workdir_set and not inst.path.startswith(("/", "$")):
                run.add("WorkdirRelativePath", f'Relative workdir "{inst.path}" can have '
                        "unexpected results if the base image changes", inst.line)
            workdir_set = True
        if isinstance(inst, (ins.Env, ins.Label)):
            rest = inst.original.split(None, 1)[1] if " " in inst.original.strip() else ""
            first = rest.split(None, 1)[0] if rest.split() else ""
            if first and "=" not in first:
                run.add("LegacyKeyValueFormat", f'"{word} key=value" should be used instead '
                        f'of legacy "{word} key value" format', inst.line)
        if isinstance(inst, (ins.Env, ins.Arg)):
            keys = [k for k, _ in inst.pairs] if isinstance(inst, ins.Env) else \
                [k for k, _ in inst.args]
            for key in keys:
                if _SECRET.search(key) and not _NOT_SECRET.search(key):
                    kind = "ENV" if isinstance(inst, ins.Env) else "ARG"
                    run.add("SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for "
                            f'sensitive data ({kind} "{key}")', inst.line)
        if isinstance(inst, (ins.Cmd, ins.Entrypoint, ins.Healthcheck)):
            if inst.keyword in used:
                run.add("MultipleInstructionsDisallowed", f"Multiple {inst.keyword} "
                        "instructions should not be used in the same stage because only the "
                        "last one will be used", used[inst.keyword])
            used[inst.keyword] = inst.line


def run_checks(df: ins.Dockerfile) -> list[Finding]:
    """Every finding of the implemented rules, skipped ones included (the caller filters
    with the config)."""
    run = _Run()
    found_in = "[WARNING]: Empty continuation line found in:\n    "
    lines = {i.original: i.line for s in df.stages for i in [s.base, *s.instructions]}
    for text in df.warnings:  # the parser's empty continuation lines (and their trailer)
        if text.startswith(found_in):
            run.add("NoEmptyContinuation", "Empty continuation line",
                    lines.get(text[len(found_in):], 0))
    _from_checks(run, df)
    for arg in df.meta_args:
        for key, _ in arg.args:
            if _SECRET.search(key) and not _NOT_SECRET.search(key):
                run.add("SecretsUsedInArgOrEnv", "Do not use ARG or ENV instructions for "
                        f'sensitive data (ARG "{key}")', arg.line)
    _casing(run, df)
    for stage in df.stages:
        _stage_checks(run, stage)
    return run.out


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def undefined_var(name: str, known: list[str], line: int) -> Finding:
    """UndefinedVar, with BuildKit's suggestion (util/suggest: the closest known name
    within an edit distance of 2)."""
    best, distance = "", 3
    for option in known:
        d = _distance(name, option)
        if d < distance:
            best, distance = option, d
    message = f"Usage of undefined variable '${name}'"
    if best:
        message += f" (did you mean ${best}?)"
    return Finding("UndefinedVar", message, line)


def enabled(findings: list[Finding], config: CheckConfig) -> list[Finding]:
    if config.skip_all:
        return []
    return [f for f in findings if f.rule not in config.skip]


def violation(findings: list[Finding]) -> str:
    """The error of `# check=error=true` for these findings."""
    return "lint violation found for rules: " + ", ".join(sorted({f.rule for f in findings}))
