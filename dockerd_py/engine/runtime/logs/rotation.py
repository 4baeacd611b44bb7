"""Log rotation: json-file's max-size/max-file on top of conmon's single log file.

Docker's json-file driver rotates at `max-size` keeping `max-file` files; conmon
2.1.6 can only truncate. So the daemon rotates: `LogRotator` notices (inotify
IN_MODIFY) that container.log reached max-size, renames container.log.(i) ->
.(i+1) and container.log -> .1, and asks conmon to reopen (ctl type 2), which
starts a new empty container.log. Records written between the rename and the
reopen land at the end of .1, so nothing is lost or reordered. With max-file 1
the reopen alone truncates, as json-file does.

Contract: `parse_log_opts` validates json-file `--log-opt`s as dockerd does
(InvalidParameter with dockerd's wording) into a `RotationPolicy`;
`rotate(log_dir, max_file, reopen)` performs one rotation; `LogRotator`
rotates the logs of running containers (add when one starts, discard when it
stops), one inotify descriptor for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from ....errors import InvalidParameter
from ..inotify import IN_MODIFY, IN_MOVED_TO, Inotify
from .records import LOG_NAME, log_path

log = logging.getLogger(__name__)

# --- options (json-file --log-opt) ---------------------------------------------------

@dataclass(frozen=True)
class RotationPolicy:
    max_size: int | None = None   # bytes; None: never rotate (json-file's default)
    max_file: int = 1


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?", re.IGNORECASE | re.ASCII)
_KNOWN_OPTS = {"max-size", "max-file", "compress", "labels", "labels-regex", "env",
               "env-regex", "tag", "mode", "max-buffer-size"}


def parse_size(value: str) -> int:
    """Docker's RAMInBytes: "10m" = 10 MiB; k/m/g/t/p, optional "b"/"ib"."""
    m = _SIZE.fullmatch(value.strip())
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


# --- rotation -----------------------------------------------------------------------

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
