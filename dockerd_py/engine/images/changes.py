"""``docker commit --change`` / ``docker import --change``: Dockerfile lines applied to a config.

Mirrors moby's ``BuildFromConfig`` (daemon/builder/dockerfile/builder.go) step by step, so
errors come out in the same order and wording:

1. parse: the changes are joined with "\\n" and cut into instructions like buildkit's
   parser (``#`` comments, line continuations, the ``escape`` directive, JSON vs shell
   form, ``--flags``); a malformed line fails here whatever its instruction;
2. check: each instruction must be in ``COMMIT_COMMANDS`` ("RUN is not a valid change
   command"), then its arguments are validated;
3. dispatch, in order, on a copy of the config. ENV, LABEL, WORKDIR, USER, VOLUME,
   STOPSIGNAL and EXPOSE expand ``$VAR`` from the config's Env as it is at that step.

``config`` is the "config" object of an image config, with Docker's JSON keys.
Not supported: heredocs (no commit command takes one) and buildkit's pattern operators
``${VAR#p}``, ``${VAR%p}``, ``${VAR/p/r}`` (refused as "unsupported modifier").
Checked against dockerd with ``docker import -c`` on randomly generated changes.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dockerd_py.errors import InvalidValue

from ..runtime.signals import parse_signal

COMMIT_COMMANDS = frozenset({"cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                             "onbuild", "stopsignal", "user", "volume", "workdir"})
DEFAULT_SHELL = ("/bin/sh", "-c")


InvalidChange = InvalidValue
"""A change moby would reject (HTTP 400), whichever notation in it is wrong."""


@dataclass
class _Node:
    """One instruction, like buildkit's parser.Node with its arguments flattened."""

    cmd: str
    flags: list[str]
    args: list[str]
    is_json: bool
    original: str


@dataclass
class _State:
    config: dict[str, Any]
    shell: list[str]
    escape: str
    cmd_set: bool = False  # a CMD earlier in the batch survives a later ENTRYPOINT

    def lexer(self, text: str) -> _Lexer:
        env = {k: v for k, _, v in (e.partition("=") for e in self.config.get("Env") or [])}
        return _Lexer(text, env, self.escape)


def apply_changes(config: dict[str, Any], changes: Sequence[str], *,
                  shell: Sequence[str] = DEFAULT_SHELL) -> dict[str, Any]:
    """Return a copy of ``config`` with ``changes`` applied; InvalidChange as moby words it.

    ``shell`` prefixes shell-form CMD/ENTRYPOINT unless the config has its own ``Shell``.
    """
    result = copy.deepcopy(config)
    if not changes:
        return result
    escape, nodes = _parse("\n".join(changes))
    steps = []
    for node in nodes:
        if node.cmd.lower() not in COMMIT_COMMANDS:
            raise InvalidChange(f"{node.cmd} is not a valid change command")
        steps.append(_INSTRUCTIONS[node.cmd.lower()](node))
    state = _State(result, list(result.get("Shell") or shell), escape)
    for step in steps:
        step(state)
    return result


# -- 1. parse (buildkit frontend/dockerfile/parser) ------------------------------------------

_WS = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")


