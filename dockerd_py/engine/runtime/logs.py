"""Container logs: written by conmon in k8s-file format, served with json-file semantics.

conmon (monitor.py) writes `<log dir>/container.log`, one record per line:

    2026-11-29T01:18:34.800930226+00:00 stdout F out1        F: content ended with "\\n"
    2026-11-29T01:18:34.800930226+00:00 stdout P partial     P: no newline yet (conmon adds one)

Docker's json-file driver keeps stdout and stderr apart, rotates at `max-size`
keeping `max-file` files, and `docker logs` filters by since/until/tail and can
follow. We keep conmon's format (rewriting it would cost a process or a pipe hop
per container) and give the same behaviour:

  writing   conmon appends; the daemon rotates. `LogRotator` notices (inotify
            IN_MODIFY) that container.log reached max-size, renames
            container.log.(i) -> .(i+1) and container.log -> .1, and asks conmon to
            reopen (ctl type 2), which starts a new empty container.log. Records
            written between the rename and the reopen land at the end of .1, so
            nothing is lost or reordered. With max-file 1 the reopen alone
            truncates, as json-file does.
  reading   `read_logs` reads container.log.(N-1) ... .1, container.log in order,
            joins P...F runs back into one message per line, and follows the
            current file across rotations.

Messages are (stream, bytes, timestamp_ns) with stream STDOUT=1 or STDERR=2, as
Docker's stdcopy numbers them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime
import logging
import os
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass

from ...errors import InvalidParameter
from .inotify import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Inotify
from .process import STDERR, STDOUT

log = logging.getLogger(__name__)

LOG_NAME = "container.log"
Message = tuple[int, bytes, int]

_STREAMS = {b"stdout": STDOUT, b"stderr": STDERR}
_MAX_MESSAGE = 1 << 20        # a P run longer than this is emitted in pieces
_BLOCK = 1 << 16
_TAIL_MARGIN = 256           # lines read above a tail's first message
_EPOCH_DAYS = datetime.date(1970, 1, 1).toordinal()


def log_path(log_dir: str) -> str:
    """The file conmon writes (its -l k8s-file:PATH)."""
    return os.path.join(log_dir, LOG_NAME)


def log_files(log_dir: str) -> list[str]:
    """Existing log files, oldest first: container.log.N ... .1, container.log."""
    rotated = []
    prefix = LOG_NAME + "."
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(log_dir):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                rotated.append((int(name[len(prefix):]), name))
    files = [os.path.join(log_dir, name) for _, name in sorted(rotated, reverse=True)]
    current = log_path(log_dir)
    if os.path.exists(current):
        files.append(current)
    return files


# --- options --------------------------------------------------------------------------

@dataclass(frozen=True)
class RotationPolicy:
    max_size: int | None = None   # bytes; None: never rotate (json-file's default)
    max_file: int = 1


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.IGNORECASE)
_KNOWN_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env",
               "env-regex", "tag", "mode", "max-buffer-size"}


def parse_size(value: str) -> int:
    """Docker's RAMInBytes: "10m" = 10 MiB; k/m/g/t/p, optional "b"/"ib"."""
    m = _SIZE.match(value.strip())
    if not m:
        raise InvalidParameter(f"invalid size: '{value}'")
    mult = 1024 ** " kmgtp".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * mult)


def parse_log_opts(opts: dict[str, str]) -> RotationPolicy:
    """json-file `--log-opt`s as dockerd validates them."""
    for key in opts:
        if key not in _KNOWN_OPTS:
            raise InvalidParameter(f"unknown log opt '{key}' for json-file log driver")
    max_size = parse_size(opts["max-size"]) if opts.get("max-size") else None
    if max_size is not None and max_size <= 0:
        max_size = None
    max_file = 1
    if "max-file" in opts:
        try:
            max_file = int(opts["max-file"])
        except ValueError:
            raise InvalidParameter(f"invalid max-file: '{opts['max-file']}'") from None
        if max_file < 1:
            raise InvalidParameter("max-file cannot be less than 1")
        if max_file > 1 and max_size is None:
            raise InvalidParameter("max-file can only be set when max-size is set")
    return RotationPolicy(max_size, max_file)


# --- parsing --------------------------------------------------------------------------

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


# --- reading history ------------------------------------------------------------------

