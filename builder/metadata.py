"""Metadata instructions: how each one changes the runtime config, and its history text.

Pure. Each function takes the expanded instruction and the current runtime
config and returns (new config, the text after `#(nop)` in created_by), in the
reference's wording (moby's dispatchers.go; Go's %q and %v formatting where it
uses them).
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.engine.containers.health import go_duration_ns
from dockerd_py.engine.images.changes import InvalidChange, port_keys
from dockerd_py.engine.runtime.signals import parse_signal
from dockerd_py.errors import InvalidParameter

from .imageconfig import go_quote_list, shell_of

Config = dict[str, Any]


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    out = list(env)
    for i, entry in enumerate(out):
        if entry.split("=", 1)[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def env(config: Config, inst: ins.Env) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    values = list(out.get("Env") or [])
    text = "ENV"
    for key, value in inst.pairs:
        values = _set_env(values, key, value)
        text += f" {key}={value}"
    out["Env"] = values
    return out, text


def label(config: Config, pairs: list[tuple[str, str]]) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    labels = dict(out.get("Labels") or {})
    text = "LABEL"
    for key, value in pairs:
        labels[key] = value
        text += f" {key}={value}"
    out["Labels"] = labels
    return out, text


def expose(config: Config, inst: ins.Expose) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    ports = dict(out.get("ExposedPorts") or {})
    try:
        for spec in inst.ports:
            for key in port_keys(spec):
                ports[key] = {}
    except InvalidChange as e:
        raise InvalidParameter(_capitalized(str(e))) from None
    out["ExposedPorts"] = ports
    return out, "EXPOSE " + " ".join(sorted(inst.ports))


def volume(config: Config, inst: ins.Volume) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    volumes = dict(out.get("Volumes") or {})
    for path in inst.paths:
        volumes[path] = {}
    out["Volumes"] = volumes
    return out, f"VOLUME [{' '.join(inst.paths)}]"


def user(config: Config, inst: ins.User) -> tuple[Config, str]:
    out = copy.deepcopy(config)
    out["User"] = inst.user
    return out, f"USER {inst.user}"


def workdir_path(config: Config, path: str) -> str:
    """WORKDIR's path: relative to the current one, cleaned, absolute."""
    if not path.startswith("/"):
        path = posixpath.join(config.get("WorkingDir") or "/", path)
    return posixpath.normpath(path).replace("//", "/")


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
    if inst.test and inst.test[0].upper() == "NONE":
        health: dict[str, Any] = {"Test": ["NONE"]}
    else:
        health = {"Test": list(inst.test)}
        for key, value in (("Interval", inst.interval), ("Timeout", inst.timeout),
                           ("StartPeriod", inst.start_period),
                           ("StartInterval", inst.start_interval), ("Retries", inst.retries)):
            if value:
                health[key] = value
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
    except InvalidChange as e:
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
    out["OnBuild"] = list(out.get("OnBuild") or []) + [inst.expression]
    return out, f"ONBUILD {inst.expression}"


def _capitalized(message: str) -> str:
    """The builder's wording of the shared parsers' errors ("Invalid proto: xyz")."""
    return message[:1].upper() + message[1:]