def _parse(text: str) -> tuple[str, list[_Node]]:
    escape, seen, in_directives = "\\", set(), True
    lines, nodes, i = text.split("\n"), [], 0
    while i < len(lines):
        line = lines[i].rstrip("\r\n").lstrip()
        i += 1
        m = _DIRECTIVE.fullmatch(line) if in_directives else None
        if m is None or m.group(1).lower() not in ("escape", "syntax", "check"):
            in_directives = False  # directives are only read before anything else
        elif (key := m.group(1).lower()) in seen:
            raise InvalidChange(f"only one {key} parser directive can be used")
        else:
            seen.add(key)
            if key == "escape" and m.group(2) not in ("\\", "`"):
                raise InvalidChange(f"invalid escape token '{m.group(2)}' does not match ` or \\")
            escape = m.group(2) if key == "escape" else escape
        line, done = _trim_continuation("" if line.startswith("#") else line, escape)
        if done and not line:
            continue
        parts = [line]
        while not done and i < len(lines):
            line = lines[i].rstrip("\r\n")
            i += 1
            if line.lstrip().startswith("#") or not line.strip():
                continue  # comments and blank lines inside a continuation are dropped
            line, done = _trim_continuation(line, escape)
            parts.append(line)
        nodes.append(_node("".join(parts), escape))
    if not nodes:
        raise InvalidChange("file with no instructions")
    return escape, nodes


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    e = re.escape(escape)
    trimmed, n = re.subn(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z", r"\1", line)
    return trimmed, n == 0


def _node(line: str, escape: str) -> _Node:
    """newNodeFromLine: instruction word, builder flags, then the per-instruction parser."""
    cmd, rest = (_WS.split(line.strip(), maxsplit=1) + [""])[:2]
    rest, flags = _extract_flags(rest, escape) if rest else ("", [])
    rest, kind = rest.strip(), cmd.lower()
    args: list[str] = []
    is_json = False
    if kind in ("cmd", "entrypoint", "run", "shell"):
        args, is_json = _maybe_json(rest)
    elif kind in ("volume", "add", "copy"):
        parsed = _json_array(rest)
        args, is_json = (_split_ws(rest), False) if parsed is None else (parsed, True)
    elif kind in ("env", "label"):
        args = _name_values(rest, kind.upper(), escape)
    elif kind in ("expose", "from"):
        args = _split_ws(rest)
    elif kind in ("maintainer", "stopsignal", "user", "workdir"):
        args = [rest] if rest else []
    elif kind == "healthcheck" and (m := re.match(r"(\S+)\s*", rest)):
        sub, is_json = _maybe_json(rest[m.end():])
        args = [m.group(1), *sub]
    elif kind == "onbuild" and rest:
        child = _node(rest, escape)
        args = [child.cmd, *child.args]
    return _Node(cmd, flags, args, is_json, line)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """extractBuilderFlags: leading ``--name=value`` words (quotes, escapes) and the rest."""
    flags: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i].isspace():
            i += 1
        if not line.startswith("--", i):
            return line[i:], flags
        word, quote, blank_ok = "", "", False
        while i < n and (quote or not line[i].isspace()):
            ch, i = line[i], i + 1
            if ch in "'\"" and ch == (quote or ch):
                quote, blank_ok = ("" if quote else ch), True
                continue
            if ch == escape:
                if i == n:
                    continue
                ch, i = line[i], i + 1
            word += ch
        if i < n and word == "--":
            return line[i:], flags
        if word != "--" and (blank_ok or word):
            flags.append(word)


def _parse_words(rest: str, escape: str) -> list[str]:
    """parseWords: split on blanks outside quotes; quotes and escapes stay in the words."""
    words, word, quote, blank_ok, in_word, i = [], "", "", False, False, 0
    while i < len(rest):
        ch, i = rest[i], i + 1
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == len(rest):
                    continue
                word, ch, i = word + ch, rest[i], i + 1
        elif ch.isspace():
            if in_word and (blank_ok or word):
                words.append(word)
            word, blank_ok, in_word = "", False, False
            continue
        elif ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i == len(rest):
                continue
            word, ch, i = word + ch, rest[i], i + 1
        word, in_word = word + ch, True
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _name_values(rest: str, name: str, escape: str) -> list[str]:
    """parseNameVal: ``k=v ...``, or legacy ``k v`` whose value is the raw rest of the line."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise InvalidChange(f"{name} must have two arguments")
        return [parts[0], parts[1], ""]
    args = []
    for word in words:
        if "=" not in word:
            raise InvalidChange(f"Syntax error - can't find = in {_go_quote(word)}. "
                                "Must be of the form: name=value")
        key, _, value = word.partition("=")
        args += [key, value, "="]
    return args


def _json_array(rest: str) -> list[str] | None:
    """parseJSON: a JSON array of strings, None when not JSON at all."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None
    if not all(isinstance(v, str) for v in value):
        raise InvalidChange(
            "when using JSON array syntax, arrays must be comprised of strings only")
    return list(value)


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    parsed = _json_array(rest)
    return (parsed, True) if parsed is not None else ([rest] if rest else [], False)


def _split_ws(rest: str) -> list[str]:
    return _WS.split(rest) if rest else []


def _not_json(name: str) -> None:
    raise ValueError(name)  # Go's JSON has no NaN/Infinity


def _go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


# -- 2. check arguments (buildkit instructions/parse.go), 3. dispatch (moby dispatchers.go) --