def _lines_forward(path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Complete lines of path between start and end (a trailing half line is dropped)."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        remaining = end - start if end is not None else None
        carry = b""
        while remaining is None or remaining > 0:
            block = f.read(_BLOCK if remaining is None else min(_BLOCK, remaining))
            if not block:
                break
            if remaining is not None:
                remaining -= len(block)
            lines = (carry + block).split(b"\n")
            carry = lines.pop()
            yield from lines


def _tail_start(files: list[str], sizes: list[int], n: int,
                margin: int = _TAIL_MARGIN) -> tuple[int, int]:
    """(file index, offset) from which the last n messages can be read.

    Scans backwards past the (n+1)-th full ("F") record from the end, and `margin`
    lines more: a P run of one stream may be interleaved with records of the other,
    so the message that ends below the cut may have begun a little above it.
    (0, 0) when the logs hold fewer."""
    found = 0
    extra = -1
    for i in range(len(files) - 1, -1, -1):
        pos, carry = sizes[i], b""
        with open(files[i], "rb") as f:
            while pos > 0:
                step = min(_BLOCK, pos)
                pos -= step
                f.seek(pos)
                lines = (f.read(step) + carry).split(b"\n")
                lines.pop()  # after the last newline: nothing, or an unfinished record
                head = lines.pop(0) if pos > 0 and lines else None  # may start before pos
                start = pos if head is None else pos + len(head) + 1
                starts = []
                for line in lines:
                    starts.append(start)
                    start += len(line) + 1
                for line, line_start in zip(reversed(lines), reversed(starts), strict=True):
                    if extra >= 0:
                        extra -= 1
                        if extra < 0:
                            return i, line_start
                    elif _is_full(line):
                        found += 1
                        if found > n:
                            extra = margin
                carry = b"" if head is None else head + b"\n"
    return 0, 0


def _is_full(line: bytes) -> bool:
    parts = line.split(b" ", 3)
    return len(parts) >= 3 and parts[2] == b"F"


def _history(log_dir: str, tail: int | None, current_end: int) -> Iterator[list[Message]]:
    """Messages of all files (the current one up to current_end), in batches."""
    files = log_files(log_dir)
    current = log_path(log_dir)
    sizes = []
    for path in files:
        try:
            sizes.append(current_end if path == current else os.path.getsize(path))
        except FileNotFoundError:
            sizes.append(0)
    if tail == 0:
        return
    first, offset = (0, 0) if tail is None else _tail_start(files, sizes, tail)
    asm = Assembler()
    keep: collections.deque[Message] | None = (
        collections.deque(maxlen=tail) if tail is not None else None)
    batch: list[Message] = []
    for i in range(first, len(files)):
        start = offset if i == first else 0
        for line in _lines_forward(files[i], start, sizes[i]):
            for msg in asm.feed(line):
                if keep is not None:
                    keep.append(msg)
                else:
                    batch.append(msg)
            if len(batch) >= 512:
                yield batch
                batch = []
    for msg in asm.flush():
        if keep is not None:
            keep.append(msg)
        else:
            batch.append(msg)
    if keep is not None:
        batch = list(keep)
    if batch:
        yield batch


# --- following ------------------------------------------------------------------------

class _Follower:
    """Reads the current log file as it grows, across rotations."""

    def __init__(self, log_dir: str) -> None:
        self.path = log_path(log_dir)
        self.log_dir = log_dir
        self.fd = -1
        self.carry = b""
        self.asm = Assembler()

    def open(self) -> int:
        """Opens the current file; returns its size (where history reading stops)."""
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            self.fd = -1
            return 0
        end = os.fstat(self.fd).st_size
        # Stop history at the end of the last complete record; a record being
        # written right now is read by the follower.
        start = max(0, end - _BLOCK)
        tail = os.pread(self.fd, end - start, start)
        end = start + tail.rfind(b"\n") + 1 if b"\n" in tail else start
        os.lseek(self.fd, end, os.SEEK_SET)
        return end

    def read(self) -> list[Message]:
        out: list[Message] = []
        while True:
            if self.fd < 0:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    break
            block = os.read(self.fd, _BLOCK)
            if block:
                lines = (self.carry + block).split(b"\n")
                self.carry = lines.pop()
                for line in lines:
                    out.extend(self.asm.feed(line))
                continue
            if not self._rotated():
                break
            # Rotated: conmon has closed the old file (it renames the new one in
            # only after closing), and the loop above read it to its end.
            os.close(self.fd)
            self.fd = -1
            self.carry = b""
        out.extend(self.asm.flush())
        return out

    def _rotated(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed away, conmon not reopened yet: keep the old one
        return st.st_ino != os.fstat(self.fd).st_ino

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _select(msgs: list[Message], streams: tuple[int, ...], since: int | None,
            until: int | None) -> tuple[list[Message], bool]:
    """Messages to send, and whether `until` has been passed (reading can stop)."""
    out: list[Message] = []
    for msg in msgs:
        if until is not None and msg[2] > until:
            return out, True
        if msg[0] in streams and (since is None or msg[2] >= since):
            out.append(msg)
    return out, False


def _render(msg: Message, timestamps: bool) -> Message:
    if timestamps:
        return msg[0], format_timestamp(msg[2]) + b" " + msg[1], msg[2]
    return msg


async def read_logs(container_log_dir: str, *, stdout: bool = True, stderr: bool = True,
                    since: int | None = None, until: int | None = None,
                    tail: int | None = None, follow: bool = False, timestamps: bool = False,
                    stop: asyncio.Event | None = None) -> AsyncGenerator[Message, None]:
    """The container's log as (stream, bytes, timestamp_ns), like `GET /containers/{id}/logs`.

    since/until: ns since the epoch (inclusive), None for no bound. tail: the last
    N messages (before the since filter, as dockerd), None for all. timestamps:
    prefix each message with its RFC 3339 UTC time and a space. follow: keep
    reading as the container writes, until `until` passes or `stop` is set (the
    container exited: what is left is read, then the iterator ends) or the
    consumer stops iterating.
    """
    streams = tuple(s for s, on in ((STDOUT, stdout), (STDERR, stderr)) if on)
    follower = _Follower(container_log_dir)
    end = follower.open()
    try:
        history = _history(container_log_dir, tail, end)
        while (batch := await asyncio.to_thread(next, history, None)) is not None:
            selected, done = _select(batch, streams, since, until)
            for msg in selected:
                yield _render(msg, timestamps)
            if done:
                return
        if not follow:
            return
        batches = _follow(follower, container_log_dir, until, stop)
        async with contextlib.aclosing(batches):
            async for batch in batches:
                selected, done = _select(batch, streams, since, until)
                for msg in selected:
                    yield _render(msg, timestamps)
                if done:
                    return
    finally:
        follower.close()


async def _follow(follower: _Follower, log_dir: str, until: int | None,
                  stop: asyncio.Event | None) -> AsyncGenerator[list[Message], None]:
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    notify: Inotify | None = None
    try:
        notify = Inotify()
        notify.add_watch(log_dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)
    except OSError:  # no inotify, or no log directory yet: poll
        if notify is not None:
            notify.close()
        notify = None
    if notify is not None:
        watcher = notify

        def on_events() -> None:
            watcher.read_events()
            wake.set()

        loop.add_reader(watcher.fd, on_events)
    try:
        while True:
            wake.clear()
            batch = await asyncio.to_thread(follower.read)
            if batch:
                yield batch
            if stop is not None and stop.is_set():
                if rest := await asyncio.to_thread(follower.read):
                    yield rest
                return
            timeout = 1.0 if notify is not None else 0.1
            if until is not None:
                left = until / 1e9 - time.time()
                if left <= 0:
                    return
                timeout = min(timeout, left)
            waiters = [asyncio.ensure_future(wake.wait())]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waiters, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()
    finally:
        if notify is not None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(notify.fd)
            notify.close()


# --- writing side: rotation -----------------------------------------------------------

def rotate(log_dir: str, max_file: int, reopen: Callable[[], None]) -> None:
    """Shifts container.log -> .1 -> .2 ... keeping max_file files, then reopen()
    (conmon starts a new container.log). max_file 1: reopen alone truncates."""
    if max_file > 1:
        base = log_path(log_dir)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{base}.{max_file - 1}")
        for i in range(max_file - 2, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.rename(f"{base}.{i}", f"{base}.{i + 1}")
        try:
            os.rename(base, f"{base}.1")
        except FileNotFoundError:
            return  # a rotation is already waiting for its reopen
    reopen()


class LogRotator:
    """Rotates the logs of running containers at their max-size (one inotify fd).

    add(key, log_dir, policy, reopen) when a container with a max-size starts (or
    is found running after a daemon restart: add() checks the size at once);
    discard(key) when it stops. reopen is Monitor.reopen_log bound to the process.
    """

    def __init__(self) -> None:
        self._notify: Inotify | None = None
        self._entries: dict[str, tuple[str, RotationPolicy, Callable[[], None]]] = {}
        self._wds: dict[int, str] = {}
        self._keys_wd: dict[str, int] = {}

    def add(self, key: str, log_dir: str, policy: RotationPolicy,
            reopen: Callable[[], None]) -> None:
        if policy.max_size is None:
            return
        if self._notify is None:
            self._notify = Inotify()
            asyncio.get_running_loop().add_reader(self._notify.fd, self._on_events)
        self.discard(key)
        self._entries[key] = (log_dir, policy, reopen)
        wd = self._notify.add_watch(log_dir, IN_MODIFY | IN_MOVED_TO)
        self._wds[wd] = key
        self._keys_wd[key] = wd
        self.check(key)

    def discard(self, key: str) -> None:
        self._entries.pop(key, None)
        wd = self._keys_wd.pop(key, None)
        if wd is not None and self._notify is not None:
            self._wds.pop(wd, None)
            self._notify.rm_watch(wd)

    def check(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        log_dir, policy, reopen = entry
        assert policy.max_size is not None
        try:
            size = os.path.getsize(log_path(log_dir))
        except FileNotFoundError:
            return
        if size >= policy.max_size:
            try:
                rotate(log_dir, policy.max_file, reopen)
            except Exception as e:  # a stopped monitor: nothing more will be written
                log.warning("log rotation of %s failed: %s", key, e)

    def _on_events(self) -> None:
        assert self._notify is not None
        keys = {self._wds.get(wd) for wd, _mask, name in self._notify.read_events()
                if name == LOG_NAME}
        for key in keys:
            if key is not None:
                self.check(key)

    def close(self) -> None:
        if self._notify is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._notify.fd)
            self._notify.close()
            self._notify = None
        self._entries.clear()
        self._wds.clear()
        self._keys_wd.clear()
