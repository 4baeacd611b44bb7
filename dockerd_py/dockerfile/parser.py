"""Dockerfile text → `instructions` objects, as the reference's parser reads it.

Two passes, like moby's: `reader.read` turns the text into nodes (logical lines
split into keyword, flags and arguments); `instruction` checks one node and builds
its typed instruction. Nothing here expands variables: words keep their quotes and
`$` until the caller runs `Instruction.expand()` with the values in effect.

`parse` (a whole Dockerfile) and `parse_instruction` (one ONBUILD trigger) are the
builder's entry points. `engine/images/changes.py` reads change lines with
`reader.read(..., CHANGE)` and `instruction(node, CHANGE)` itself, because it
refuses instructions between the two passes.

Errors carry the reference's wording, which names the line for instruction errors
("dockerfile parse error line N: ...") but not for what its line reader rejects
("failed to parse Dockerfile: ...") nor for an instruction before the first FROM;
DockerfileError.line has the line in every case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from . import heredocs, runflags
from . import instructions as ins
from .dialect import BUILD, Dialect
from .errors import DockerfileError
from .golang import SPACE, go_quote, parse_duration, parse_int32
from .instructions import Heredoc
from .nodes import Node
from .reader import read

_STAGE_NAME = re.compile(r"[a-z][a-z0-9-_.]*")  # fullmatch: `$` passes a final "\n"
# Go's regexp `(?i)^\s*ONBUILD\s*`: its \s is [\t\n\f\r ] only
_ONBUILD_PREFIX = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)

# flags each instruction accepts: name → takes a value (False: boolean flag)
_FLAGS: dict[str, dict[str, bool]] = {
    "add": {"chown": True, "chmod": True, "checksum": True, "keep-git-dir": False, "link": False},
    "copy": {"chown": True, "chmod": True, "from": True, "link": False, "parents": False,
             "exclude": True},
    "from": {"platform": True},
    "healthcheck": {"interval": True, "timeout": True, "start-period": True,
                    "start-interval": True, "retries": True},
    # RUN --mount/--network/--security are BuildKit's (see runflags.py); one --mount per
    # mount, joined with "\n" as --exclude's values
    "run": {"mount": True, "network": True, "security": True},
}
_NO_FLAGS: dict[str, bool] = {}


def _parse_flags(node: Node, allowed: dict[str, bool], dialect: Dialect) -> dict[str, str]:
    """moby's BFlags.Parse: `--name=value`, booleans as `--name` or `--name=true|false`."""
    def shown(name: str) -> str:  # buildkit names the flag with its dashes
        return f"--{name}" if dialect.lowercase_flag_errors else name

    def error(message: str) -> ValueError:
        if dialect.lowercase_flag_errors:
            message = message[:1].lower() + message[1:]
        return ValueError(message)

    values: dict[str, str] = {}
    for arg in node.flags:
        if not arg.startswith("--"):
            raise error(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in allowed:
            raise error(f"Unknown flag: {shown(name)}")
        takes_value = allowed[name]
        if name in values and not (takes_value and name in ("exclude", "mount")):
            raise error(f"Duplicate flag specified: {shown(name)}")
        if takes_value:
            if not eq:
                raise error(f"Missing a value on flag: {shown(name)}")
            values[name] = value if name not in values else values[name] + "\n" + value
        else:
            if eq and not value:
                raise error(f"Missing a value on flag: {shown(name)}")
            lower = value.lower()
            if lower not in ("", "true", "false"):
                raise error(f"Expecting boolean value for flag {shown(name)}, not: {value}")
            values[name] = lower or "true"
    return values


_I = TypeVar("_I", bound=ins.Instruction)


def _make(cls: type[_I], node: Node, flags: dict[str, str] | None = None, **fields: Any) -> _I:
    """The instruction with the fields every one has: keyword, original text, line, flags."""
    return cls(keyword=node.keyword.upper(), original=node.original.strip(SPACE),
               line=node.line, flags=flags or {}, **fields)


def _command_line(node: Node) -> list[str]:
    """moby's handleJSONArgs: exec form as is, shell form as one string."""
    if not node.args:
        return []
    return list(node.args) if node.json else [" ".join(node.args)]


def _exactly_one(node: Node) -> str:
    if len(node.args) != 1:
        raise ValueError(f"{node.keyword.upper()} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: Node) -> None:
    if not node.args:
        raise ValueError(f"{node.keyword.upper()} requires at least one argument")


def _pairs(node: Node) -> list[tuple[str, str]]:
    keyword = node.keyword.upper()
    _at_least_one(node)
    if len(node.args) % 2:
        raise ValueError(f"Bad input to {keyword}, too many arguments")
    pairs = []
    for k, v in zip(node.args[::2], node.args[1::2], strict=True):
        if not k:
            raise ValueError(f"{keyword} names can not be blank")
        pairs.append((k, v))
    return pairs


def _from(node: Node, dialect: Dialect) -> ins.Instruction:
    args = node.args
    stage = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.fullmatch(stage):
            raise ValueError(f"invalid name for build stage: {go_quote(args[2])}, "
                             "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    flags = _parse_flags(node, _FLAGS["from"], dialect)
    return _make(ins.From, node, flags, image=args[0], stage_name=stage,
                 platform=flags.get("platform"))


def _run(node: Node, dialect: Dialect) -> ins.Instruction:
    flags = _parse_flags(node, _FLAGS["run"], dialect)
    try:  # checked now (fields with variables again when the step runs)
        for value in flags.get("mount", "").split("\n"):
            if value and "$" not in value:
                runflags.parse_mount(value)
        if "network" in flags:
            runflags.check_network(flags["network"])
        if "security" in flags:
            runflags.check_security(flags["security"])
    except ins.DockerfileError as e:
        raise ValueError(e.message) from None
    return _make(ins.Run, node, flags, command=_command_line(node), shell_form=not node.json,
                 heredocs=list(node.heredocs))


def _cmd(node: Node, dialect: Dialect) -> ins.Instruction:
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Cmd, node, command=_command_line(node), shell_form=not node.json)


def _entrypoint(node: Node, dialect: Dialect) -> ins.Instruction:
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Entrypoint, node, command=_command_line(node), shell_form=not node.json)


def _shell(node: Node, dialect: Dialect) -> ins.Instruction:
    _parse_flags(node, _NO_FLAGS, dialect)
    command = _command_line(node)
    if not command:
        raise ValueError("SHELL requires at least one argument")
    if not node.json:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    return _make(ins.Shell, node, shell=command)


def _env(node: Node, dialect: Dialect) -> ins.Instruction:
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Env, node, pairs=_pairs(node))


