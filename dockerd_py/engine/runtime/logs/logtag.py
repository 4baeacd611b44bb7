"""The `tag` log option: a Go text/template over the container's logger.Info.

dockerd parses and runs the template when the driver starts and hands Go's
error to the client ("template: log-tag:1: unclosed action", `... at <.Nope>:
can't evaluate field Nope in type *logger.Info`). We read the part of the
language tags use: text, comments, trim markers, pipelines of fields and
string literals through lower/upper/title. `render_tag` raises TagError where
dockerd refuses, with its wording, and TagUnsupported for valid Go beyond that
part (control structures, variables, the other functions). Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


class TagError(ValueError):
    """dockerd refuses this template (Go's message)."""


class TagUnsupported(ValueError):
    """Valid for Go's text/template, but beyond what this daemon evaluates."""


# logger.Info members that are not strings: Go prints them, we do not.
_OTHER_MEMBERS = frozenset({"Config", "ContainerArgs", "ContainerCreated", "ContainerEnv",
                            "ContainerLabels", "ExtraAttributes"})
_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                       "break", "continue", "nil"})
_STRING_FUNCS = {"lower": str.lower, "upper": str.upper}
# Go's builtins and dockerd's templates.basicFunctions: defined, so not a parse error.
_OTHER_FUNCS = frozenset({"and", "call", "html", "index", "slice", "js", "len", "not", "or",
                          "print", "printf", "println", "urlquery", "eq", "ge", "gt", "le",
                          "lt", "ne", "json", "split", "join", "pad", "truncate", "true",
                          "false"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>[+-]?[0-9][0-9a-zA-Z_.+-]*)
  | (?P<pipe>\|)
  | (?P<other>\$[A-Za-z0-9_]*|:=|=|\(|\)|,)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int
    col: int


def _parse_error(line: int, message: str) -> TagError:
    return TagError(f"template: log-tag:{line}: {message}")


def _exec_error(tok: _Token, message: str) -> TagError:
    return TagError(f'template: log-tag:{tok.line}:{tok.col}: executing "log-tag" at '
                    f"<{tok.text}>: {message}")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1)


@dataclass(frozen=True)
class _Action:
    tokens: list[_Token]
    line: int


def _split(text: str) -> list[str | _Action]:
    """Text pieces and actions, with Go's lexer errors."""
    parts: list[str | _Action] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip()
        if start < 0:
            parts.append(chunk)
            return parts
        i = start + 2
        if text[i:i + 2] in ("- ", "-\t", "-\n"):
            chunk = chunk.rstrip()
            i += 1
        parts.append(chunk)
        line, _ = _position(text, start)
        if text[i:].lstrip(" \t\n").startswith("/*"):
            end = text.find("*/", i)
            close = -1 if end < 0 else text.find("}}", end)
            if close < 0:
                raise _parse_error(line, "unclosed comment")
            trim_next = text[close - 2:close] == " -"
            pos = close + 2
            continue
        tokens, pos, trim_next = _lex_action(text, i, line)
        parts.append(_Action(tokens, line))


def _lex_action(text: str, i: int, line: int) -> tuple[list[_Token], int, bool]:
    tokens: list[_Token] = []
    while True:
        if text.startswith("}}", i):
            return tokens, i + 2, False
        if text.startswith(" -}}", i) or text.startswith("\t-}}", i):
            return tokens, i + 4, True
        if i >= len(text):
            raise _parse_error(line, "unclosed action")
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            if ch == '"':
                raise _parse_error(line, "unterminated quoted string")
            if ch == "`":
                raise _parse_error(line, "unterminated raw quoted string")
            raise _parse_error(line, f"bad character U+{ord(ch):04X} '{ch}'")
        kind = m.lastgroup or "other"
        if kind != "space":
            tok_line, col = _position(text, i)
            tokens.append(_Token(kind, m.group(0), tok_line, col))
        i = m.end()


def _commands(tokens: list[_Token], line: int) -> list[list[_Token]]:
    """The pipeline's commands, with Go's parse errors (checked before anything runs)."""
    if not tokens:
        raise _parse_error(line, "missing value for command")
    first = tokens[0]
    if first.kind == "ident" and first.text in _KEYWORDS:
        if first.text in ("end", "else"):
            raise _parse_error(line, f"unexpected {{{{{first.text}}}}}")
        raise TagUnsupported(f"{{{{{first.text}}}}} in a log tag")
    commands: list[list[_Token]] = [[]]
    for tok in tokens:
        if tok.kind == "pipe":
            if not commands[-1]:
                raise _parse_error(line, "missing command")
            commands.append([])
            continue
        if tok.kind == "ident" and tok.text not in _STRING_FUNCS \
                and tok.text != "title" and tok.text not in _OTHER_FUNCS:
            raise _parse_error(line, f'function "{tok.text}" not defined')
        commands[-1].append(tok)
    if not commands[-1]:
        raise _parse_error(line, "missing command")
    return commands


def _operand(tok: _Token, fields: Mapping[str, str]) -> str:
    if tok.kind == "string":
        return bytes(tok.text[1:-1], "utf-8").decode("unicode_escape")
    if tok.kind == "raw":
        return tok.text[1:-1]
    if tok.kind == "field":
        names = tok.text[1:].split(".")
        if names[0] in _OTHER_MEMBERS:
            raise TagUnsupported(f"{{{{{tok.text}}}}} in a log tag")
        if names[0] not in fields:
            raise _exec_error(tok, f"can't evaluate field {names[0]} in type *logger.Info")
        if len(names) > 1:  # Go points at the member it could not read
            at = _Token(tok.kind, tok.text, tok.line, tok.col + len(names[0]) + 1)
            raise _exec_error(at, f"can't evaluate field {names[1]} in type string")
        return fields[names[0]]
    raise TagUnsupported(f"{tok.text!r} in a log tag")


def _run(command: list[_Token], piped: str | None, fields: Mapping[str, str]) -> str:
    head = command[0]
    if head.kind != "ident":
        if len(command) > 1 or piped is not None:
            raise TagUnsupported("arguments to a value in a log tag")
        return _operand(head, fields)
    func = _STRING_FUNCS.get(head.text)
    if func is None and head.text != "title":
        raise TagUnsupported(f"the function {head.text} in a log tag")
    args = [_operand(t, fields) for t in command[1:]]
    if piped is not None:
        args.append(piped)
    if len(args) != 1:
        raise _exec_error(head, f"wrong number of args for {head.text}: want 1 got {len(args)}")
    return _title(args[0]) if func is None else func(args[0])


def _title(text: str) -> str:
    """Go's strings.Title: the first letter of each word upper-cased, the rest kept."""
    out, prev_letter = [], False
    for ch in text:
        out.append(ch.upper() if not prev_letter else ch)
        prev_letter = ch.isalnum() or ch == "_"
    return "".join(out)


def render_tag(template: str, fields: Mapping[str, str]) -> str:
    """The tag for these logger.Info string members (ID, Name, ImageName, ...)."""
    parts = _split(template)
    # Go parses the whole template before running any of it.
    parsed = [p if isinstance(p, str) else _commands(p.tokens, p.line) for p in parts]
    out = []
    for part in parsed:
        if isinstance(part, str):
            out.append(part)
            continue
        value: str | None = None
        for command in part:
            value = _run(command, value, fields)
        out.append(value or "")
    return "".join(out)
