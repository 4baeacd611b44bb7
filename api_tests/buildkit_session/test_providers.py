"""Secrets, ssh forwarding, registry credentials and exports, against a session client
served over real gRPC (conftest.py), as buildx serves them."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from dockerd_py.buildkit.session import (
    NotFound,
    SessionAuth,
    SessionError,
    SessionSecrets,
    SessionSSH,
    Unsupported,
    parse_headers,
    send_directory,
    send_tar,
)
from dockerd_py.protos.buildkit.session import filesync_pb2, sshforward_pb2
from dockerd_py.protos.fsutil import wire_pb2

from ..lifetime import die_with_test_run
from .conftest import Client
from .fsutil_sender import GO_TYPE, listing

P = wire_pb2.Packet


def test_headers_make_the_session_identity() -> None:
    h = parse_headers([
        ("X-Docker-Expose-Session-Uuid", "abc123"), ("X-Docker-Expose-Session-Name", "ctx"),
        ("X-Docker-Expose-Session-Sharedkey", "key"),
        ("X-Docker-Expose-Session-Grpc-Method", "/moby.filesync.v1.FileSync/DiffCopy"),
        ("x-docker-expose-session-grpc-method",
         "/moby.buildkit.secrets.v1.Secrets/GetSecret,/moby.sshforward.v1.SSH/CheckAgent")])
    assert (h.id, h.name, h.shared_key) == ("abc123", "ctx", "key")
    assert h.methods == {"/moby.filesync.v1.FileSync/DiffCopy",
                         "/moby.buildkit.secrets.v1.Secrets/GetSecret",
                         "/moby.sshforward.v1.SSH/CheckAgent"}
    for bad in ([], [("X-Docker-Expose-Session-Uuid", "../x")],
                [("X-Docker-Expose-Session-Uuid", "a"),
                 ("X-Docker-Expose-Session-Grpc-Method", "not a method")],
                [("X-Docker-Expose-Session-Uuid", "a"), ("X-Docker-Expose-Session-Uuid", "b")]):
        with pytest.raises(SessionError):
            parse_headers(bad)


async def test_secrets(client: Client) -> None:
    client.secrets = {"tok": b"value\x00\xff"}
    secrets = SessionSecrets(client.session)
    assert await secrets.get("tok") == b"value\x00\xff"
    with pytest.raises(NotFound):
        await secrets.get("other")
    with pytest.raises(SessionError):
        await secrets.get("../etc/passwd")
    client.secrets = {"big": b"x" * (500 * 1024 + 1)}
    with pytest.raises(SessionError, match="larger than"):
        await secrets.get("big")
    bare = dataclasses.replace(client.session, methods=frozenset())
    with pytest.raises(NotFound):  # a client given no --secret exposes no Secrets service
        await SessionSecrets(bare).get("tok")


async def test_credentials(client: Client) -> None:
    client.credentials = {"registry.example:5000": ("user", "pw"),
                          "token.example": ("", "identity-token")}
    auth = SessionAuth(client.session)
    assert await auth.credentials("registry.example:5000") == ("user", "pw")
    assert await auth.credentials("token.example") == ("", "identity-token")
    assert await auth.credentials("other.example") == ("", "")
    with pytest.raises(SessionError):
        await auth.credentials("bad host/x")


async def _agent_keys(path: str) -> list[str]:
    """SSH2_AGENTC_REQUEST_IDENTITIES (11) over the socket: the keys' comments. (ssh-add
    is not used: a child forked beside gRPC's threads may crash before its exec.)"""
    reader, writer = await asyncio.open_unix_connection(path)
    try:
        writer.write(b"\0\0\0\x01\x0b")
        size = int.from_bytes(await reader.readexactly(4), "big")
        body = await reader.readexactly(size)
    finally:
        writer.close()
    assert body[0] == 12  # SSH2_AGENT_IDENTITIES_ANSWER
    count, off, comments = int.from_bytes(body[1:5], "big"), 5, []
    for _ in range(count):
        off += 4 + int.from_bytes(body[off:off + 4], "big")  # the key blob
        n = int.from_bytes(body[off:off + 4], "big")
        comments.append(body[off + 4:off + 4 + n].decode())
        off += 4 + n
    return comments


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[Path]:
    """A real ssh-agent holding one key (comment "fwd-test"): its socket. Requested before
    `client`, so its processes are forked before this test's gRPC threads exist."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=die_with_test_run)
    try:
        while not sock.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.02)
        key = tmp_path / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fwd-test",
                        "-f", str(key)], check=True, preexec_fn=die_with_test_run)
        subprocess.run(["ssh-add", str(key)], env={"SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True, preexec_fn=die_with_test_run)
        yield sock
    finally:
        agent.terminate()
        agent.wait()


async def test_ssh_forwarding_reaches_a_real_agent(ssh_agent: Path, client: Client) -> None:
    """The client side proxies each ForwardAgent stream to a real ssh-agent, as buildx's
    sshprovider does; the agent's key list is read through our socket."""
    client.ssh_ids = {"default"}
    ids_seen: list[str] = []

    async def forward(context: grpc.aio.ServicerContext) -> None:
        ids_seen.extend(v for k, v in context.invocation_metadata() or ()
                        if k == "buildkit.ssh.id")
        reader, writer = await asyncio.open_unix_connection(str(ssh_agent))

        async def up() -> None:
            while (m := await context.read()) is not grpc.aio.EOF:
                writer.write(m.data)
                await writer.drain()
            writer.write_eof()
        task = asyncio.create_task(up())
        while data := await reader.read(32 * 1024):
            await context.write(sshforward_pb2.BytesMessage(data=data))
        await task
        writer.close()
    client.ssh = forward

    async with SessionSSH(client.session) as ssh:
        path = await ssh.forward("default", uid=0, gid=0, mode=0o600)
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert oct(os.stat(os.path.dirname(path)).st_mode & 0o777) == "0o711"
        for _ in range(2):  # each connection is its own stream
            assert await _agent_keys(path) == ["fwd-test"]
        assert ids_seen == ["default", "default"]
        with pytest.raises(NotFound):
            await ssh.forward("other")
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    with pytest.raises(NotFound):  # a client given no --ssh
        await SessionSSH(dataclasses.replace(client.session, methods=frozenset())).check()