def _label(node: Node, dialect: Dialect) -> ins.Instruction:
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Label, node, pairs=_pairs(node))


def _arg(node: Node, dialect: Dialect) -> ins.Instruction:
    _at_least_one(node)
    pairs: list[tuple[str, str | None]] = []
    for word in node.args:
        if "=" in word:
            key, value = word.split("=", 1)
            if not key:
                raise ValueError("ARG names can not be blank")
            pairs.append((key, value))
        else:
            pairs.append((word, None))
    return _make(ins.Arg, node, args=pairs)


def _expose(node: Node, dialect: Dialect) -> ins.Instruction:
    _at_least_one(node)
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Expose, node, ports=sorted(node.args))


def _volume(node: Node, dialect: Dialect) -> ins.Instruction:
    _at_least_one(node)
    _parse_flags(node, _NO_FLAGS, dialect)
    paths = [p.strip(SPACE) for p in node.args]
    if any(not p for p in paths):
        raise ValueError("VOLUME specified can not be an empty string")
    return _make(ins.Volume, node, paths=paths)


def _user(node: Node, dialect: Dialect) -> ins.Instruction:
    user = _exactly_one(node)
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.User, node, user=user)


def _workdir(node: Node, dialect: Dialect) -> ins.Instruction:
    path = _exactly_one(node)
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Workdir, node, path=path)


def _stopsignal(node: Node, dialect: Dialect) -> ins.Instruction:
    return _make(ins.StopSignal, node, signal=_exactly_one(node))  # flags not even looked at


def _maintainer(node: Node, dialect: Dialect) -> ins.Instruction:
    name = _exactly_one(node)
    _parse_flags(node, _NO_FLAGS, dialect)
    return _make(ins.Maintainer, node, name=name)


def _copy(node: Node, dialect: Dialect) -> ins.Instruction:
    """COPY and ADD; `<<EOF` sources become inline files (Copy.heredocs)."""
    keyword = node.keyword.upper()
    if len(node.args) < 2:
        raise ValueError(f"{keyword} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined")
    flags = _parse_flags(node, _FLAGS[keyword.lower()], dialect)
    dest = node.args[-1]
    if heredocs.opener_or_none(dest) is not None:
        raise ValueError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in node.heredocs}
    sources: list[str] = []
    inline: list[Heredoc] = []
    for word in node.args[:-1]:
        opener = heredocs.opener_or_none(word)
        if opener is None:
            sources.append(word)
        else:
            body = bodies.get(opener.name)
            inline.append(Heredoc(opener.name, body.content if body else "", opener.expand,
                                  opener.chomp))
    cls = ins.Add if keyword == "ADD" else ins.Copy
    return _make(cls, node, flags, sources=sources, dest=dest, heredocs=inline)


