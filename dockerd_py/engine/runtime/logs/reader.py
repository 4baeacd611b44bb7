"""Reading a container's log: history, tail, and follow across rotations.

`read_logs` serves `GET /containers/{id}/logs` from the files records.py
describes: it reads container.log.(N-1) ... .1 (decompressing the .gz ones),
container.log in order, joins P...F runs back into one message per line, and
with follow keeps reading the current file as conmon appends to it (woken by
inotify, polling without it), across rotations: the old file is read to its
end before the new one is opened. Blocking reads run in threads; the event
loop only schedules them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import io
import os
import time
from collections.abc import AsyncGenerator, Iterator

from ..inotify import IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_MOVED_TO, Inotify
from ..process import STDERR, STDOUT
from .records import Assembler, Message, format_timestamp, log_files, log_path

_BLOCK = 1 << 16
_TAIL_MARGIN = 256           # lines read above a tail's first message


# --- reading history ------------------------------------------------------------------

def _open(path: str) -> tuple[io.BufferedIOBase, str] | None:
    """The file (decompressed if it is a .gz) and its name: a rotated file compressed
    since it was listed is found under its new name."""
    for candidate in (path, path + ".gz") if not path.endswith(".gz") else (path,):
        try:
            if candidate.endswith(".gz"):
                return gzip.open(candidate, "rb"), candidate
            return open(candidate, "rb"), candidate
        except FileNotFoundError:
            continue
    return None


def _lines_forward(path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Complete lines of path between start and end (a trailing half line is dropped).
    end None: to the end of the file."""
    opened = _open(path)
    if opened is None:
        return
    f, name = opened
    if name != path:  # compressed meanwhile: offsets into the plain file mean nothing
        start, end = 0, None
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


def _tail_start(files: list[str], sizes: list[int | None], n: int,
                margin: int = _TAIL_MARGIN) -> tuple[int, int]:
    """(file index, offset) from which the last n messages can be read.

    Scans backwards past the (n+1)-th full ("F") record from the end, and `margin`
    lines more: a P run of one stream may be interleaved with records of the other,
    so the message that ends below the cut may have begun a little above it.
    (0, 0) when the logs hold fewer. A compressed file cannot be read backwards:
    the scan stops at its start (the reader keeps only the last n anyway)."""
    found = 0
    extra = -1
    for i in range(len(files) - 1, -1, -1):
        size = sizes[i]
        if size is None or files[i].endswith(".gz"):
            return i, 0
        pos, carry = size, b""
        try:
            f = open(files[i], "rb")
        except FileNotFoundError:  # compressed since it was listed
            return i, 0
        with f:
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
    sizes: list[int | None] = []
    for path in files:
        try:
            sizes.append(current_end if path == current else
                         None if path.endswith(".gz") else os.path.getsize(path))
        except FileNotFoundError:
            sizes.append(None)
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
