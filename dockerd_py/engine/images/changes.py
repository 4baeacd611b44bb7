"""``docker commit --change`` / ``docker import --change``: change lines applied to a config.

Mirrors moby's ``BuildFromConfig`` (daemon/builder/dockerfile/builder.go) step by step, so
errors come out in the same order and wording:

1. read: the changes are joined with "\\n" and read by the Dockerfile language package in
   its ``CHANGE`` dialect (``dockerd_py.dockerfile.dialect``: buildkit's parser and checks,
   no heredocs); a malformed line fails here whatever its instruction;
2. check: each instruction must be in ``COMMIT_COMMANDS`` ("RUN is not a valid change
   command"), then its arguments are checked (``parser.instruction``);
3. apply, in order, on a copy of the config. ENV, LABEL, WORKDIR, USER, VOLUME,
   STOPSIGNAL and EXPOSE expand ``$VAR`` from the config's Env as it is at that step, with
   the CHANGE dialect's lexer (buildkit's pattern operators ``${VAR#p}``, ``${VAR%p}``,
   ``${VAR/p/r}`` are refused as "unsupported modifier").

``config`` is the "config" object of an image config, with Docker's JSON keys. Every
error is InvalidChange (HTTP 400) with moby's message.

The functions that give one instruction its effect on a config (``set_env``,
``add_labels``, ``expose``, ``add_volumes``, ``workdir_path``, ``healthcheck``,
``add_trigger``) are the builder's too: ``builder/metadata.py`` adds only its history text.
"""

from __future__ import annotations

import copy
import ipaddress
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.dialect import CHANGE
from dockerd_py.dockerfile.errors import DockerfileError
from dockerd_py.dockerfile.golang import parse_duration
from dockerd_py.dockerfile.lexer import Lexer
from dockerd_py.dockerfile.parser import instruction
from dockerd_py.dockerfile.reader import read
from dockerd_py.errors import InvalidValue

from ..runtime.signals import parse_signal

