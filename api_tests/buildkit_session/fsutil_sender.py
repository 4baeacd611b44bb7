"""A FileSync client as buildx runs it, for tests: a real directory sent over real gRPC
the way tonistiigi/fsutil's sender sends it. Written from fsutil's sources, on purpose
independently of the daemon's own sender (dockerd_py/buildkit/session/send.py):

  * fs.go `Walk`: filepath.WalkDir under the root, the root itself skipped; WalkDir
    visits a directory, then its entries sorted by name (byte order), depth first;
  * stat.go `mkstat`: Mode is Go's `uint32(fi.Mode())` with ModeSocket cleared,
    ModTime is UnixNano, Size and (for symlinks) Linkname only for non-directories;
  * stat_unix.go `setUnixOpt`: uid/gid; devmajor/devminor with the 12:20 split; a file
    whose inode was seen earlier in the walk (nlink > 1) gets Linkname = the earlier
    path (and Size 0, which mkstat then overwrites with the size); `loadXattr`: every
    xattr except com.apple.*;
  * send.go: one STAT packet per entry (its ID is its index in that sequence), then an
    empty STAT; a REQ for ID makes 32 KiB DATA packets of that file and an empty DATA
    (an unopenable file: only the empty DATA); on FIN the sender answers FIN; four
    workers send requested files concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from dockerd_py.protos.fsutil import stat_pb2, wire_pb2

P = wire_pb2.Packet
# Go's os.FileMode bits (io/fs)
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV = 1 << 23, 1 << 22, 1 << 21
GO_STICKY, GO_IRREGULAR = 1 << 20, 1 << 19
GO_TYPE = GO_DIR | GO_SYMLINK | GO_PIPE | GO_SOCKET | GO_DEVICE | GO_CHARDEV | GO_IRREGULAR


def go_file_mode(st_mode: int) -> int:
    """Go's syscall-to-FileMode conversion (os/stat_linux.go fillFileStatFromSys)."""
    mode = st_mode & 0o777
    kinds = {stat.S_IFBLK: GO_DEVICE, stat.S_IFCHR: GO_DEVICE | GO_CHARDEV,
             stat.S_IFDIR: GO_DIR, stat.S_IFIFO: GO_PIPE, stat.S_IFLNK: GO_SYMLINK,
             stat.S_IFREG: 0, stat.S_IFSOCK: GO_SOCKET}
    mode |= kinds[stat.S_IFMT(st_mode)]
    if st_mode & stat.S_ISGID:
        mode |= GO_SETGID
    if st_mode & stat.S_ISUID:
        mode |= GO_SETUID
    if st_mode & stat.S_ISVTX:
        mode |= GO_STICKY
    return mode


def listing(root: str) -> list[stat_pb2.Stat]:
    out: list[stat_pb2.Stat] = []
    seen: dict[int, str] = {}

    def walk(rel: str) -> None:
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full), key=os.fsencode):
            path = f"{rel}/{name}" if rel else name
            origpath = os.path.join(root, path)
            st = os.lstat(origpath)
            s = stat_pb2.Stat(path=path, mode=go_file_mode(st.st_mode) & ~GO_SOCKET,
                              modTime=st.st_mtime_ns, uid=st.st_uid, gid=st.st_gid)
            if not stat.S_ISDIR(st.st_mode):
                if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
                    s.devmajor = (st.st_rdev >> 8) & 0xFFF
                    s.devminor = (st.st_rdev & 0xFF) | ((st.st_rdev >> 12) & 0xFFF00)
                if st.st_nlink > 1 and st.st_ino in seen:
                    s.linkname = seen[st.st_ino]
                else:
                    seen[st.st_ino] = path
                s.size = st.st_size  # mkstat sets it after setUnixOpt zeroed a link's
                if stat.S_ISLNK(st.st_mode):
                    s.linkname = os.readlink(origpath)
            with contextlib.suppress(OSError):
                for key in os.listxattr(origpath, follow_symlinks=False):
                    if not key.startswith("com.apple."):
                        s.xattrs[key] = os.getxattr(origpath, key, follow_symlinks=False)
            out.append(s)
            if stat.S_ISDIR(st.st_mode):
                walk(path)

    walk("")
    return out


class Sender:
    """What one DiffCopy call of the test client does; `stats` may be replaced by a
    hand-made (hostile) listing, `extra` packets are sent right after it."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root
        self.stats: list[stat_pb2.Stat] | None = None
        self.extra: list[Any] = []
        self.requests: list[int] = []
        self.metadata: list[tuple[str, str]] = []
        self.receiver_error = ""
        self.sent: list[stat_pb2.Stat] = []

    async def __call__(self, context: grpc.aio.ServicerContext) -> None:
        self.metadata = list(context.invocation_metadata() or ())
        stats = self.stats if self.stats is not None else listing(self.root or "")
        self.sent = stats
        files = {i: s.path for i, s in enumerate(stats) if s.mode & GO_TYPE == 0}
        lock = asyncio.Lock()

        async def send(p: Any) -> None:
            async with lock:
                await context.write(p)

        async def walk() -> None:
            for s in stats:
                await send(P(type=P.PACKET_STAT, stat=s))
            for p in self.extra:
                await send(p)
            await send(P(type=P.PACKET_STAT))

        queue: asyncio.Queue[int] = asyncio.Queue()

        async def worker() -> None:
            while True:
                i = await queue.get()
                try:
                    f = open(os.path.join(self.root or "", files.pop(i)), "rb")  # noqa: SIM115
                except OSError:
                    f = None
                if f is not None:
                    with f:
                        while chunk := f.read(32 * 1024):
                            await send(P(type=P.PACKET_DATA, ID=i, data=chunk))
                await send(P(type=P.PACKET_DATA, ID=i))

        tasks = [asyncio.create_task(walk())] + [asyncio.create_task(worker()) for _ in range(4)]
        try:
            while True:
                p = await context.read()
                if p is grpc.aio.EOF:
                    return
                if p.type == P.PACKET_REQ:
                    self.requests.append(p.ID)
                    if p.ID not in files:
                        raise RuntimeError(f"invalid file id {p.ID}")
                    queue.put_nowait(p.ID)
                elif p.type == P.PACKET_ERR:
                    self.receiver_error = p.data.decode()
                    return
                elif p.type == P.PACKET_FIN:
                    await send(P(type=P.PACKET_FIN))
                    return
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


Handler = Callable[[grpc.aio.ServicerContext], Awaitable[None]]


def stream_handler(fn: Callable[[], Handler], parse: Any, serialize: Any) -> Any:
    async def call(_: Any, context: grpc.aio.ServicerContext) -> None:
        await fn()(context)
    return grpc.stream_stream_rpc_method_handler(call, request_deserializer=parse,
                                                 response_serializer=serialize)