_Step = Callable[[_State], None]
_HEALTH_DURATIONS = {"interval": "Interval", "timeout": "Timeout",
                     "start-period": "StartPeriod", "start-interval": "StartInterval"}


def _flags(node: _Node, known: Sequence[str] = ()) -> dict[str, str]:
    """BFlags.Parse for string-valued flags."""
    values: dict[str, str] = {}
    for arg in node.flags:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise InvalidChange(f"arg should start with -- : {arg}")
        flag, has_value, value = arg.partition("=")
        if flag[2:] not in known:
            raise InvalidChange(f"unknown flag: {flag}")
        if flag[2:] in values:
            raise InvalidChange(f"duplicate flag specified: {flag}")
        if not has_value:
            raise InvalidChange(f"missing a value on flag: {flag}")
        values[flag[2:]] = value
    return values


def _at_least_one(node: _Node) -> list[str]:
    if not node.args:
        raise InvalidChange(f"{node.cmd.upper()} requires at least one argument")
    return node.args


def _exactly_one(node: _Node) -> str:
    if len(node.args) != 1:
        raise InvalidChange(f"{node.cmd.upper()} requires exactly one argument")
    return node.args[0]


def _key_values(node: _Node) -> list[tuple[str, str]]:
    _flags(node)
    args = _at_least_one(node)
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args), 3)]
    if any(not key for key, _ in pairs):
        raise InvalidChange(f"{node.cmd.upper()} names can not be blank")
    return pairs


def _env(node: _Node) -> _Step:
    pairs = _key_values(node)

    def step(state: _State) -> None:
        expanded = [(state.lexer(k).word(), state.lexer(v).word()) for k, v in pairs]
        env = list(state.config.get("Env") or [])
        for key, value in expanded:
            same = [i for i, e in enumerate(env) if e.partition("=")[0] == key]
            if same:
                env[same[0]] = f"{key}={value}"
            else:
                env.append(f"{key}={value}")
        state.config["Env"] = env
    return step


def _label(node: _Node) -> _Step:
    pairs = _key_values(node)

    def step(state: _State) -> None:
        expanded = [(state.lexer(k).word(), state.lexer(v).word()) for k, v in pairs]
        state.config["Labels"] = {**(state.config.get("Labels") or {}), **dict(expanded)}
    return step


def _onbuild(node: _Node) -> _Step:
    trigger = _at_least_one(node)[0].strip().upper()
    _flags(node)
    if trigger == "ONBUILD":
        raise InvalidChange("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise InvalidChange(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"^\s*ONBUILD\s*", "", node.original, flags=re.I | re.A)

    def step(state: _State) -> None:
        state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), expression]
    return step


def _workdir(node: _Node) -> _Step:
    path = _exactly_one(node)
    _flags(node)

    def step(state: _State) -> None:
        requested = state.lexer(path).word()
        if not requested:
            raise InvalidChange("cannot normalize nothing")
        if not requested.startswith("/"):  # relative to the current WorkingDir
            requested = f"/{state.config.get('WorkingDir') or ''}/{requested}"
        cleaned = posixpath.normpath(requested)
        state.config["WorkingDir"] = "/" + cleaned.lstrip("/")  # Go's Clean keeps one '/'
    return step


def _command_line(node: _Node, args: list[str]) -> list[str]:
    """handleJSONArgs: JSON form as is, shell form as one string."""
    return args if node.is_json else [" ".join(args)] if args else []


def _set_command(state: _State, key: str, node: _Node, cmdline: list[str] | None) -> None:
    state.config[key] = cmdline if node.is_json or cmdline is None else [*state.shell, *cmdline]
    if "ArgsEscaped" in state.config:
        state.config["ArgsEscaped"] = False  # only Windows images set it


def _cmd(node: _Node) -> _Step:
    _flags(node)
    cmdline = _command_line(node, node.args)

    def step(state: _State) -> None:
        _set_command(state, "Cmd", node, cmdline)
        state.cmd_set = state.cmd_set or bool(cmdline)
    return step


def _entrypoint(node: _Node) -> _Step:
    _flags(node)
    cmdline = _command_line(node, node.args) or None

    def step(state: _State) -> None:
        _set_command(state, "Entrypoint", node, cmdline)
        if not state.cmd_set:
            state.config["Cmd"] = None  # as in a Dockerfile: ENTRYPOINT resets the base CMD
    return step