COMMIT_COMMANDS = frozenset({"cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                             "onbuild", "stopsignal", "user", "volume", "workdir"})
DEFAULT_SHELL = ("/bin/sh", "-c")

InvalidChange = InvalidValue
"""A change moby would reject (HTTP 400), whichever notation in it is wrong."""


def apply_changes(config: dict[str, Any], changes: Sequence[str], *,
                  shell: Sequence[str] = DEFAULT_SHELL) -> dict[str, Any]:
    """Return a copy of ``config`` with ``changes`` applied; InvalidChange as moby words it.

    ``shell`` prefixes shell-form CMD/ENTRYPOINT unless the config has its own ``Shell``.
    """
    result = copy.deepcopy(config)
    if not changes:
        return result
    try:
        reading = read("\n".join(changes), CHANGE)
        steps = []
        for node in reading.nodes:
            if node.keyword.lower() not in COMMIT_COMMANDS:
                raise InvalidChange(f"{node.keyword} is not a valid change command")
            steps.append(instruction(node, CHANGE))
        state = _State(result, list(result.get("Shell") or shell), reading.escape)
        for step in steps:
            _APPLY[type(step)](state, step)
    except DockerfileError as e:
        raise InvalidChange(e.message) from None
    return result


@dataclass
class _State:
    config: dict[str, Any]
    shell: list[str]
    escape: str
    cmd_set: bool = False  # a CMD earlier in the batch survives a later ENTRYPOINT

    def _lexer(self) -> tuple[Lexer, dict[str, str]]:
        env = {k: v for k, _, v in (e.partition("=") for e in self.config.get("Env") or [])}
        return Lexer(self.escape, pattern_substitutions=CHANGE.pattern_substitutions), env

    def expander(self) -> Callable[[str], str]:
        """ProcessWord with the Env the config has now."""
        lexer, env = self._lexer()
        return lambda word: lexer.word(word, env)

    def words(self, text: str) -> list[str]:
        """ProcessWords with the Env the config has now."""
        lexer, env = self._lexer()
        return lexer.words(text, env)


# -- one instruction's effect on a config (shared with the builder) ----------------------------

def set_env(config: dict[str, Any], pairs: Iterable[tuple[str, str]]) -> None:
    """ENV: a variable already set is replaced where it stands, a new one is appended."""
    env = list(config.get("Env") or [])
    for key, value in pairs:
        for i, entry in enumerate(env):
            if entry.partition("=")[0] == key:
                env[i] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
    config["Env"] = env


def add_labels(config: dict[str, Any], pairs: Iterable[tuple[str, str]]) -> None:
    config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}


def expose(config: dict[str, Any], specs: Iterable[str]) -> None:
    """EXPOSE: every port of every spec; InvalidChange for a bad spec (see port_keys)."""
    ports = dict(config.get("ExposedPorts") or {})
    for spec in specs:
        for key in port_keys(spec):
            ports.setdefault(key, {})
    config["ExposedPorts"] = ports


def add_volumes(config: dict[str, Any], paths: Iterable[str]) -> None:
    config["Volumes"] = {**(config.get("Volumes") or {}), **{path: {} for path in paths}}


def workdir_path(current: str, path: str) -> str:
    """WORKDIR's directory: ``path`` relative to the ``current`` one, cleaned, absolute
    (Go's filepath.Join("/", current, path))."""
    if not path.startswith("/"):
        path = f"/{current}/{path}"
    return "/" + posixpath.normpath(path).lstrip("/")  # normpath keeps a leading "//"


def healthcheck(inst: ins.Healthcheck) -> dict[str, Any]:
    """HEALTHCHECK: the config's Healthcheck; a zero duration or retry count is left out
    (inherited)."""
    if inst.test == ["NONE"]:
        return {"Test": ["NONE"]}
    health: dict[str, Any] = {"Test": list(inst.test)}
    for key, value in (("Interval", inst.interval), ("Timeout", inst.timeout),
                       ("StartPeriod", inst.start_period),
                       ("StartInterval", inst.start_interval), ("Retries", inst.retries)):
        if value:
            health[key] = value
    return health


def add_trigger(config: dict[str, Any], expression: str) -> None:
    """ONBUILD: one more trigger."""
    config["OnBuild"] = [*(config.get("OnBuild") or []), expression]


# -- the steps of a --change batch -------------------------------------------------------------

def _env(state: _State, inst: ins.Env) -> None:
    set_env(state.config, inst.expand(state.expander()).pairs)


def _label(state: _State, inst: ins.Label) -> None:
    add_labels(state.config, inst.expand(state.expander()).pairs)


def _onbuild(state: _State, inst: ins.Onbuild) -> None:
    add_trigger(state.config, inst.expression)


def _workdir(state: _State, inst: ins.Workdir) -> None:
    path = state.expander()(inst.path)
    if not path:
        raise InvalidChange("cannot normalize nothing")
    state.config["WorkingDir"] = workdir_path(state.config.get("WorkingDir") or "", path)


def _set_command(state: _State, key: str, shell_form: bool, cmdline: list[str] | None) -> None:
    state.config[key] = [*state.shell, *cmdline] if shell_form and cmdline is not None \
        else cmdline
    if "ArgsEscaped" in state.config:
        state.config["ArgsEscaped"] = False  # only Windows images set it


def _cmd(state: _State, inst: ins.Cmd) -> None:
    _set_command(state, "Cmd", inst.shell_form, inst.command)
    state.cmd_set = state.cmd_set or bool(inst.command)


def _entrypoint(state: _State, inst: ins.Entrypoint) -> None:
    _set_command(state, "Entrypoint", inst.shell_form, inst.command or None)
    if not state.cmd_set:
        state.config["Cmd"] = None  # as in a Dockerfile: ENTRYPOINT resets the base CMD


def _healthcheck(state: _State, inst: ins.Healthcheck) -> None:
    state.config["Healthcheck"] = healthcheck(inst)


def _expose(state: _State, inst: ins.Expose) -> None:
    expose(state.config, [word for spec in inst.ports for word in state.words(spec)])


def _user(state: _State, inst: ins.User) -> None:
    state.config["User"] = state.expander()(inst.user)


def _volume(state: _State, inst: ins.Volume) -> None:
    paths = inst.expand(state.expander()).paths
    if "" in paths:
        raise InvalidChange("VOLUME specified can not be an empty string")
    add_volumes(state.config, paths)


def _stopsignal(state: _State, inst: ins.StopSignal) -> None:
    signal = state.expander()(inst.signal)
    parse_signal(signal)
    state.config["StopSignal"] = signal


_APPLY: dict[type, Callable[[_State, Any], None]] = {
    ins.Cmd: _cmd, ins.Entrypoint: _entrypoint, ins.Env: _env, ins.Expose: _expose,
    ins.Healthcheck: _healthcheck, ins.Label: _label, ins.Onbuild: _onbuild,
    ins.StopSignal: _stopsignal, ins.User: _user, ins.Volume: _volume, ins.Workdir: _workdir,
}


# -- notations of change lines ---------------------------------------------------------------

def port_keys(spec: str) -> list[str]:
    """EXPOSE's parsePortSpec: ``[[ip:]host:]port[-end][/proto]`` -> ["80/tcp", ...]."""
    parts = spec.split(":")
    ip, host, port = ":".join(parts[:-2]), parts[-2] if len(parts) > 1 else "", parts[-1]
    port, _, proto = port.partition("/")
    if not port:
        raise InvalidChange(f"no port specified: {spec}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidChange(f"invalid proto: {proto}")
    try:
        if ip:
            ipaddress.ip_address(ip[1:-1] if ip[0] == "[" and ip[-1] == "]" else ip)
    except ValueError:
        raise InvalidChange(f"invalid IP address: {ip}") from None
    start, end = _port_range(port, "containerPort")
    if host:
        host_start, host_end = _port_range(host, "hostPort")
        if end - start != host_end - host_start and end != start:
            raise InvalidChange("invalid ranges specified for container and host Ports: "
                                f"{port} and {host}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _port_range(text: str, what: str) -> tuple[int, int]:
    """network.ParsePortRange: "80", "80-90" (proto ignored); bad numbers read as 65536."""
    first, dash, last = text.partition("/")[0].partition("-")
    numbers = [int(x) if re.fullmatch(r"[0-9]+", x) else 1 << 16 for x in (first, last)]
    start, end = numbers[0], numbers[1] if dash and first != last else numbers[0]
    if end > 0xFFFF or end < start:
        raise InvalidChange(f"invalid {what}: {text}")
    return start, end


def go_duration(text: str) -> int:
    """A Go duration ("1m30s", "1.5h", "300ms") in nanoseconds, as a change line's
    HEALTHCHECK flags read it (Dialect.bounded_durations); InvalidChange when malformed."""
    try:
        return parse_duration(text, bounded=CHANGE.bounded_durations)
    except ValueError as e:
        raise InvalidChange(str(e)) from None
