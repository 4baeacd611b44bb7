"""Dockerfile text → `instructions` objects, as the reference's parser reads it.

Two passes, like moby's: `_read_nodes` turns physical lines into logical
instruction lines (parser directives, escape token, continuations, comments
inside continuations, heredoc bodies) and splits each into keyword, flags and
arguments; `_instruction` checks each node and builds the typed instruction.
Nothing here expands variables: words keep their quotes and `$` until the
dispatcher calls `expand()` with the values in effect.

Errors carry the reference's wording, which names the line for instruction errors
("dockerfile parse error line N: ...") but not for what its line reader rejects
("failed to parse Dockerfile: ...") nor for an instruction before the first FROM;
DockerfileError.line has the line in every case.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import instructions as ins
from .instructions import DockerfileError, Heredoc
from .shell_lex import Lexer, go_quote

# Go's unicode.IsSpace
_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
         "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_WHITESPACE_RUN = re.compile(r"[\t\v\f\r ]+")
_GO_RE_SPACE = r"[\t\n\f\r ]*"  # Go's \s
_DIRECTIVE = re.compile(rf"^#{_GO_RE_SPACE}([a-zA-Z][a-zA-Z0-9]*){_GO_RE_SPACE}={_GO_RE_SPACE}"
                        rf"(.+?){_GO_RE_SPACE}$", re.DOTALL)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_WORD = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$", re.DOTALL)
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_ONBUILD_PREFIX = re.compile(r"^[" + _SPACE + r"]*ONBUILD[" + _SPACE + r"]*", re.IGNORECASE)
_MAX_LINE = 64 * 1024 - 1  # bufio.MaxScanTokenSize - 1

# keyword → how its arguments are split (moby's line parsers)
_STRING, _WORDS, _JSON_OR_STRING, _JSON_OR_WORDS, _NAME_VAL, _NAME_OR_NAME_VAL, _HEALTH, _SUB = \
    range(8)
_ARG_STYLE = {
    "add": _JSON_OR_WORDS, "arg": _NAME_OR_NAME_VAL, "cmd": _JSON_OR_STRING,
    "copy": _JSON_OR_WORDS, "entrypoint": _JSON_OR_STRING, "env": _NAME_VAL, "expose": _WORDS,
    "from": _WORDS, "healthcheck": _HEALTH, "label": _NAME_VAL, "maintainer": _STRING,
    "onbuild": _SUB, "run": _JSON_OR_STRING, "shell": _JSON_OR_STRING, "stopsignal": _STRING,
    "user": _STRING, "volume": _JSON_OR_WORDS, "workdir": _STRING,
}
_HEREDOC_KEYWORDS = ("add", "copy", "run")

# flags each instruction accepts: name → takes a value (False: boolean flag)
_FLAGS: dict[str, dict[str, bool]] = {
    "add": {"chown": True, "chmod": True, "checksum": True, "keep-git-dir": False, "link": False},
    "copy": {"chown": True, "chmod": True, "from": True, "link": False, "parents": False,
             "exclude": True},
    "from": {"platform": True},
    "healthcheck": {"interval": True, "timeout": True, "start-period": True,
                    "start-interval": True, "retries": True},
    # RUN --mount is BuildKit's: 20.10 accepts it here and refuses it when the step runs
    # ("the --mount option requires BuildKit..."); --network/--security are unknown flags
    "run": {"mount": True},
}


@dataclass
class _Node:
    keyword: str                  # as written
    original: str                 # the logical line
    flags: list[str]
    args: list[str]
    json: bool
    line: int
    end_line: int
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: _Node | None = None      # ONBUILD's trigger


def _is_space(ch: str) -> bool:
    return ch in _SPACE


def _lstrip(s: str) -> str:
    return s.lstrip(_SPACE)


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return _lstrip(s).startswith("#")


def _error(message: str, line: int) -> DockerfileError:
    """An instruction's error, as the reference words it."""
    return DockerfileError(f"dockerfile parse error line {line}: {message}", line)


