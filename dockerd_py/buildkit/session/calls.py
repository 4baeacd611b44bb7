"""Calling the client's unary session methods, with gRPC failures made SessionErrors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import grpc.aio

from .record import NotFound, Session, SessionError

Resp = TypeVar("Resp")
EOF: Any = grpc.aio.EOF  # type: ignore[attr-defined]  # end of reads; untyped
CALL_TIMEOUT = 60.0  # seconds: a client that stops answering fails the build, not hangs it


async def unary(session: Session, method: str, request: Any,
                parse: Callable[[bytes], Resp], *, what: str,
                metadata: tuple[tuple[str, str], ...] = ()) -> Resp:
    call = session.channel.unary_unary(method, request_serializer=_serialize,
                                       response_deserializer=parse)
    try:
        response: Resp = await call(request, timeout=CALL_TIMEOUT, metadata=metadata or None)
    except grpc.aio.AioRpcError as e:
        raise rpc_error(e, what) from None
    return response


def open_stream(session: Session, method: str, serialize: Callable[[Any], bytes] | None,
                parse: Callable[[bytes], Any] | None,
                metadata: tuple[tuple[str, str], ...] = ()) -> Any:
    """A bidirectional stream call (grpc.aio.StreamStreamCall; grpc-stubs do not type it)."""
    multi: Any = session.channel.stream_stream(method, request_serializer=serialize,
                                               response_deserializer=parse)
    return multi(metadata=metadata or None)


def rpc_error(e: grpc.aio.AioRpcError, what: str) -> SessionError:
    code = e.code()
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
        return NotFound(f"{what}: not found")
    return SessionError(f"{what}: {e.details() or code.name}")


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
