"""Timestamps: the RFC 3339 times the daemon records (`parse_time`, `rfc3339_nanos`), and
those the API accepts (`since`, `until` in events and filters).

Like dockerd's GetTimestamp: a Go duration ("10m", "1h30m") means that long
before now; RFC 3339 dates with or without time/zone are accepted; anything
else must be unix seconds with an optional fraction ("1700000000.000000001").
"""

from __future__ import annotations

import datetime
import re
import time

from ..errors import InvalidParameter

# fullmatch, ASCII digits: as Go (`$` would pass a final "\n", `\d` other scripts' digits)
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h))+", re.ASCII)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", re.ASCII)
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
# dockerd's other layouts, beyond full RFC 3339 times: no seconds or no zone (local time).
_FORMATS = ("%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H", "%Y-%m-%d")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d+))?"
                      r"([Zz]|[+-]\d\d:\d\d)", re.ASCII)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def rfc3339_nanos(value: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time ("Z" or an offset; any fraction,
    kept to the nanosecond as Go does); ValueError when `value` is not one."""
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    date, clock, fraction, zone = m.groups()
    zone = "+00:00" if zone in ("Z", "z") else zone
    when = datetime.datetime.fromisoformat(f"{date}T{clock}{zone}")
    # Integer arithmetic: a float timestamp cannot hold nanoseconds at today's epoch.
    whole = (when - _EPOCH) // datetime.timedelta(seconds=1)
    return whole * 1_000_000_000 + int((fraction or "").ljust(9, "0")[:9])


def _digits(s: str) -> bool:
    """Go's digits: ASCII only (str.isdigit() also takes "²" and other scripts')."""
    return s.isascii() and s.isdigit()


def parse_time(value: str) -> float:
    """Seconds since the epoch of a recorded RFC 3339 time; 0.0 for "" or a value that
    is not one (records from older versions may lack a time)."""
    try:
        return rfc3339_nanos(value) / 1_000_000_000
    except ValueError:
        return 0.0


def parse_timestamp(value: str, now: float | None = None) -> float:
    """Seconds since the epoch."""
    value = value.strip()
    now = time.time() if now is None else now
    if _DURATION.fullmatch(value):
        return now - sum(float(n) * _UNIT[u] for n, u in _PART.findall(value))
    if "-" in value[1:] or "T" in value:
        try:
            return rfc3339_nanos(value) / 1_000_000_000
        except ValueError:
            pass
        text = value.replace("Z", "+0000").replace("z", "+0000")
        text = re.sub(r"([+-]\d\d):(\d\d)$", r"\1\2", text)
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # Python parses at most microseconds
        for fmt in _FORMATS:
            try:
                parsed = datetime.datetime.strptime(text, fmt)
            except ValueError:
                continue
            return parsed.timestamp()  # naive values are local time, as in dockerd
        raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
    secs, _, frac = value.partition(".")
    if not _digits(secs.lstrip("-")) or (frac and not _digits(frac)):
        raise InvalidParameter(f'failed to parse value as time or duration: "{value}"')
    return int(secs) + (int(frac) / 10 ** len(frac) if frac else 0.0)


def to_nanos(value: str, now: float | None = None) -> int:
    if "." in value and _digits(value.replace(".", "", 1)):
        secs, frac = value.split(".")
        return int(secs) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
    try:
        return rfc3339_nanos(value.strip())  # exact, where a float would round
    except ValueError:
        return int(parse_timestamp(value, now) * 1_000_000_000)
