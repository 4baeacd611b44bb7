"""Metadata instructions: how each one changes the runtime config, and its history text.

Pure. Each function takes the expanded instruction and the current runtime
config and returns (new config, the text after `#(nop)` in created_by), in the
reference's wording (moby's dispatchers.go; Go's %q and %v formatting where it
uses them). Where `docker commit --change` gives an instruction the same effect,
the config side is `engine/images/changes.py`'s function; CMD, ENTRYPOINT and
SHELL are the builder's own (an empty shell form is run as "", not dropped).
"""

from __future__ import annotations

import copy
from typing import Any

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.engine.containers.health import go_duration_ns
from dockerd_py.engine.images import changes
from dockerd_py.engine.runtime.signals import parse_signal
from dockerd_py.errors import InvalidParameter, InvalidValue

from .imageconfig import go_quote_list, shell_of

Config = dict[str, Any]


def _pairs_text(pairs: list[tuple[str, str]]) -> str:
    return "".join(f" {key}={value}" for key, value in pairs)


def env(config: Config, inst: ins.Env) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    changes.set_env(out, inst.pairs)
    return out, "ENV" + _pairs_text(inst.pairs)


def label(config: Config, pairs: list[tuple[str, str]]) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    changes.add_labels(out, pairs)
    return out, "LABEL" + _pairs_text(pairs)


def expose(config: Config, inst: ins.Expose) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    try:
        changes.expose(out, inst.ports)
    except InvalidValue as e:
        raise InvalidParameter(_capitalized(str(e))) from None
    return out, "EXPOSE " + " ".join(sorted(inst.ports))


def volume(config: Config, inst: ins.Volume) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    changes.add_volumes(out, inst.paths)
    return out, f"VOLUME [{' '.join(inst.paths)}]"


def user(config: Config, inst: ins.User) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    out["User"] = inst.user
    return out, f"USER {inst.user}"


def workdir(config: Config, path: str) -> Config:
    """The config with WORKDIR `path` (relative to the current one) as its WorkingDir."""
    out = copy.deepcopy(config)
    out["WorkingDir"] = changes.workdir_path(config.get("WorkingDir") or "", path)
    return out


def command(config: Config, words: list[str], shell_form: bool) -> list[str]:
    return shell_of(config) + [" ".join(words)] if shell_form else list(words)


def cmd(config: Config, inst: ins.Cmd) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    out["Cmd"] = command(config, inst.command, inst.shell_form)
    return out, f"CMD {go_quote_list(out['Cmd'])}"


def entrypoint(config: Config, inst: ins.Entrypoint, cmd_set: bool) -> tuple[Config, str]:
    """An ENTRYPOINT drops the base image's CMD unless this stage set one."""
    out = copy.deepcopy(config)
    out["Entrypoint"] = command(config, inst.command, inst.shell_form)
    if not cmd_set:
        out["Cmd"] = None
    return out, f"ENTRYPOINT {go_quote_list(out['Entrypoint'])}"


def healthcheck(config: Config, inst: ins.Healthcheck) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    health = changes.healthcheck(inst)
    out["Healthcheck"] = health
    retries = health.get("Retries", 0)
    text = (f"HEALTHCHECK &{{{go_quote_list(health['Test'])} "
            f"\"{go_duration_ns(health.get('Interval', 0))}\" "
            f"\"{go_duration_ns(health.get('Timeout', 0))}\" "
            f"\"{go_duration_ns(health.get('StartPeriod', 0))}\" "
            f"{_go_char(retries)}}}")
    return out, text


def _go_char(value: int) -> str:
    """Go's %q of an integer: a quoted character literal."""
    if value == 0:
        return "'\\x00'"
    if 32 <= value < 127 and chr(value) not in "'\\":
        return f"'{chr(value)}'"
    return f"'\\x{value:02x}'" if value < 256 else f"'\\u{value:04x}'"


def stopsignal(config: Config, inst: ins.StopSignal) -> tuple[Config, str]:
    try:
        parse_signal(inst.signal)
    except InvalidValue as e:
        raise InvalidParameter(_capitalized(str(e))) from None
    out = copy.deepcopy(config)
    out["StopSignal"] = inst.signal
    return out, f"STOPSIGNAL {inst.signal}"


def shell(config: Config, inst: ins.Shell) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    out["Shell"] = list(inst.shell)
    return out, f"SHELL [{' '.join(inst.shell)}]"


def onbuild(config: Config, inst: ins.Onbuild) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    changes.add_trigger(out, inst.expression)
    return out, f"ONBUILD {inst.expression}"


def _capitalized(message: str) -> str:
    """The builder's wording of the shared parsers' errors ("Invalid proto: xyz")."""
    return message[:1].upper() + message[1:]
