"""JSON text as Go's encoding/json reads it, with its syntax error wording.

Differences from Python's json that matter for a request body: NaN and
Infinity are not JSON; invalid UTF-8 and lone surrogate escapes become U+FFFD
(Go never hands a program a string it cannot encode); a number's literal text
is kept, because Go's type errors quote it ("number 1.5"); nesting is bounded.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 10000   # Go's scanner: "exceeded max depth"
_WS = " \t\r\n"


class SyntaxErr(ValueError):
    """A body that is not JSON; the message is Go's."""


class Number(float):
    """A non-integer number, with the literal as the client wrote it."""

    text: str

    def __new__(cls, text: str) -> Number:
        value = super().__new__(cls, text)
        value.text = text
        return value


def _constant(name: str) -> Any:
    # NaN, Infinity, -Infinity: Go stops at their first character
    char = name[1] if name.startswith("-") else name[0]
    where = "in numeric literal" if name.startswith("-") else "looking for beginning of value"
    raise SyntaxErr(f"invalid character {quote_char(char)} {where}")


_DECODER = json.JSONDecoder(parse_float=Number, parse_constant=_constant)


def quote_char(c: str) -> str:
    """Go's quoteChar: the character in single quotes, escaped as strconv.Quote does."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c, ensure_ascii=False)[1:-1] + "'"


def loads(data: bytes, *, trailing: bool = False) -> Any:
    """The one JSON value in data. Content after it fails (moby's "unexpected content
    after JSON", as Decoder.More() sees it) unless trailing is set (a plain Decode)."""
    text = data.decode("utf-8", errors="replace")
    start = len(text) - len(text.lstrip(_WS))
    if start == len(text):
        raise SyntaxErr("unexpected EOF")
    try:
        value, end = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise SyntaxErr(_go_message(e, text)) from None
    except RecursionError:
        raise SyntaxErr("exceeded max depth") from None
    rest = text[end:].lstrip(_WS)
    if rest and not trailing and rest[0] not in "]}":
        raise SyntaxErr("unexpected content after JSON")
    return value


def _go_message(e: json.JSONDecodeError, text: str) -> str:
    pos = e.pos
    if pos >= len(text) or e.msg.startswith("Unterminated string"):
        return "unexpected EOF"
    char = quote_char(text[pos])
    msg = e.msg
    if msg.startswith("Expecting value") or msg.startswith("Unexpected UTF-8 BOM"):
        for literal in ("true", "false", "null"):
            if text[pos] == literal[0]:     # Go reads on until the literal goes wrong
                for i, want in enumerate(literal):
                    if pos + i >= len(text):
                        return "unexpected EOF"
                    if text[pos + i] != want:
                        return (f"invalid character {quote_char(text[pos + i])} in literal "
                                f"{literal} (expecting {quote_char(want)})")
        if text[pos - 1:pos] == "-":
            return f"invalid character {char} in numeric literal"
        return f"invalid character {char} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if msg.startswith("Expecting ','"):
        inside = "object key:value pair" if _innermost(text, pos) == "{" else "array element"
        return f"invalid character {char} after {inside}"
    if msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    if msg.startswith("Invalid \\escape") or msg.startswith("Invalid \\u"):
        return f"invalid character {quote_char(text[pos + 1:pos + 2] or ' ')} in string " \
               "escape code"
    return f"invalid character {char} looking for beginning of value"


def _innermost(text: str, pos: int) -> str:
    """The bracket open at pos ("{" or "["), outside strings."""
    stack: list[str] = []
    in_string = escaped = False
    for c in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def clean_string(s: str) -> str:
    """Lone surrogates (from "\\ud800" escapes) become U+FFFD, as in Go."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in s)
