"""Go notations the Dockerfile language inherits from the reference's implementation.

The reference is written in Go, and its readers and messages use Go's standard
library: what `unicode.IsSpace` calls a space, how `%q` quotes a string in an error,
how `time.ParseDuration` and `strconv.ParseInt` read numbers and word their errors.
Each function here does what its Go counterpart does, message included.
"""

from __future__ import annotations

import re

# unicode.IsSpace
SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
        "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def is_space(ch: str) -> bool:
    return ch != "" and ch in SPACE


def lstrip(s: str) -> str:
    """strings.TrimLeftFunc(s, unicode.IsSpace)"""
    return s.lstrip(SPACE)


_QUOTED = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
           "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s: str) -> str:
    """strconv.Quote (the `%q` verb) for a string."""
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch in _QUOTED:
            out.append(_QUOTED[ch])
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_INT64_LIMIT = 1 << 63


def parse_duration(text: str, *, bounded: bool = True) -> int:
    """time.ParseDuration, in nanoseconds; ValueError with Go's message.

    Fractions are computed as Go computes them (in float64). `bounded=False` drops Go's
    int64 range checks: `--change` lines have always been read without them."""
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
            if bounded and whole > _INT64_LIMIT // 10:
                raise invalid
            whole = whole * 10 + int(s[i])
            if bounded and whole > _INT64_LIMIT:
                raise invalid
            i += 1
        had_whole = i > 0
        s = s[i:]
        fraction, scale, had_fraction = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            i, overflow = 0, False
            while i < len(s) and "0" <= s[i] <= "9":
                if not overflow:  # further digits only add precision Go does not keep
                    if fraction > (_INT64_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        nxt = fraction * 10 + int(s[i])
                        if nxt > _INT64_LIMIT:
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
        if bounded and whole > _INT64_LIMIT // unit:
            raise invalid
        value = whole * unit
        if fraction > 0:
            value += int(float(fraction) * (float(unit) / scale))
            if bounded and value > _INT64_LIMIT:
                raise invalid
        total += value
        if bounded and total > _INT64_LIMIT:
            raise invalid
    if negative:
        return -total
    if bounded and total > _INT64_LIMIT - 1:
        raise invalid
    return total


def parse_int32(text: str) -> int:
    """strconv.ParseInt(text, 10, 32), with its error text."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value
