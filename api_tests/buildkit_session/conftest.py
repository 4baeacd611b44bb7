"""A session client served over real gRPC on a unix socket, as buildx serves one over the
hijacked /session connection; the tests set what each of its services does."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from dockerd_py.buildkit.session import Session
from dockerd_py.protos.buildkit.session import (
    auth_pb2,
    filesync_pb2,
    secrets_pb2,
    sshforward_pb2,
)
from dockerd_py.protos.fsutil import wire_pb2

from ..buildkit.conftest import BUILDX, bx, leftovers  # noqa: F401
from .fsutil_sender import Handler, Sender, stream_handler

ALL_METHODS = frozenset({
    "/moby.filesync.v1.FileSync/DiffCopy", "/moby.filesync.v1.FileSync/TarStream",
    "/moby.filesync.v1.FileSend/DiffCopy", "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.sshforward.v1.SSH/CheckAgent", "/moby.sshforward.v1.SSH/ForwardAgent",
    "/moby.filesync.v1.Auth/Credentials", "/moby.filesync.v1.Auth/FetchToken",
})


@pytest.fixture(scope="session")
def buildx_env(daemon: Any, session_dir: Path) -> dict[str, str]:
    """As api_tests/buildkit's, with a DOCKER_CONFIG of its own: buildx records builds in
    it (and then prints `buildx inspect` differently), so other tests' view stays theirs."""
    cfg = session_dir / "buildx-cfg-session"
    plugins = cfg / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "docker-buildx").exists():
        shutil.copy(BUILDX, plugins / "docker-buildx")
    env: dict[str, str] = daemon.cli_env()
    env.update(DOCKER_CONFIG=str(cfg), BUILDX_NO_DEFAULT_ATTESTATIONS="1")
    env.pop("DOCKER_BUILDKIT", None)
    return env


@dataclass
class Client:
    session: Session
    sync: Handler = field(default_factory=Sender)
    send: Handler | None = None  # FileSend.DiffCopy, raw bytes both ways
    secrets: dict[str, bytes] = field(default_factory=dict)
    ssh: Handler | None = None
    ssh_ids: set[str] = field(default_factory=set)
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    sock = tmp_path / "session.sock"
    server = grpc.aio.server()
    holder: list[Client] = []

    async def get_secret(request: Any, context: grpc.aio.ServicerContext) -> Any:
        c = holder[0]
        c.calls.append(("secret", request.ID))
        if request.ID not in c.secrets:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"secret {request.ID} not found")
        return secrets_pb2.GetSecretResponse(data=c.secrets[request.ID])

    async def check_agent(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request.ID not in holder[0].ssh_ids:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unset ssh forward key {request.ID}")
        return sshforward_pb2.CheckAgentResponse()

    async def credentials(request: Any, context: grpc.aio.ServicerContext) -> Any:
        user, secret = holder[0].credentials.get(request.Host, ("", ""))
        return auth_pb2.CredentialsResponse(Username=user, Secret=secret)

    def unknown() -> Handler:
        raise AssertionError("not configured")

    P = wire_pb2.Packet
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("moby.filesync.v1.FileSync", {
            "DiffCopy": stream_handler(lambda: holder[0].sync, P.FromString, P.SerializeToString),
        }),
        grpc.method_handlers_generic_handler("moby.filesync.v1.FileSend", {
            "DiffCopy": stream_handler(lambda: holder[0].send or unknown(), None, None),
        }),
        grpc.method_handlers_generic_handler("moby.buildkit.secrets.v1.Secrets", {
            "GetSecret": grpc.unary_unary_rpc_method_handler(
                get_secret, request_deserializer=secrets_pb2.GetSecretRequest.FromString,
                response_serializer=secrets_pb2.GetSecretResponse.SerializeToString),
        }),
        grpc.method_handlers_generic_handler("moby.sshforward.v1.SSH", {
            "CheckAgent": grpc.unary_unary_rpc_method_handler(
                check_agent, request_deserializer=sshforward_pb2.CheckAgentRequest.FromString,
                response_serializer=sshforward_pb2.CheckAgentResponse.SerializeToString),
            "ForwardAgent": stream_handler(lambda: holder[0].ssh or unknown(),
                                           sshforward_pb2.BytesMessage.FromString,
                                           sshforward_pb2.BytesMessage.SerializeToString),
        }),
        grpc.method_handlers_generic_handler("moby.filesync.v1.Auth", {
            "Credentials": grpc.unary_unary_rpc_method_handler(
                credentials, request_deserializer=auth_pb2.CredentialsRequest.FromString,
                response_serializer=auth_pb2.CredentialsResponse.SerializeToString),
        }),
    ))
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    channel = grpc.aio.insecure_channel(f"unix:{sock}")
    session = Session(id=uuid.uuid4().hex, name="test", shared_key="k", methods=ALL_METHODS,
                      channel=channel)
    holder.append(Client(session))
    try:
        yield holder[0]
    finally:
        await channel.close()
        await server.stop(None)


__all__ = ["Client", "filesync_pb2"]