def _healthcheck(node: Node, dialect: Dialect) -> ins.Instruction:
    _at_least_one(node)
    typ = node.args[0].upper()
    rest = node.args[1:]
    if typ == "NONE":  # flags are not even looked at
        if rest:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return _make(ins.Healthcheck, node, test=["NONE"])
    flags = _parse_flags(node, _FLAGS["healthcheck"], dialect)
    if typ != "CMD":
        raise ValueError(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    command = list(rest) if node.json else ([" ".join(rest)] if rest else [])
    if not command:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *command] if node.json else ["CMD-SHELL", *command]
    durations = {name: _interval(flags, name, dialect)
                 for name in ("interval", "timeout", "start-period", "start-interval")}
    retries = 0
    if flags.get("retries"):
        retries = parse_int32(flags["retries"])
        if dialect.zero_means_unset:
            if retries < 0:
                raise ValueError(f"--retries cannot be negative ({retries})")
        elif retries < 1:
            raise ValueError(f"--retries must be at least 1 (not {retries})")
    return _make(ins.Healthcheck, node, flags, test=test, interval=durations["interval"],
                 timeout=durations["timeout"], start_period=durations["start-period"],
                 start_interval=durations["start-interval"], retries=retries)


def _interval(flags: dict[str, str], name: str, dialect: Dialect) -> int:
    text = flags.get(name, "")
    if not text:
        return 0
    value = parse_duration(text, bounded=dialect.bounded_durations)
    if value < 1_000_000 and not (value == 0 and dialect.zero_means_unset):
        raise ValueError(f'Interval "{name}" cannot be less than 1ms')
    return value


def _onbuild(node: Node, dialect: Dialect) -> ins.Instruction:
    if node.sub is None:
        raise ValueError("ONBUILD requires at least one argument")
    _parse_flags(node, _NO_FLAGS, dialect)
    trigger = node.sub.keyword.upper()
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
    for doc in node.sub.heredocs:  # the trigger keeps its heredoc bodies
        expression += "\n" + doc.content + doc.name
    return _make(ins.Onbuild, node, expression=expression)


# keyword → builder of its instruction; the checks run in the reference's order
_INSTRUCTIONS: dict[str, Callable[[Node, Dialect], ins.Instruction]] = {
    "add": _copy, "arg": _arg, "cmd": _cmd, "copy": _copy, "entrypoint": _entrypoint,
    "env": _env, "expose": _expose, "from": _from, "healthcheck": _healthcheck,
    "label": _label, "maintainer": _maintainer, "onbuild": _onbuild, "run": _run,
    "shell": _shell, "stopsignal": _stopsignal, "user": _user, "volume": _volume,
    "workdir": _workdir,
}


def instruction(node: Node, dialect: Dialect = BUILD) -> ins.Instruction:
    """One node → its typed instruction; DockerfileError with the reference's bare
    message ("unknown instruction: FOO", "ENV requires at least one argument")."""
    build = _INSTRUCTIONS.get(node.keyword.lower())
    if build is None:
        raise DockerfileError(f"unknown instruction: {node.keyword.upper()}", node.line)
    try:
        return build(node, dialect)
    except ValueError as exc:
        raise DockerfileError(str(exc), node.line) from None


def _decode(source: str | bytes) -> str:
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    return source.removeprefix("\ufeff")


def parse(source: str | bytes, name: str = "Dockerfile") -> ins.Dockerfile:
    """A whole Dockerfile; DockerfileError with the reference's message when malformed.
    `name` is the Dockerfile's name as the client gave it (`dockerfile=`), which the
    reference puts in the line reader's errors: "failed to parse <name>: ..."."""
    try:
        reading = read(_decode(source))
    except DockerfileError as exc:
        raise DockerfileError(f"failed to parse {name}: {exc.message}", exc.line) from None
    dockerfile = ins.Dockerfile(directives=reading.directives, escape=reading.escape,
                                warnings=reading.warnings)
    for node in reading.nodes:
        try:
            inst = instruction(node)
        except DockerfileError as exc:
            raise DockerfileError(f"dockerfile parse error line {node.line}: {exc.message}",
                                  node.line) from None
        if not dockerfile.stages:
            if isinstance(inst, ins.Arg):
                dockerfile.meta_args.append(inst)
                continue
            if not isinstance(inst, ins.From):
                raise DockerfileError("no build stage in current context", node.line)
        if isinstance(inst, ins.From):
            dockerfile.stages.append(ins.Stage(index=len(dockerfile.stages), base=inst))
        else:
            dockerfile.stages[-1].instructions.append(inst)
    return dockerfile


def parse_instruction(text: str, escape: str = "\\") -> ins.Instruction:
    """One ONBUILD trigger (with its heredoc bodies, if any, on the following lines).

    As the reference dispatches triggers, errors are the bare messages ("unknown
    instruction: FOO", "Unknown flag: x"), and the escape token is the default one: a
    trigger comes from an image's config, not from the Dockerfile being built."""
    nodes = read(_decode(text), escape=escape).nodes
    if len(nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", 0)
    return instruction(nodes[0])
