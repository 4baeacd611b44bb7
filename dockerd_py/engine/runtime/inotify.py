"""inotify through libc (ctypes): the runtime's way to hear about files without polling.

Contract: `Inotify()` opens one non-blocking, close-on-exec descriptor (OSError
when the kernel or libc has no inotify: callers fall back to polling).
`add_watch(dir, mask)` returns a watch descriptor; `read_events()` drains every
queued event as (wd, mask, name) and returns [] when none is queued, so it is
meant to be called from an event loop reader on `fd`. `IN_IGNORED` arrives when
a watch ends (its directory removed, or rm_watch). Users: the exit watcher
(exits.py: conmon's exit files) and the container logs (follow, rotation).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from typing import Any

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_IGNORED = 0x8000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_EVENT = struct.Struct("iIII")


class Inotify:
    """A non-blocking inotify descriptor: add_watch, then read_events when readable."""

    _libc: Any = None

    def __init__(self) -> None:
        if Inotify._libc is None:
            Inotify._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6",
                                        use_errno=True)
        fd = Inotify._libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.fd: int = fd

    def fileno(self) -> int:
        return self.fd

    def add_watch(self, path: str, mask: int) -> int:
        wd = Inotify._libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return int(wd)

    def rm_watch(self, wd: int) -> None:
        Inotify._libc.inotify_rm_watch(self.fd, wd)

    def read_events(self) -> list[tuple[int, int, str]]:
        """(wd, mask, name) for every queued event; [] when none."""
        events: list[tuple[int, int, str]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return events
            off = 0
            while off < len(buf):
                wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
                raw = buf[off + _EVENT.size: off + _EVENT.size + length]
                events.append((wd, mask, os.fsdecode(raw.rstrip(b"\0"))))
                off += _EVENT.size + length

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
