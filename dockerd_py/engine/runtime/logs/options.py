"""Log option values read as dockerd reads them: go-units sizes, Go's strconv and regexp.

dockerd hands the Go library's error to the client unchanged, so each parser
raises ValueError with Go's text ("invalid size: 'ten'", `strconv.Atoi: parsing
"x": invalid syntax`, "error parsing regexp: missing closing ): `(`"). Pure.
"""

from __future__ import annotations

import re

from ....dockerfile.golang import go_quote

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")
_INT = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _size(text: str, base: int) -> int:
    m = _SIZE.fullmatch(text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    if m.group(1).count(".") > 1:
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(m.group(1))}: invalid syntax")
    unit = (m.group(2) or "").lower()
    factor = base ** (" kmgtp".index(unit)) if unit else 1
    return int(float(m.group(1)) * factor)


def human_size(text: str) -> int:
    """go-units FromHumanSize: decimal units ("10k" = 10000), as max-size is read."""
    return _size(text, 1000)


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: binary units ("4m" = 4 MiB), as max-buffer-size is read."""
    return _size(text, 1024)


def atoi(text: str) -> int:
    """Go's strconv.Atoi: an optional sign and decimal digits, nothing else."""
    if not _INT.fullmatch(text):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"strconv.Atoi: parsing {go_quote(text)}: value out of range")
    return value


def parse_bool(text: str) -> bool:
    """Go's strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {go_quote(text)}: invalid syntax")


# Python's re accepts constructs Go's RE2 refuses; these are the ones met in practice.
_PERL_ONLY = re.compile(r"\(\?(?:<[=!]|[=!])")
_BACKREF = re.compile(r"\\[1-9]")


def check_regexp(text: str) -> None:
    """Refuses what Go's regexp.Compile refuses, with its wording (common cases)."""
    m = _PERL_ONLY.search(text)
    if m:
        raise ValueError("error parsing regexp: invalid or unsupported Perl syntax: "
                         f"`{m.group(0)[:3]}`")
    m = _BACKREF.search(text)
    if m:
        raise ValueError(f"error parsing regexp: invalid escape sequence: `{m.group(0)}`")
    try:
        re.compile(text)
    except re.error as e:
        raise ValueError(_go_regexp_error(text, e)) from None


def _go_regexp_error(text: str, e: re.error) -> str:
    msg, pos = e.msg, e.pos or 0
    if msg.startswith("missing ), unterminated subpattern") or msg == "unbalanced parenthesis":
        kind = "missing closing )" if msg.startswith("missing") else "unexpected )"
        return f"error parsing regexp: {kind}: `{text}`"
    if msg.startswith("unterminated character set"):
        return f"error parsing regexp: missing closing ]: `{text[pos:]}`"
    if msg == "nothing to repeat":
        return f"error parsing regexp: missing argument to repetition operator: `{text[pos]}`"
    if msg == "multiple repeat":
        return ("error parsing regexp: invalid nested repetition operator: "
                f"`{text[max(0, pos - 1):pos + 1]}`")
    return f"error parsing regexp: {msg}: `{text}`"