class _ReadError(Exception):
    """An error of the line reader (directives, JSON, ENV/LABEL syntax, heredocs); the
    reference words it "failed to parse <Dockerfile's name>: <message>"."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def named(self, name: str) -> DockerfileError:
        return DockerfileError(f"failed to parse {name}: {self.message}", self.line)


class _Directives:
    """Parser directives: comment lines of the form `# key=value` before anything else."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False
        self.escape = "\\"
        self.continuation = self._continuation_regex("\\")

    @staticmethod
    def _continuation_regex(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")

    def feed(self, line: str) -> bool:
        """Looks at one line; True when it was a directive."""
        if self.done:
            return False
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        self.values[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = self._continuation_regex(value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation token, True when the logical line ends here)."""
        if self.continuation.search(line):
            return self.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True


def _physical_lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line, as Go's scanner."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _decode(source: str | bytes) -> str:
    if isinstance(source, bytes):
        source = source.decode("utf-8", errors="replace")
    return source.removeprefix("\ufeff")


# --- splitting a logical line ---------------------------------------------------------

def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """(keyword, flags, rest) — moby's splitCommand + extractBuilderFlags."""
    parts = _WHITESPACE_RUN.split(line.strip(_SPACE), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip(_SPACE)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--name=value` words (quotes and escapes processed); the rest of the line."""
    words: list[str] = []
    word: list[str] = []
    in_word = in_quote = blank_ok = False
    quote = ""
    pos, n = 0, len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if not in_word and not in_quote:
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            if not line.startswith("--", pos):
                return line[pos:], words
            in_word = True
        if pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if in_word and not in_quote:
            if _is_space(ch):
                w = "".join(word)
                in_word = False
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, in_quote = ch, True, True
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in a quote
        if ch == quote:
            in_quote = False
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                in_quote = False
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words; quotes and escapes are kept for expansion to remove."""
    words: list[str] = []
    word: list[str] = []
    phase = 0  # 0 spaces, 1 word, 2 quote
    quote = ""
    blank_ok = False
    pos, n = 0, len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == 0:
            if pos == n:
                break
            if _is_space(ch):
                pos += 1
                continue
            phase = 1
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == 1:
            if _is_space(ch):
                phase = 0
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok = [], False
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, 2
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # phase 2: in a quote
        if ch == quote:
            phase = 1
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = 1
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


def _reject_constant(name: str) -> object:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotStrings(ValueError):
    pass


def _parse_json(rest: str) -> list[str] | None:
    """The strings of a JSON array, None when `rest` is not one (→ shell form).

    As the reference (Go's json.Decoder), only the first JSON value is read: text after
    the closing bracket is ignored."""
    rest = _lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value, _ = _JSON.raw_decode(rest)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if any(isinstance(v, float) and math.isinf(v) for v in value):
        return None  # Go cannot hold 1e999 in a float64: not JSON to it
    if not all(isinstance(v, str) for v in value):
        raise _NotStrings("when using JSON array syntax, arrays must be comprised of strings only")
    return [_LONE_SURROGATE.sub("\ufffd", v) for v in value]  # as Go decodes "\ud800"


def _split_args(keyword: str, rest: str, escape: str) -> tuple[list[str], bool, _Node | None]:
    """(arguments, JSON form, ONBUILD trigger) by the keyword's line parser."""
    style = _ARG_STYLE.get(keyword)
    if style is None:  # unknown instruction: refused in the second pass
        return [], False, None
    if style == _STRING:
        return ([rest] if rest else []), False, None
    if style == _WORDS:
        return _whitespace_words(rest), False, None
    if style == _JSON_OR_STRING:
        if not rest:
            return [], False, None
        parsed = _parse_json(rest)
        return (parsed, True, None) if parsed is not None else ([rest], False, None)
    if style == _JSON_OR_WORDS:
        parsed = _parse_json(rest)
        if parsed is not None:
            return parsed, True, None
        return _whitespace_words(rest), False, None
    if style == _NAME_VAL:
        return _name_values(rest, keyword.upper(), escape), False, None
    if style == _NAME_OR_NAME_VAL:
        return _parse_words(rest, escape), False, None
    if style == _HEALTH:
        return _health_args(rest)
    # ONBUILD: the rest is an instruction of its own
    if not rest:
        return [], False, None
    return [], False, _node_from_line(rest, escape, 0, 0)


def _whitespace_words(rest: str) -> list[str]:
    if not rest:
        return []
    return _WHITESPACE_RUN.split(rest)


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    """ENV/LABEL: `k v` (old form) or `k=v ...`, as flat [key, value, key, value...]."""
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE_RUN.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ValueError(f"{keyword} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {go_quote(word)}. "
                             "Must be of the form: name=value")
        key, value = word.split("=", 1)
        out += [key, value]
    return out


def _health_args(rest: str) -> tuple[list[str], bool, None]:
    sep = 0
    while sep < len(rest) and not _is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False, None
    nxt = sep
    while nxt < len(rest) and _is_space(rest[nxt]):
        nxt += 1
    typ, cmd = rest[:sep], rest[nxt:]
    if not cmd:
        return [typ], False, None
    parsed = _parse_json(cmd)
    if parsed is not None:
        return [typ, *parsed], True, None
    return [typ, cmd], False, None


_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; ValueError with Go's message."""
    invalid = ValueError(f"time: invalid duration {go_quote(text)}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        i = 0
        whole = 0
        while i < len(s) and "0" <= s[i] <= "9":
            if whole > (1 << 63) // 10:
                raise invalid
            whole = whole * 10 + int(s[i])
            if whole > 1 << 63:
                raise invalid
            i += 1
        had_whole = i > 0
        s = s[i:]
        fraction, scale, had_fraction = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:
                    if fraction > ((1 << 63) - 1) // 10:
                        overflow = True
                    else:
                        nxt = fraction * 10 + int(s[i])
                        if nxt > 1 << 63:
                            overflow = True
                        else:
                            fraction, scale = nxt, scale * 10
                i += 1
            had_fraction = i > 0
            s = s[i:]
        if not had_whole and not had_fraction:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(text)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {go_quote(unit_name)} in duration "
                             f"{go_quote(text)}")
        if whole > (1 << 63) // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if value > 1 << 63:
                raise invalid
        total += value
        if total > 1 << 63:
            raise invalid
    if negative:
        return -total
    if total > (1 << 63) - 1:
        raise invalid
    return total


def _node_from_line(line: str, escape: str, start: int, end: int) -> _Node:
    keyword, flags, rest = _split_command(line, escape)
    args, is_json, sub = _split_args(keyword.lower(), rest, escape)
    return _Node(keyword, line, flags, args, is_json, start, end, sub=sub)


# --- heredocs ---------------------------------------------------------------------------

def _heredoc_from_word(word: str) -> Heredoc | None:
    """A heredoc opener (`<<EOF`, `<<-"EOF"`) → Heredoc without content; else None."""
    match = _HEREDOC_WORD.match(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    plain = Lexer("\\", skip_unset=True).words(rest, {})
    if len(plain) != 1:
        return None
    raw = Lexer("\\", skip_unset=True, raw_quotes=True).words(rest, {})
    quotes = plain[0].count("'") + plain[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=plain[0], content="", expand=quotes == raw_quotes,
                   chomp=match.group(2) == "-")


def _heredocs_in_line(line: str) -> list[Heredoc]:
    lexer = Lexer("\\", skip_unset=True, raw_quotes=True, raw_escapes=True)
    try:
        words = lexer.words(line, {})
    except DockerfileError:
        return []
    docs = []
    for word in words:
        doc = _heredoc_from_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


def _heredoc_target(node: _Node) -> _Node:
    return node.sub if node.keyword.lower() == "onbuild" and node.sub is not None else node


# --- pass 1: lines → nodes --------------------------------------------------------------

def _read_nodes(text: str, escape: str = "\\") -> tuple[list[_Node], _Directives, list[str]]:
    directives = _Directives()
    if escape != "\\":
        directives.feed(f"# escape={escape}")
    lines = _physical_lines(text)
    nodes: list[_Node] = []
    empty_continuations: list[str] = []
    line_no = 0
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        token = _lstrip(_trim_newline(raw))
        try:
            directives.feed(token)
        except ValueError as exc:
            raise _ReadError(str(exc), line_no + 1) from None
        line_no += 1
        if len(raw.encode()) > _MAX_LINE + 1:
            raise _ReadError(f"dockerfile line greater than max allowed size of {_MAX_LINE}",
                              line_no)
        if _is_comment(token):
            token = ""
        start = line_no
        logical, end_of_line = directives.trim_continuation(token)
        if end_of_line and not logical:
            continue
        pieces = [logical]
        had_empty = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            line_no += 1
            token = _trim_newline(raw)
            if _is_comment(token):
                continue
            if not _lstrip(token):
                had_empty = True
                continue
            token, end_of_line = directives.trim_continuation(token)
            pieces.append(token)
        logical = "".join(pieces)
        if had_empty:
            empty_continuations.append(logical)
        try:
            node = _node_from_line(logical, directives.escape, start, line_no)
        except ValueError as exc:
            raise _ReadError(str(exc), start) from None
        target = _heredoc_target(node)
        if target.keyword.lower() in _HEREDOC_KEYWORDS and not target.json and "<<" in logical:
            docs = []
            try:
                openers = _heredocs_in_line(logical)
            except DockerfileError as exc:
                raise _ReadError(exc.message, start) from None
            for doc in openers:
                body: list[str] = []
                terminated = False
                while i < len(lines):
                    raw = lines[i]
                    i += 1
                    line_no += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise _ReadError("unterminated heredoc", start)
                docs.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp))
            target.heredocs = docs
            node.end_line = line_no
        nodes.append(node)
    if not nodes:
        raise _ReadError("file with no instructions", 0)
    warnings = [f"[WARNING]: Empty continuation line found in:\n    {line}"
                for line in empty_continuations]
    if warnings:
        warnings.append(
            "[WARNING]: Empty continuation lines will become errors in a future release.")
    return nodes, directives, warnings


# --- pass 2: nodes → instructions -------------------------------------------------------

def _parse_flags(node: _Node, allowed: dict[str, bool]) -> dict[str, str]:
    """moby's BFlags.Parse: `--name=value`, booleans as `--name` or `--name=true|false`."""
    values: dict[str, str] = {}
    for arg in node.flags:
        if not arg.startswith("--"):
            raise ValueError(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, eq, value = arg[2:].partition("=")
        if name not in allowed:
            raise ValueError(f"Unknown flag: {name}")
        takes_value = allowed[name]
        if name in values and not (takes_value and name == "exclude"):
            raise ValueError(f"Duplicate flag specified: {name}")
        if takes_value:
            if not eq:
                raise ValueError(f"Missing a value on flag: {name}")
            values[name] = value if name not in values else values[name] + "\n" + value
        else:
            if eq and not value:
                raise ValueError(f"Missing a value on flag: {name}")
            lower = value.lower()
            if lower not in ("", "true", "false"):
                raise ValueError(f"Expecting boolean value for flag {name}, not: {value}")
            values[name] = lower or "true"
    return values


_I = TypeVar("_I", bound=ins.Instruction)


def _make(cls: type[_I], node: _Node, flags: dict[str, str] | None = None, **fields: Any) -> _I:
    """The instruction with the fields every one has: keyword, original text, line, flags."""
    return cls(keyword=node.keyword.upper(), original=node.original.strip(_SPACE),
               line=node.line, flags=flags or {}, **fields)


def _command_line(node: _Node) -> list[str]:
    """moby's handleJSONArgs: exec form as is, shell form as one string."""
    if not node.args:
        return []
    return list(node.args) if node.json else [" ".join(node.args)]


def _exactly_one(node: _Node) -> str:
    if len(node.args) != 1:
        raise ValueError(f"{node.keyword.upper()} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: _Node) -> None:
    if not node.args:
        raise ValueError(f"{node.keyword.upper()} requires at least one argument")


def _pairs(node: _Node) -> list[tuple[str, str]]:
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


def _from(node: _Node) -> ins.Instruction:
    args = node.args
    stage = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.match(stage):
            raise ValueError(f"invalid name for build stage: {go_quote(args[2])}, "
                             "name can't start with a number or contain symbols")
    elif len(args) != 1:
        raise ValueError("FROM requires either one or three arguments")
    flags = _parse_flags(node, _FLAGS["from"])
    return _make(ins.From, node, flags, image=args[0], stage_name=stage,
                 platform=flags.get("platform"))


def _run(node: _Node) -> ins.Instruction:
    flags = _parse_flags(node, _FLAGS["run"])
    return _make(ins.Run, node, flags, command=_command_line(node), shell_form=not node.json,
                 heredocs=list(node.heredocs))


def _cmd(node: _Node) -> ins.Instruction:
    _parse_flags(node, {})
    return _make(ins.Cmd, node, command=_command_line(node), shell_form=not node.json)


def _entrypoint(node: _Node) -> ins.Instruction:
    _parse_flags(node, {})
    return _make(ins.Entrypoint, node, command=_command_line(node), shell_form=not node.json)


def _shell(node: _Node) -> ins.Instruction:
    _parse_flags(node, {})
    command = _command_line(node)
    if not command:
        raise ValueError("SHELL requires at least one argument")
    if not node.json:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    return _make(ins.Shell, node, shell=command)


def _env(node: _Node) -> ins.Instruction:
    _parse_flags(node, {})
    return _make(ins.Env, node, pairs=_pairs(node))


def _label(node: _Node) -> ins.Instruction:
    _parse_flags(node, {})
    return _make(ins.Label, node, pairs=_pairs(node))


def _arg(node: _Node) -> ins.Instruction:
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


def _expose(node: _Node) -> ins.Instruction:
    _at_least_one(node)
    _parse_flags(node, {})
    return _make(ins.Expose, node, ports=sorted(node.args))


def _volume(node: _Node) -> ins.Instruction:
    _at_least_one(node)
    _parse_flags(node, {})
    paths = [p.strip(_SPACE) for p in node.args]
    if any(not p for p in paths):
        raise ValueError("VOLUME specified can not be an empty string")
    return _make(ins.Volume, node, paths=paths)


def _user(node: _Node) -> ins.Instruction:
    user = _exactly_one(node)
    _parse_flags(node, {})
    return _make(ins.User, node, user=user)


def _workdir(node: _Node) -> ins.Instruction:
    path = _exactly_one(node)
    _parse_flags(node, {})
    return _make(ins.Workdir, node, path=path)


def _stopsignal(node: _Node) -> ins.Instruction:
    return _make(ins.StopSignal, node, signal=_exactly_one(node))  # flags not even looked at


def _maintainer(node: _Node) -> ins.Instruction:
    name = _exactly_one(node)
    _parse_flags(node, {})
    return _make(ins.Maintainer, node, name=name)


def _copy(node: _Node) -> ins.Instruction:
    """COPY and ADD; `<<EOF` sources become inline files (Copy.heredocs)."""
    keyword = node.keyword.upper()
    if len(node.args) < 2:
        raise ValueError(f"{keyword} requires at least two arguments, but only one was provided. "
                         "Destination could not be determined")
    flags = _parse_flags(node, _FLAGS[keyword.lower()])
    dest = node.args[-1]
    if _heredoc_word(dest) is not None:
        raise ValueError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in node.heredocs}
    sources: list[str] = []
    heredocs: list[Heredoc] = []
    for word in node.args[:-1]:
        opener = _heredoc_word(word)
        if opener is None:
            sources.append(word)
        else:
            body = bodies.get(opener.name)
            heredocs.append(Heredoc(opener.name, body.content if body else "", opener.expand,
                                    opener.chomp))
    cls = ins.Add if keyword == "ADD" else ins.Copy
    return _make(cls, node, flags, sources=sources, dest=dest, heredocs=heredocs)


def _heredoc_word(word: str) -> Heredoc | None:
    try:
        return _heredoc_from_word(word)
    except DockerfileError:
        return None


def _healthcheck(node: _Node) -> ins.Instruction:
    _at_least_one(node)
    typ = node.args[0].upper()
    rest = node.args[1:]
    if typ == "NONE":  # flags are not even looked at
        if rest:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        return _make(ins.Healthcheck, node, test=["NONE"])
    flags = _parse_flags(node, _FLAGS["healthcheck"])
    if typ != "CMD":
        raise ValueError(f"Unknown type {go_quote(typ)} in HEALTHCHECK (try CMD)")
    command = list(rest) if node.json else ([" ".join(rest)] if rest else [])
    if not command:
        raise ValueError("Missing command after HEALTHCHECK CMD")
    test = ["CMD", *command] if node.json else ["CMD-SHELL", *command]
    durations = {name: _interval(flags, name)
                 for name in ("interval", "timeout", "start-period", "start-interval")}
    retries = 0
    if flags.get("retries"):
        retries = _go_parse_int32(flags["retries"])
        if retries < 1:
            raise ValueError(f"--retries must be at least 1 (not {retries})")
    return _make(ins.Healthcheck, node, flags, test=test, interval=durations["interval"],
                 timeout=durations["timeout"], start_period=durations["start-period"],
                 start_interval=durations["start-interval"], retries=retries)


def _interval(flags: dict[str, str], name: str) -> int:
    text = flags.get(name, "")
    if not text:
        return 0
    value = parse_duration(text)
    if value < 1_000_000:
        raise ValueError(f'Interval "{name}" cannot be less than 1ms')
    return value


def _go_parse_int32(text: str) -> int:
    """strconv.ParseInt(text, 10, 32), with its error text."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _onbuild(node: _Node) -> ins.Instruction:
    if node.sub is None:
        raise ValueError("ONBUILD requires at least one argument")
    _parse_flags(node, {})
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
_INSTRUCTIONS: dict[str, Callable[[_Node], ins.Instruction]] = {
    "add": _copy, "arg": _arg, "cmd": _cmd, "copy": _copy, "entrypoint": _entrypoint,
    "env": _env, "expose": _expose, "from": _from, "healthcheck": _healthcheck,
    "label": _label, "maintainer": _maintainer, "onbuild": _onbuild, "run": _run,
    "shell": _shell, "stopsignal": _stopsignal, "user": _user, "volume": _volume,
    "workdir": _workdir,
}


def _instruction(node: _Node) -> ins.Instruction:
    """One node → its typed instruction; ValueError with the reference's message."""
    build = _INSTRUCTIONS.get(node.keyword.lower())
    if build is None:
        raise ValueError(f"unknown instruction: {node.keyword.upper()}")
    return build(node)


def parse(source: str | bytes, name: str = "Dockerfile") -> ins.Dockerfile:
    """A whole Dockerfile; DockerfileError with the reference's message when malformed.
    `name` is the Dockerfile's name as the client gave it (`dockerfile=`), which the
    reference puts in the line reader's errors: "failed to parse <name>: ..."."""
    try:
        nodes, directives, warnings = _read_nodes(_decode(source))
    except _ReadError as exc:
        raise exc.named(name) from None
    dockerfile = ins.Dockerfile(directives=dict(directives.values), escape=directives.escape,
                                warnings=warnings)
    for node in nodes:
        try:
            instruction = _instruction(node)
        except ValueError as exc:
            raise _error(str(exc), node.line) from None
        if not dockerfile.stages:
            if isinstance(instruction, ins.Arg):
                dockerfile.meta_args.append(instruction)
                continue
            if not isinstance(instruction, ins.From):
                raise DockerfileError("no build stage in current context", node.line)
        if isinstance(instruction, ins.From):
            dockerfile.stages.append(ins.Stage(index=len(dockerfile.stages), base=instruction))
        else:
            dockerfile.stages[-1].instructions.append(instruction)
    return dockerfile


def parse_instruction(text: str, escape: str = "\\") -> ins.Instruction:
    """One ONBUILD trigger (with its heredoc bodies, if any, on the following lines).

    As the reference dispatches triggers, errors are the bare messages ("unknown
    instruction: FOO", "Unknown flag: x"), and the escape token is the default one: a
    trigger comes from an image's config, not from the Dockerfile being built."""
    try:
        nodes, _, _ = _read_nodes(_decode(text), escape)
    except _ReadError as exc:
        raise DockerfileError(exc.message, exc.line) from None
    if len(nodes) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", 0)
    try:
        return _instruction(nodes[0])
    except ValueError as exc:
        raise DockerfileError(str(exc), nodes[0].line) from None