async def test_send_directory_lists_as_fsutil(client: Client, tmp_path: Path) -> None:
    """The daemon as the sender (--output type=local): the same listing, in the same order,
    as fsutil's sender makes of the tree, and each requested file's bytes."""
    src = tmp_path / "src"
    (src / "b/c").mkdir(parents=True)
    (src / "a.txt").write_text("a" * 100_000)
    (src / "b/c/d").write_text("d")
    (src / "b-x").write_text("")
    os.link(src / "a.txt", src / "b/hard")
    os.symlink("/etc/shadow", src / "b/link")
    os.mkfifo(src / "fifo")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(src / "sock"))  # sockets are left out
        expected = [st for st in listing(str(src)) if st.path != "sock"]
    got: list[Any] = []
    data: dict[int, bytes] = {}
    seen_md: list[tuple[str, str]] = []

    async def receive(context: grpc.aio.ServicerContext) -> None:
        seen_md.extend(context.invocation_metadata() or ())
        wanted: set[int] = set()
        while (raw := await context.read()) is not grpc.aio.EOF:
            p = P.FromString(raw)
            if p.type == P.PACKET_STAT and p.HasField("stat"):
                i = len(got)
                got.append(p.stat)
                if p.stat.mode & GO_TYPE == 0 and not p.stat.linkname:
                    wanted.add(i)
                    data[i] = b""
                    await context.write(P(type=P.PACKET_REQ, ID=i).SerializeToString())
            elif p.type == P.PACKET_STAT:
                if not wanted:
                    await context.write(P(type=P.PACKET_FIN).SerializeToString())
            elif p.type == P.PACKET_DATA:
                if p.data:
                    data[p.ID] += p.data
                else:
                    wanted.discard(p.ID)
                    if not wanted:
                        await context.write(P(type=P.PACKET_FIN).SerializeToString())
            elif p.type == P.PACKET_FIN:
                return
    client.send = receive
    await send_directory(client.session, src)
    assert [(s.path, s.mode, s.size, s.linkname, s.modTime) for s in got] == [
        (s.path, s.mode, s.size, s.linkname, s.modTime) for s in expected]
    names = {i: got[i].path for i in data}
    assert {names[i]: v for i, v in data.items()} == {
        "a.txt": b"a" * 100_000, "b-x": b"", "b/c/d": b"d"}
    assert ("buildkit-attachable-exporter-id", "0") in seen_md


async def test_send_tar_streams_bytes(client: Client) -> None:
    received: list[bytes] = []

    async def receive(context: grpc.aio.ServicerContext) -> None:
        while (raw := await context.read()) is not grpc.aio.EOF:
            received.append(filesync_pb2.BytesMessage.FromString(raw).data)
    client.send = receive

    async def chunks() -> Any:
        yield b"x" * (7 << 20)  # split under gRPC's 4 MiB message limit
        yield b"end"
    await send_tar(client.session, chunks())
    assert b"".join(received) == b"x" * (7 << 20) + b"end"
    assert max(len(c) for c in received) <= 3 << 20

    bare = dataclasses.replace(client.session, methods=frozenset())
    with pytest.raises(Unsupported):  # no --output: the client serves no FileSend
        await send_tar(bare, chunks())
