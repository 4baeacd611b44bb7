"""A thread that sees a container's files as the container does: the view `docker cp`
and `docker export` work in.

As dockerd's openContainerFS: the thread unshares its mount namespace and filesystem
context, binds the container's volumes, bind mounts and daemon-managed /etc files (the
`Bind`s its caller chose) over the rootfs, and chroots into it. The kernel resolves every
path there, so a symlink the container planted ("/", "../../..") stays inside the
container; what the view mounts is seen nowhere else and goes away with the thread.
Running and stopped containers are seen the same way. /proc/<pid>/root was the other
candidate: it does not exist for stopped containers and would show the container's
/proc, /dev and tmpfs mounts, which dockerd leaves out.

Code run in the view (`View.run`, `View.submit`, `stream`) must not import anything
lazily: the daemon's modules are out of sight there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import dataclasses
import os
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, TypeVar, cast

from ..aio import ThreadWriter
from ..modes import makedirs

T = TypeVar("T")

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_CLONE_FS, _CLONE_NEWNS = 0x200, 0x20000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 0x1, 0x20, 0x1000, 0x4000, 0x80000


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)


def _mount(source: str | None, target: str, flags: int) -> None:
    _check(_libc.mount(os.fsencode(source) if source else None, os.fsencode(target), None,
                       flags, None), target)


@dataclasses.dataclass(frozen=True)
class Bind:
    source: str
    destination: str
    rw: bool


class View:
    """A thread whose root directory is the container's (see the module doc)."""

    def __init__(self, rootfs: str, binds: Sequence[Bind]) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._main, args=(rootfs, list(binds)),
                                        name="container-fs", daemon=True)

    async def open(self) -> None:
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def close(self) -> None:
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def job() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as e:
                    future.set_exception(e)

        self._jobs.put(job)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def _main(self, rootfs: str, binds: list[Bind]) -> None:
        try:
            _enter(rootfs, binds)
        except BaseException as e:
            self._ready.set_exception(e)
            return  # the thread ends, and its namespace with it
        self._ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            job()


def _enter(rootfs: str, binds: list[Bind]) -> None:
    """Runs first in the view thread. Nothing here may touch the daemon's own context:
    unsharing CLONE_FS is what makes the chroot this thread's alone."""
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_FS), "unshare")  # or no chroot below
    _mount(None, "/", _MS_REC | _MS_SLAVE)  # nothing mounted here propagates back
    sources = []
    try:
        for b in binds:  # host paths: opened before the chroot hides them
            sources.append((os.open(os.path.dirname(b.source) or "/", os.O_PATH | os.O_DIRECTORY
                                    | os.O_CLOEXEC), os.path.basename(b.source) or ".",
                            os.path.isdir(b.source)))
        os.chroot(rootfs)
        os.chdir("/")
        for b, (parent_fd, name, is_dir) in zip(binds, sources, strict=True):
            target = _mount_point(b.destination, is_dir)
            os.fchdir(parent_fd)  # the source, named relative to its parent outside the root
            try:
                _mount(name, target, _MS_BIND | _MS_REC)
            finally:
                os.chdir("/")
            if not b.rw:
                _mount(None, target, _MS_REMOUNT | _MS_BIND | _MS_RDONLY)
    finally:
        for fd, _, _ in sources:
            os.close(fd)


def _mount_point(destination: str, is_dir: bool) -> str:
    """In the chroot: the mount point with its symlinks resolved (inside the container),
    created if missing, as dockerd does (an image's /etc/resolv.conf -> ../run/... too)."""
    real = os.path.realpath(destination)
    if not os.path.exists(real):
        if is_dir:
            makedirs(real, 0o755)
        else:
            makedirs(os.path.dirname(real), 0o755)
            # O_EXCL: what a running container put there meanwhile (a FIFO) is never opened
            with contextlib.suppress(FileExistsError):
                fd = os.open(real, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o755)
                os.fchmod(fd, 0o755)  # whatever the daemon's umask
                os.close(fd)
    return real


async def stream(view: View, writer_fn: Callable[[ThreadWriter], None]
                 ) -> AsyncGenerator[bytes, None]:
    """aio.produce, with the writer running in the view."""
    w = ThreadWriter(asyncio.get_running_loop())

    def run() -> None:
        try:
            writer_fn(w)
        except BaseException as e:  # handed to the reader, which re-raises it
            with contextlib.suppress(BrokenPipeError):
                w.finish(e)
            return
        with contextlib.suppress(BrokenPipeError):
            w.finish()

    done = view.submit(run)
    chunks = cast(AsyncGenerator[bytes, None], w.chunks())
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()  # now, so that a writer blocked on a full queue gives up
        await asyncio.wrap_future(done)

