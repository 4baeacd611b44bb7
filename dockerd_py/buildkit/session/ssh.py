"""`RUN --mount=type=ssh`: a private unix socket per ssh id whose every connection is
proxied to the client's ssh agent over one SSH.ForwardAgent stream (buildkit's
sshforward); the agent's keys never leave the client. Closed when the build ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import tempfile
from types import TracebackType

import grpc
import grpc.aio

from dockerd_py.protos.buildkit.session import sshforward_pb2

from .calls import EOF, open_stream, unary
from .record import SSH_CHECK, SSH_FORWARD, NotFound, Session, SessionError

DEFAULT_ID = "default"
KEY_SSH_ID = "buildkit.ssh.id"  # the metadata naming the agent a ForwardAgent stream is for
_SSH_ID = re.compile(r"[A-Za-z0-9_.-]{1,255}")
_CHUNK = 32 * 1024
_MAX_CONNECTIONS = 64  # per socket at a time: a RUN step that loops cannot exhaust the session


class SessionSSH:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._servers: list[asyncio.AbstractServer] = []
        self._dirs: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def check(self, ssh_id: str = DEFAULT_ID) -> None:
        """NotFound unless the client forwards an agent under ssh_id."""
        _check_id(ssh_id)
        if not self.session.supports(SSH_CHECK) or not self.session.supports(SSH_FORWARD):
            raise NotFound(f"no SSH key {ssh_id!r} forwarded from the client")
        try:
            await unary(self.session, SSH_CHECK, sshforward_pb2.CheckAgentRequest(ID=ssh_id),
                        sshforward_pb2.CheckAgentResponse.FromString, what=f"ssh {ssh_id}")
        except NotFound:
            raise NotFound(f"no SSH key {ssh_id!r} forwarded from the client") from None

    async def forward(self, ssh_id: str = DEFAULT_ID, *, uid: int = 0, gid: int = 0,
                      mode: int = 0o600) -> str:
        """The path of a new unix socket in a private directory (0711), owned uid:gid with
        mode, that reaches the client's agent ssh_id."""
        await self.check(ssh_id)
        directory = await asyncio.to_thread(_private_dir)
        self._dirs.append(directory)
        path = os.path.join(directory, "ssh_auth_sock")
        limit = asyncio.Semaphore(_MAX_CONNECTIONS)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            try:
                async with limit:
                    await self._proxy(ssh_id, reader, writer)
            except (grpc.aio.AioRpcError, OSError, asyncio.CancelledError):
                pass  # one connection failing is its own business (as upstream); a cancel
                # (close) ends the connection's task normally: asyncio logs a cancelled one
            finally:
                self._tasks.discard(task)
                writer.close()

        server = await asyncio.start_unix_server(serve, path=path)
        self._servers.append(server)
        await asyncio.to_thread(_own, path, uid, gid, mode & 0o777)
        return path

    async def _proxy(self, ssh_id: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        stream = open_stream(self.session, SSH_FORWARD,
                             sshforward_pb2.BytesMessage.SerializeToString,
                             sshforward_pb2.BytesMessage.FromString, ((KEY_SSH_ID, ssh_id),))

        async def upstream() -> None:
            while data := await reader.read(_CHUNK):
                await stream.write(sshforward_pb2.BytesMessage(data=data))
            await stream.done_writing()

        sending = asyncio.create_task(upstream())
        try:
            while True:
                message = await stream.read()
                if message is EOF:
                    break
                writer.write(message.data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            await sending
        except BaseException:
            sending.cancel()
            stream.cancel()
            raise
        finally:
            with contextlib.suppress(BaseException):
                await sending

    async def close(self) -> None:
        """Stop every socket and connection; remove the sockets' directories."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        dirs, self._dirs = self._dirs, []
        for directory in dirs:
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def __aenter__(self) -> SessionSSH:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()


def _check_id(ssh_id: str) -> None:
    if not _SSH_ID.fullmatch(ssh_id):
        raise SessionError(f"invalid ssh id {ssh_id[:100]!r}")


def _private_dir() -> str:
    directory = tempfile.mkdtemp(prefix=".buildkit-ssh-sock")
    os.chmod(directory, 0o711)
    return directory


def _own(path: str, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    os.chmod(path, mode)
