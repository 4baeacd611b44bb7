"""Exit detection: conmon's exit files, watched with inotify and backed by pidfds.

conmon writes a process's exit status as decimal text (128+signal when killed)
to its exit file once the process is gone and its output drained, whether or not
anyone listens; an empty `oom` file beside it (in the persist dir) marks an OOM
kill. Which file belongs to which process is the monitor's layout (monitor.py):
callers pass the path.

Contract:
    exit_status(proc, path)   the exit if it happened, also while the daemon was
                              down; None while the monitor runs. A monitor gone
                              without an exit file reports LOST_EXIT_CODE.
    ExitWatcher.wait(proc, path)
                              resolves with that status once it exists; at once
                              if it already does. Many waiters share one future.
    ExitWatcher.forget(proc, path)
                              resolves a waiter early (process removed).
    end_conmon(proc)          waits briefly for a monitor to finish, then kills it.

How: one inotify descriptor for all containers, woken by conmon's rename of the
exit file into the shared exits directory (an exec's exit file is in its own
persist dir, watched while someone waits), no polling. A pidfd on the conmon
process backs it up, so a monitor that dies without writing an exit file
(SIGKILLed) is reported instead of waited on forever. Without inotify the
watcher polls every 50 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from .inotify import IN_CLOSE_WRITE, IN_IGNORED, IN_MOVED_TO, Inotify
from .probes import conmon_alive
from .process import LOST_EXIT_CODE, ExitStatus, Process

log = logging.getLogger(__name__)


def read_exit(path: str, persist_dir: str) -> ExitStatus | None:
    """The status in exit file `path` (OOM from `<persist_dir>/oom`); None if absent."""
    try:
        with open(path, "rb") as f:
            text = f.read().strip()
            finished = os.fstat(f.fileno()).st_mtime_ns
    except FileNotFoundError:
        return None
    try:
        code = int(text)
    except ValueError:
        return ExitStatus(LOST_EXIT_CODE, finished, False, f"bad exit file {text[:40]!r}")
    oom = os.path.exists(os.path.join(persist_dir, "oom"))
    return ExitStatus(code if code >= 0 else LOST_EXIT_CODE, finished, oom,
                      "" if code >= 0 else "monitor reported no exit code")


def exit_status(proc: Process, path: str) -> ExitStatus | None:
    """The exit, if it happened (also while the daemon was down); None if running.

    A monitor that is gone without an exit file reports LOST_EXIT_CODE."""
    status = read_exit(path, proc.persist_dir)
    if status is None and not conmon_alive(proc):
        status = read_exit(path, proc.persist_dir) or ExitStatus(
            LOST_EXIT_CODE, time.time_ns(), False,
            "monitor exited without recording the exit status")
    return status


class ExitWatcher:
    """Futures for the exits of monitored processes, keyed by exit file."""

    def __init__(self) -> None:
        self._inotify: Inotify | None = None
        self._wds: dict[str, int] = {}           # watched dir -> wd
        self._dirs: dict[int, str] = {}          # wd -> watched dir
        self._waiters: dict[str, tuple[Process, asyncio.Future[ExitStatus]]] = {}
        self._pidfds: dict[str, int] = {}        # exit file -> pidfd of its conmon
        self._poller: asyncio.Task[None] | None = None

    def start(self, exits_dir: str) -> None:
        """Begins watching; exits_dir (shared by all containers) stays watched."""
        loop = asyncio.get_running_loop()
        try:
            self._inotify = Inotify()
        except OSError as e:
            log.warning("inotify unavailable (%s); polling exit files", e)
            self._poller = loop.create_task(self._poll())
            return
        loop.add_reader(self._inotify.fd, self._on_inotify)
        self._watch_dir(exits_dir)

    async def close(self) -> None:
        """Stops watching; pending waits are cancelled."""
        loop = asyncio.get_running_loop()
        if self._inotify is not None:
            loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        for path in list(self._pidfds):
            self._drop_pidfd(path)
        for _, fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        self._wds.clear()
        self._dirs.clear()

    async def wait(self, proc: Process, path: str) -> ExitStatus:
        """Returns when proc has exited (at once if it already has)."""
        entry = self._waiters.get(path)
        if entry is None:
            fut: asyncio.Future[ExitStatus] = asyncio.get_running_loop().create_future()
            entry = self._waiters[path] = (proc, fut)
            if self._inotify is not None:
                self._watch_dir(os.path.dirname(path))
            self._watch_pid(path, proc)
            self._check(path)  # it may have exited before the watch was in place
        return await asyncio.shield(entry[1])

    def forget(self, proc: Process, path: str) -> None:
        """Stops watching proc; a waiter gets its exit, or LOST_EXIT_CODE "removed"."""
        entry = self._waiters.pop(path, None)
        self._drop_pidfd(path)
        if proc.kind == "exec":
            self._unwatch_dir(os.path.dirname(path))
        if entry is not None and not entry[1].done():
            entry[1].set_result(exit_status(proc, path) or ExitStatus(
                LOST_EXIT_CODE, time.time_ns(), False, "removed"))

    def _check(self, path: str) -> None:
        entry = self._waiters.get(path)
        if entry is None:
            return
        proc, fut = entry
        status = exit_status(proc, path)
        if status is None:
            return
        del self._waiters[path]
        self._drop_pidfd(path)
        if proc.kind == "exec":
            self._unwatch_dir(os.path.dirname(path))
        if not fut.done():
            fut.set_result(status)

    def _watch_dir(self, d: str) -> None:
        if self._inotify is None or d in self._wds:
            return
        try:
            wd = self._inotify.add_watch(d, IN_MOVED_TO | IN_CLOSE_WRITE)
        except OSError as e:
            log.warning("cannot watch %s: %s", d, e)
            return
        self._wds[d] = wd
        self._dirs[wd] = d

    def _unwatch_dir(self, d: str) -> None:
        wd = self._wds.pop(d, None)
        if wd is not None and self._inotify is not None:
            self._dirs.pop(wd, None)
            self._inotify.rm_watch(wd)

    def _on_inotify(self) -> None:
        assert self._inotify is not None
        for wd, mask, name in self._inotify.read_events():
            if mask & IN_IGNORED:
                d = self._dirs.pop(wd, None)
                if d is not None:
                    self._wds.pop(d, None)
                continue
            d = self._dirs.get(wd)
            if d is not None and name:
                self._check(os.path.join(d, name))

    def _watch_pid(self, path: str, proc: Process) -> None:
        if not hasattr(os, "pidfd_open") or not proc.conmon_pid:
            return
        try:
            fd = os.pidfd_open(proc.conmon_pid)
        except OSError:
            return  # already gone: _check() right after sees it
        if not conmon_alive(proc):
            os.close(fd)
            return
        self._pidfds[path] = fd
        asyncio.get_running_loop().add_reader(fd, self._check, path)

    def _drop_pidfd(self, path: str) -> None:
        fd = self._pidfds.pop(path, None)
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            for path in list(self._waiters):
                self._check(path)


async def end_conmon(proc: Process, grace: float = 2.0) -> None:
    """Waits for conmon to finish (it does once its process is gone), then SIGKILL."""
    if not conmon_alive(proc):
        return
    try:
        fd = os.pidfd_open(proc.conmon_pid)
    except (OSError, AttributeError):
        fd = -1
    try:
        if fd >= 0 and conmon_alive(proc):
            loop = asyncio.get_running_loop()
            gone: asyncio.Future[None] = loop.create_future()

            def exited() -> None:
                if not gone.done():
                    gone.set_result(None)

            loop.add_reader(fd, exited)
            try:
                await asyncio.wait_for(gone, grace)
            except TimeoutError:
                pass
            finally:
                loop.remove_reader(fd)
        if conmon_alive(proc):
            with contextlib.suppress(OSError):
                os.kill(proc.conmon_pid, 9)
    finally:
        if fd >= 0:
            os.close(fd)
