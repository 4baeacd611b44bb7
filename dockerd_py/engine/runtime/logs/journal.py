"""The journald driver's side in the daemon: is the journal there, and reading it back.

conmon writes the entries (`-l journald`, sd_journal_sendv): one per line, with
MESSAGE (the line and its newline), PRIORITY (6 stdout, 3 stderr),
CONTAINER_ID_FULL, CONTAINER_ID, CONTAINER_NAME, CONTAINER_TAG,
SYSLOG_IDENTIFIER and CONTAINER_PARTIAL_MESSAGE=true for a line cut short. It
keeps writing while the daemon is down, as it does for log files.

`read_journal` has read_logs' contract (messages (stream, bytes, ts_ns); since,
until, tail, follow, timestamps, stop) and runs `journalctl -o export` on the
entries of one container. `journalctl --sync` first: journald answers it only
after the datagrams already queued are written, so what the container wrote
before the read (or before it exited) is all there.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import struct
import time
from collections.abc import AsyncGenerator
from typing import Any

from ....errors import InternalError
from ..process import STDERR, STDOUT
from .records import Message, format_timestamp

SOCKET = "/run/systemd/journal/socket"
_FIELDS = "MESSAGE,PRIORITY,CONTAINER_PARTIAL_MESSAGE"
_LINE_LIMIT = 1 << 20
_SYNC_TIMEOUT = 10.0


def enabled() -> bool:
    """journald listens on its socket (go-systemd's journal.Enabled, as dockerd checks)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(SOCKET)
        except OSError:
            return False
    return True


def _journalctl() -> str:
    path = shutil.which("journalctl")
    if path is None:
        raise InternalError("cannot read the journal: journalctl is not installed")
    return path


async def _sync() -> None:
    if not enabled():
        return
    proc = await asyncio.create_subprocess_exec(
        _journalctl(), "--sync", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.wait_for(proc.wait(), _SYNC_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()


def _entry(fields: dict[bytes, bytes]) -> tuple[int, bytes, int, bytes] | None:
    """(stream, message, ts_ns, cursor) of one exported entry."""
    try:
        ts = int(fields[b"__REALTIME_TIMESTAMP"]) * 1000
    except (KeyError, ValueError):
        return None
    data = fields.get(b"MESSAGE", b"")
    if data.endswith(b"\n"):  # conmon keeps the newline; dockerd's driver does not
        data = data[:-1]
    if fields.get(b"CONTAINER_PARTIAL_MESSAGE") != b"true":
        data += b"\n"
    stream = STDERR if fields.get(b"PRIORITY") == b"3" else STDOUT
    return stream, data, ts, fields.get(b"__CURSOR", b"")


async def _entries(out: asyncio.StreamReader
                   ) -> AsyncGenerator[tuple[int, bytes, int, bytes], None]:
    """Entries of journalctl's export format: KEY=value lines, or KEY, a 64-bit
    little-endian length and the bytes for binary values; a blank line ends one."""
    fields: dict[bytes, bytes] = {}
    while line := await out.readline():
        line = line[:-1] if line.endswith(b"\n") else line
        if not line:
            entry = _entry(fields)
            fields = {}
            if entry is not None:
                yield entry
            continue
        key, eq, value = line.partition(b"=")
        if not eq:
            size = struct.unpack("<Q", await out.readexactly(8))[0]
            value = (await out.readexactly(size + 1))[:-1]
        fields[key] = value
    if fields and (entry := _entry(fields)) is not None:
        yield entry


def _bound(ns: int, up: bool) -> str:
    """An ns bound as journalctl's @seconds with microseconds (entries carry µs)."""
    us = -(-ns // 1000) if up else ns // 1000
    return f"@{us // 1_000_000}.{us % 1_000_000:06d}"


async def read_journal(container_id: str, *, stdout: bool = True, stderr: bool = True,
                       since: int | None = None, until: int | None = None,
                       tail: int | None = None, follow: bool = False,
                       timestamps: bool = False, stop: asyncio.Event | None = None
                       ) -> AsyncGenerator[Message, None]:
    """The container's journal entries as read_logs gives its files' messages."""
    streams = tuple(s for s, on in ((STDOUT, stdout), (STDERR, stderr)) if on)
    match = [f"CONTAINER_ID_FULL={container_id}"]
    if since is not None:
        match.append(f"--since={_bound(since, True)}")
    if until is not None:
        match.append(f"--until={_bound(until, False)}")
    await _sync()
    following = follow and not (stop is not None and stop.is_set())
    cursor = b""
    lines = "all" if tail is None else str(max(tail, 0))

    def selected(stream: int, ts: int) -> bool:
        return stream in streams and (since is None or ts >= since) \
            and (until is None or ts <= until)

    async with _journal(match + ["--lines", lines] + (["--follow"] if following else [])
                        ) as out:
        entries = _entries(out)
        if following:
            entries = _until_stopped(entries, stop, until)
        async for stream, data, ts, seen in entries:
            cursor = seen  # where the drain after the stop takes over
            if selected(stream, ts):
                yield stream, format_timestamp(ts) + b" " + data if timestamps else data, ts
    if not following or (until is not None and time.time_ns() > until):
        return
    # Stopped: what the container wrote last may still be queued in journald.
    await _sync()
    rest = match + ([f"--after-cursor={cursor.decode()}"] if cursor else ["--lines", lines])
    async with _journal(rest) as out:
        async for stream, data, ts, _cursor in _entries(out):
            if selected(stream, ts):
                yield stream, format_timestamp(ts) + b" " + data if timestamps else data, ts


async def _until_stopped(entries: AsyncGenerator[tuple[int, bytes, int, bytes], None],
                         stop: asyncio.Event | None, until: int | None
                         ) -> AsyncGenerator[tuple[int, bytes, int, bytes], None]:
    """The entries, until stop is set or `until` has passed (following), or their end."""
    async with contextlib.aclosing(entries):
        while True:
            nxt = asyncio.ensure_future(anext(entries))
            waiters: list[asyncio.Future[Any]] = [nxt]
            if stop is not None:
                waiters.append(asyncio.ensure_future(stop.wait()))
            timeout = None if until is None else max(0.0, until / 1e9 - time.time())
            try:
                await asyncio.wait(waiters, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters[1:]:
                    w.cancel()
            if not nxt.done():
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
                return
            try:
                yield nxt.result()
            except StopAsyncIteration:
                return


@contextlib.asynccontextmanager
async def _journal(args: list[str]) -> AsyncGenerator[asyncio.StreamReader, None]:
    """journalctl's export output for args; the process ends with the block."""
    proc = await asyncio.create_subprocess_exec(
        _journalctl(), "--no-pager", "--quiet", "--output=export",
        f"--output-fields={_FIELDS}", *args, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=_LINE_LIMIT)
    assert proc.stdout is not None
    try:
        yield proc.stdout
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()
