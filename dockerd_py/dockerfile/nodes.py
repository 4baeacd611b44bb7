"""One logical instruction line → `Node`: keyword, `--flags` and arguments, split by the
rules of the keyword (moby's splitCommand, extractBuilderFlags and line parsers).

Nothing is expanded here: words keep their quotes and `$`. A keyword the language
does not know gets no arguments (the instruction checks refuse it). ValueError with
the reference's message when the line cannot be split (ENV/LABEL syntax, a JSON
array of non-strings).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

from .dialect import Dialect
from .golang import SPACE, go_quote, is_space, lstrip
from .instructions import Heredoc

_WHITESPACE_RUN = re.compile(r"[\t\v\f\r ]+")

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


@dataclass
class Node:
    keyword: str                  # as written
    original: str                 # the logical line
    flags: list[str]
    args: list[str]
    json: bool
    line: int
    end_line: int
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None       # ONBUILD's trigger

    def heredoc_target(self) -> Node:
        """The node whose heredocs the line opens: ONBUILD's trigger, else itself."""
        return self.sub if self.keyword.lower() == "onbuild" and self.sub is not None else self


def node_from_line(line: str, escape: str, start: int, end: int, dialect: Dialect) -> Node:
    keyword, flags, rest = _split_command(line, escape)
    args, is_json, sub = _split_args(keyword.lower(), rest, escape, dialect)
    return Node(keyword, line, flags, args, is_json, start, end, sub=sub)


def _split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """(keyword, flags, rest) — moby's splitCommand + extractBuilderFlags."""
    parts = _WHITESPACE_RUN.split(line.strip(SPACE), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip(SPACE)


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
            if is_space(ch):
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
            if is_space(ch):
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


def parse_words(rest: str, escape: str) -> list[str]:
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
            if is_space(ch):
                pos += 1
                continue
            phase = 1
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == 1:
            if is_space(ch):
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
    raise ValueError(name)  # Go's JSON has no NaN/Infinity


_JSON = json.JSONDecoder(parse_constant=_reject_constant)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(rest: str, whole_text: bool) -> list[str] | None:
    """The strings of a JSON array, None when `rest` is not one (→ shell form); ValueError
    when it is an array of something else.

    `whole_text` False: as Go's json.Decoder, only the first JSON value is read and text
    after the closing bracket is ignored; True: as json.Unmarshal, the whole text must be
    the array (see Dialect.json_whole_text)."""
    rest = lstrip(rest)
    if not rest.startswith("["):
        return None
    try:
        value = _JSON.decode(rest) if whole_text else _JSON.raw_decode(rest)[0]
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if any(isinstance(v, float) and math.isinf(v) for v in value):
        return None  # Go cannot hold 1e999 in a float64: not JSON to it
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return [_LONE_SURROGATE.sub("\ufffd", v) for v in value]  # as Go decodes "\ud800"


def _split_args(keyword: str, rest: str, escape: str,
                dialect: Dialect) -> tuple[list[str], bool, Node | None]:
    """(arguments, JSON form, ONBUILD trigger) by the keyword's line parser."""
    style = _ARG_STYLE.get(keyword)
    if style is None:  # unknown instruction: refused by the instruction checks
        return [], False, None
    if style == _STRING:
        return ([rest] if rest else []), False, None
    if style == _WORDS:
        return _whitespace_words(rest), False, None
    if style == _JSON_OR_STRING:
        if not rest:
            return [], False, None
        parsed = parse_json(rest, dialect.json_whole_text)
        return (parsed, True, None) if parsed is not None else ([rest], False, None)
    if style == _JSON_OR_WORDS:
        parsed = parse_json(rest, dialect.json_whole_text)
        if parsed is not None:
            return parsed, True, None
        return _whitespace_words(rest), False, None
    if style == _NAME_VAL:
        return _name_values(rest, keyword.upper(), escape), False, None
    if style == _NAME_OR_NAME_VAL:
        return parse_words(rest, escape), False, None
    if style == _HEALTH:
        return _health_args(rest, dialect)
    # ONBUILD: the rest is an instruction of its own
    if not rest:
        return [], False, None
    return [], False, node_from_line(rest, escape, 0, 0, dialect)


def _whitespace_words(rest: str) -> list[str]:
    if not rest:
        return []
    return _WHITESPACE_RUN.split(rest)


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    """ENV/LABEL: `k v` (old form) or `k=v ...`, as flat [key, value, key, value...]."""
    words = parse_words(rest, escape)
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


def _health_args(rest: str, dialect: Dialect) -> tuple[list[str], bool, None]:
    sep = 0
    while sep < len(rest) and not is_space(rest[sep]):
        sep += 1
    if sep == 0:
        return [], False, None
    nxt = sep
    while nxt < len(rest) and is_space(rest[nxt]):
        nxt += 1
    typ, cmd = rest[:sep], rest[nxt:]
    if not cmd:
        return [typ], False, None
    parsed = parse_json(cmd, dialect.json_whole_text)
    if parsed is not None:
        return [typ, *parsed], True, None
    return [typ, cmd], False, None
