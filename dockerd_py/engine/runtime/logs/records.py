"""The log files and their record format: conmon's k8s-file (CONMON-NOTES §6).

Files in a container's log directory: `container.log`, which conmon appends to
(its `-l k8s-file:PATH`), and after rotations `container.log.1` (newest) up to
`container.log.N`, each possibly gzip-compressed (`.N.gz`). One record per line:

    2026-11-29T01:18:34.800930226+00:00 stdout F out1        F: content ended with "\\n"
    2026-11-29T01:18:34.800930226+00:00 stdout P partial     P: no newline yet (conmon adds one)

Contract: `parse_record` reads one line (None for anything malformed, which
readers skip); `Assembler` joins each stream's P...F runs back into the bytes
the container wrote, one message per line; a message is (stream, bytes,
timestamp_ns) with stream STDOUT=1 or STDERR=2, as Docker's stdcopy numbers
them. Timestamps are converted to ns since the epoch and printed back in UTC
(`format_timestamp`, as `docker logs -t`). Pure: no I/O except listing files.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from collections.abc import Iterator

from ..process import STDERR, STDOUT

LOG_NAME = "container.log"
Message = tuple[int, bytes, int]

_STREAMS = {b"stdout": STDOUT, b"stderr": STDERR}
_MAX_MESSAGE = 1 << 20        # a P run longer than this is emitted in pieces
_EPOCH_DAYS = datetime.date(1970, 1, 1).toordinal()


def log_path(log_dir: str) -> str:
    """The file conmon writes (its -l k8s-file:PATH)."""
    return os.path.join(log_dir, LOG_NAME)


def log_files(log_dir: str) -> list[str]:
    """Existing log files, oldest first: container.log.N ... .1, container.log.

    A rotated file may be gzip-compressed (container.log.N.gz, the compress
    option); while .1 is being compressed both exist, and the plain one is taken."""
    rotated: dict[int, str] = {}
    prefix = LOG_NAME + "."
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(log_dir):
            if not name.startswith(prefix):
                continue
            number = name[len(prefix):]
            if number.endswith(".gz"):
                number = number[:-3]
                if number.isdigit():
                    rotated.setdefault(int(number), name)
            elif number.isdigit():
                rotated[int(number)] = name
    files = [os.path.join(log_dir, rotated[i]) for i in sorted(rotated, reverse=True)]
    current = log_path(log_dir)
    if os.path.exists(current):
        files.append(current)
    return files


# --- records ------------------------------------------------------------------------

_ts_cache: dict[bytes, int] = {}


def parse_timestamp(ts: bytes) -> int:
    """k8s-file timestamp (RFC 3339, 9-digit fraction, ±HH:MM or Z) -> ns since epoch."""
    seconds_key = ts[:19]
    base = _ts_cache.get(seconds_key)
    if base is None:
        date = datetime.date(int(ts[0:4]), int(ts[5:7]), int(ts[8:10]))
        base = ((date.toordinal() - _EPOCH_DAYS) * 86400 + int(ts[11:13]) * 3600
                + int(ts[14:16]) * 60 + int(ts[17:19]))
        if len(_ts_cache) > 4096:
            _ts_cache.clear()
        _ts_cache[seconds_key] = base
    rest = ts[19:]
    frac = 0
    if rest[:1] == b".":
        end = 1
        while end < len(rest) and 48 <= rest[end] <= 57:
            end += 1
        digits = rest[1:end]
        frac = int(digits[:9].ljust(9, b"0")) if digits else 0
        rest = rest[end:]
    offset = 0
    if rest[:1] in (b"+", b"-"):
        offset = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
        if rest[:1] == b"-":
            offset = -offset
    return (base - offset) * 1_000_000_000 + frac


def format_timestamp(ns: int) -> bytes:
    """RFC 3339 with 9 fractional digits in UTC, as `docker logs -t` prints it."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    return b"%04d-%02d-%02dT%02d:%02d:%02d.%09dZ" % (
        t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, frac)


def parse_record(line: bytes) -> tuple[int, int, bool, bytes] | None:
    """One record line (without its final newline) -> (stream, ts_ns, full, content)."""
    try:
        ts, stream, tag, content = line.split(b" ", 3)
    except ValueError:
        if line.count(b" ") == 2:  # an empty partial: "<ts> stdout P"
            ts, stream, tag = line.split(b" ")
            content = b""
        else:
            return None
    s = _STREAMS.get(stream)
    if s is None or tag not in (b"F", b"P"):
        return None
    try:
        ns = parse_timestamp(ts)
    except (ValueError, IndexError):
        return None
    return s, ns, tag == b"F", content


class Assembler:
    """Joins P...F records of one stream into one message (pure, no I/O).

    A joined message carries the time of its last record, when the line was
    complete: message times then never go backwards, which until/since rely on."""

    def __init__(self) -> None:
        self._pending: dict[int, bytearray] = {}
        self._last: dict[int, int] = {}  # time of the latest P record per stream

    def feed(self, line: bytes) -> Iterator[Message]:
        record = parse_record(line)
        if record is None:
            return
        stream, ns, full, content = record
        pending = self._pending.get(stream)
        if full:
            if pending is not None:
                del self._pending[stream]
                pending += content
                pending += b"\n"
                yield stream, bytes(pending), ns
            else:
                yield stream, content + b"\n", ns
            return
        if pending is None:
            pending = self._pending[stream] = bytearray()
        pending += content
        self._last[stream] = ns
        if len(pending) >= _MAX_MESSAGE:
            del self._pending[stream]
            yield stream, bytes(pending), ns

    def flush(self) -> Iterator[Message]:
        """Partial lines still open (end of file in follow mode, or the very end)."""
        pending = sorted(self._pending.items(), key=lambda item: self._last[item[0]])
        self._pending.clear()
        for stream, data in pending:
            if data:
                yield stream, bytes(data), self._last[stream]
