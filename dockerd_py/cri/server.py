"""The CRI endpoint: a grpc.aio server on its own unix socket, next to the Docker API."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable

import grpc

from ..errors import InvalidParameter
from ..protos.cri import api_pb2_grpc as rpc_pb
from .images import ImageServicer
from .runtime import RuntimeServicer
from .streaming.server import StreamingServer

log = logging.getLogger("dockerd_py.cri")
# grpc's own loggers speak at debug level on every poll of the loop.
logging.getLogger("grpc").setLevel(logging.INFO)

MAX_MESSAGE = 16 << 20  # kubelet's own limit for CRI messages


def _free_socket_path(path: str) -> None:
    """Remove a stale socket left by a dead daemon; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise InvalidParameter(f"{path}: exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise InvalidParameter(f"{path}: address already in use by a running daemon")
    finally:
        probe.close()


class CRIServer:
    def __init__(self, path: str, runtime: RuntimeServicer, images: ImageServicer,
                 streaming: StreamingServer | None = None,
                 startup: Callable[[], Awaitable[None]] | None = None) -> None:
        self.path = path
        self.streaming = streaming
        self.startup = startup
        self.runtime = runtime
        self.images = images
        self.server: grpc.aio.Server | None = None

    async def start(self) -> None:
        if not self.path.startswith("/"):
            raise InvalidParameter(f"CRI socket {self.path!r}: an absolute path is required")
        os.makedirs(os.path.dirname(self.path), mode=0o711, exist_ok=True)
        _free_socket_path(self.path)
        if self.startup is not None:
            await self.startup()
        if self.streaming is not None:
            await self.streaming.start()
            log.info("CRI streaming server on %s", self.streaming.base_url)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                          ("grpc.max_send_message_length", MAX_MESSAGE)])
        rpc_pb.add_RuntimeServiceServicer_to_server(self.runtime, server)  # type: ignore[no-untyped-call]
        rpc_pb.add_ImageServiceServicer_to_server(self.images, server)  # type: ignore[no-untyped-call]
        # The daemon's umask (0077) makes the socket 0700 as it is bound: no window in
        # which another user could connect; then 0600, as kubelet's runtimes use.
        server.add_insecure_port("unix:" + self.path)
        await server.start()
        os.chmod(self.path, 0o600)
        self.server = server
        log.info("CRI listen on %s", self.path)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=2.0)
            self.server = None
        if self.streaming is not None:
            await self.streaming.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