def _healthcheck(node: _Node) -> _Step:
    kind, rest = _at_least_one(node)[0].upper(), node.args[1:]
    health: dict[str, Any] = {"Test": ["NONE"]}
    if kind == "NONE" and rest:
        raise InvalidChange("HEALTHCHECK NONE takes no arguments")
    if kind != "NONE":
        flags = _flags(node, [*_HEALTH_DURATIONS, "retries"])
        if kind != "CMD":
            raise InvalidChange(f"Unknown type {_go_quote(kind)} in HEALTHCHECK (try CMD)")
        cmdline = _command_line(node, rest)
        if not cmdline:
            raise InvalidChange("Missing command after HEALTHCHECK CMD")
        health = {"Test": ["CMD" if node.is_json else "CMD-SHELL", *cmdline]}
        for flag, key in _HEALTH_DURATIONS.items():
            if nanoseconds := _interval(flag, flags.get(flag, "")):
                health[key] = nanoseconds
        if retries := _go_int32(flags.get("retries") or "0"):
            if retries < 0:
                raise InvalidChange(f"--retries cannot be negative ({retries})")
            health["Retries"] = retries

    def step(state: _State) -> None:
        state.config["Healthcheck"] = copy.deepcopy(health)
    return step


def _expose(node: _Node) -> _Step:
    specs = sorted(_at_least_one(node))
    _flags(node)

    def step(state: _State) -> None:
        words = [w for spec in specs for w in state.lexer(spec).words()]
        ports = dict(state.config.get("ExposedPorts") or {})
        for key in (k for w in words for k in port_keys(w)):
            ports.setdefault(key, {})
        state.config["ExposedPorts"] = ports
    return step


def _user(node: _Node) -> _Step:
    user = _exactly_one(node)
    _flags(node)

    def step(state: _State) -> None:
        state.config["User"] = state.lexer(user).word()
    return step


def _volume(node: _Node) -> _Step:
    paths = [p.strip() for p in _at_least_one(node)]
    _flags(node)
    if "" in paths:
        raise InvalidChange("VOLUME specified can not be an empty string")

    def step(state: _State) -> None:
        volumes = dict(state.config.get("Volumes") or {})
        for path in [state.lexer(p).word() for p in paths]:
            if not path:
                raise InvalidChange("VOLUME specified can not be an empty string")
            volumes[path] = {}
        state.config["Volumes"] = volumes
    return step


def _stopsignal(node: _Node) -> _Step:
    signal = _exactly_one(node)

    def step(state: _State) -> None:
        expanded = state.lexer(signal).word()
        parse_signal(expanded)
        state.config["StopSignal"] = expanded
    return step


_INSTRUCTIONS: dict[str, Callable[[_Node], _Step]] = {
    "cmd": _cmd, "entrypoint": _entrypoint, "env": _env, "expose": _expose,
    "healthcheck": _healthcheck, "label": _label, "onbuild": _onbuild,
    "stopsignal": _stopsignal, "user": _user, "volume": _volume, "workdir": _workdir,
}


# -- value parsers shared with other endpoints -------------------------------------------------

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


