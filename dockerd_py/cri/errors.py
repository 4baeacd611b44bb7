"""Engine errors as gRPC status codes, and the wrapper every RPC handler goes through."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from ..errors import (
    Conflict,
    DaemonError,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplementedByDaemon,
    NotModified,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("dockerd_py.cri")

if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]
else:
    Context = grpc.aio.ServicerContext

_CODES: tuple[tuple[type[DaemonError], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidParameter, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (NotModified, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (NotImplementedByDaemon, grpc.StatusCode.UNIMPLEMENTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def code_of(e: DaemonError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(e, kind):
            return code
    return grpc.StatusCode.UNKNOWN


R = TypeVar("R")
Handler = Callable[[Any, Any, Context], Awaitable[R]]


def rpc(fn: Handler[R]) -> Handler[R]:
    """Daemon errors become the status the CRI clients test for (NotFound above all)."""

    @functools.wraps(fn)
    async def wrapped(self: Any, request: Any, context: Context) -> R:
        try:
            return await fn(self, request, context)
        except DaemonError as e:
            log.debug("CRI %s: %s", fn.__name__, e)
            await context.abort(code_of(e), str(e))
            raise  # abort raises; this keeps the type checker informed
    return wrapped