_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def go_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "1.5h", "300ms"), in nanoseconds."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0
    if not body:
        raise InvalidChange(f'time: invalid duration "{text}"')
    total, pos = Decimal(0), 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        assert m is not None  # every part of the pattern is optional
        whole, frac, unit = m.groups()
        if not whole and not frac:
            raise InvalidChange(f'time: invalid duration "{text}"')
        if not unit:
            raise InvalidChange(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise InvalidChange(f'time: unknown unit "{unit}" in duration "{text}"')
        total += Decimal(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
        pos = m.end()
    return -int(total) if text.startswith("-") else int(total)


def _interval(flag: str, value: str) -> int:
    nanoseconds = go_duration(value) if value else 0
    if 0 != nanoseconds < 10**6:
        raise InvalidChange(f'Interval "{flag}" cannot be less than 1ms')
    return nanoseconds


def _go_int32(value: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", value):
        raise InvalidChange(f"strconv.ParseInt: parsing {_go_quote(value)}: invalid syntax")
    if not -(2**31) <= int(value) < 2**31:
        raise InvalidChange(f"strconv.ParseInt: parsing {_go_quote(value)}: value out of range")
    return int(value)


# -- word expansion (buildkit frontend/dockerfile/shell/lex.go) ---------------------------------


class _LexError(Exception):
    pass


class _Words:
    """wordsStruct: blanks split words, except inside quotes or after an escape."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word, self.in_word = "", False

    def add_text(self, text: str) -> None:
        for ch in text:
            if not ch.isspace():
                self.add_raw(ch)
            elif self.in_word and self.word:
                self.words.append(self.word)
                self.word, self.in_word = "", False

    def add_raw(self, text: str) -> None:
        self.word, self.in_word = self.word + text, True

    def done(self) -> list[str]:
        return [*self.words, self.word] if self.word else self.words


class _Lexer:
    """Quotes, escapes, ``$VAR``, ``${VAR}`` and ``${VAR[:]-word}`` (also ``+``, ``?``).

    Unset variables expand to "". buildkit's pattern operators (``${VAR#p}``, ``%``, ``/``)
    are refused as unsupported modifiers: commit changes do not need them.
    """

    def __init__(self, text: str, env: dict[str, str], escape: str) -> None:
        self.text, self.pos, self.env, self.escape = text, 0, env, escape

    def word(self) -> str:
        """ProcessWord: the expanded text."""
        return self._process()[0]

    def words(self) -> list[str]:
        """ProcessWords: the expanded text split into words."""
        return self._process()[1]

    def _process(self) -> tuple[str, list[str]]:
        try:
            return self._until("")
        except _LexError as err:
            raise InvalidChange(f"failed to process {_go_quote(self.text)}: {err}") from None

    def _peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def _next(self) -> str:
        ch = self._peek()
        self.pos += len(ch)
        return ch

    def _until(self, stop: str) -> tuple[str, list[str]]:
        """processStopOn: expand up to ``stop``, or to the end when ``stop`` is ""."""
        result, words = "", _Words()
        while ch := self._next():
            if ch == stop:
                return result, words.done()
            if ch == "$":
                value = self._dollar()
                words.add_text(value)  # expansions are split into words, quoted text is not
            elif ch in "'\"":
                value = self._quoted(ch)
                words.add_raw(value)
            elif ch == self.escape:
                value = self._next()
                words.add_raw(value)
            else:
                value = ch
                words.add_text(ch)
            result += value
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return result, words.done()

    def _quoted(self, quote: str) -> str:
        """After an opening quote; only double quotes expand ``$`` and honour escapes."""
        value = ""
        while (ch := self._next()) != quote:
            if not ch:
                kind = "single-quote" if quote == "'" else "double-quote"
                raise _LexError(f"unexpected end of statement while looking for matching {kind}")
            if quote == '"' and ch == "$":
                value += self._dollar()
            elif quote == '"' and ch == self.escape and self._peek() in ('"', "$", self.escape):
                value += self._next()
            else:
                value += ch
        return value

    def _dollar(self) -> str:
        """After a ``$``: ``name``, ``{name}`` or ``{name[:]op word}``."""
        if self._peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        if not self._peek():
            raise _LexError("syntax error: missing '}'")
        if self._peek() in "{}:":
            raise _LexError("syntax error: bad substitution")
        name, op = self._name(), self._next()
        if op == "}":
            return self.env.get(name, "")
        colon = op == ":"
        op = self._next() if colon else op
        modifier = (":" if colon else "") + (op or "\ufffd")  # Go prints EOF as U+FFFD
        if op in ("#", "%", "/") or (not colon and op not in ("-", "+", "?")):
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word = self._until("}")[0]
        except _LexError:
            if not self._peek():
                raise _LexError("syntax error: missing '}'") from None
            raise
        value = self.env.get(name)
        unset = value is None or (colon and value == "")
        if op == "-":
            return word if unset else str(value)
        if op == "+":
            return "" if unset else word
        if op != "?":
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        if unset:
            reason = "is not allowed to be unset" if value is None else "is not allowed to be empty"
            raise _LexError(f"{name}: {word or reason}")
        return str(value)

    def _name(self) -> str:
        """processName: digits, one special character, or letters/digits/underscores."""
        start, ch = self.pos, self._peek()
        if ch.isdecimal():
            while self._peek().isdecimal():
                self.pos += 1
        elif ch and ch in "@*#?-$!0":
            self.pos += 1
        else:
            while (ch := self._peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
                self.pos += 1
        return self.text[start:self.pos]
