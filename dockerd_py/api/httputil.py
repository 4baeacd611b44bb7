"""Request parsing and response helpers shared by the route modules."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from ..engine.filters import Filters, InvalidFilter
from ..errors import InvalidParameter
from . import validation

JSON = "application/json"
MAX_JSON_BODY = 8 << 20  # container configs are small; a huge JSON body is hostile
_ATOI = re.compile(r"[+-]?[0-9]+")


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """dockerd's BoolValue: "", 0, no, false, none are false; anything else true."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "no", "false", "none")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """Go's strconv.Atoi: ASCII digits with an optional sign, in int64's range."""
    value = request.query.get(name)
    if value is None or value == "":
        return default
    if not _ATOI.fullmatch(value):
        raise InvalidParameter(f'strconv.Atoi: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(1 << 63) <= number < (1 << 63):
        raise InvalidParameter(f'strconv.Atoi: parsing "{value}": value out of range')
    return number


def query_filters(request: web.Request, accepted: tuple[str, ...] | None = None) -> Filters:
    try:
        filters = Filters.parse(request.query.get("filters"))
        if accepted is not None:
            filters.validate(accepted)
    except InvalidFilter as e:
        raise InvalidParameter(str(e)) from None
    return filters


async def read_json(request: web.Request, *, required: bool = False,
                    trailing: bool = False) -> Any:
    """The JSON body as Go's decoder reads it (validation.gojson), capped; an empty body
    is None unless required. Content after the value is refused unless trailing."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise InvalidParameter("request body is too large")
    # read(n) returns what is buffered (at most n): loop to EOF or just past the cap.
    data = bytearray()
    while len(data) <= MAX_JSON_BODY:
        chunk = await request.content.read(MAX_JSON_BODY + 1 - len(data))
        if not chunk:
            break
        data += chunk
    if len(data) > MAX_JSON_BODY:
        raise InvalidParameter("request body is too large")
    if not data.strip():
        if required:
            raise InvalidParameter("request body is empty")
        return None
    ctype = request.headers.get("Content-Type", "")
    if ctype and ctype.split(";")[0].strip() != JSON:
        raise InvalidParameter(f'unsupported Content-Type header ({ctype}): must be "{JSON}"')
    try:
        return validation.loads(bytes(data), trailing=trailing)
    except validation.SyntaxErr as e:
        raise InvalidParameter(f"invalid JSON: {e}") from None


async def read_body(request: web.Request, body_type: str, *, required: bool = False) -> Any:
    """The JSON body checked against its type in the API spec (validation.BODY_TYPES),
    as dockerd's decoder reads it: None when empty and not required, else the value
    with the type's key spelling; a mismatch is dockerd's 400, "invalid JSON: json:
    cannot unmarshal ..." (for POST /auth, which dockerd decodes bare, without the
    prefix and with trailing content ignored)."""
    bare = body_type == "Auth"
    try:
        value = await read_json(request, trailing=bare)
    except InvalidParameter as e:
        if bare and str(e).startswith("invalid JSON: "):
            raise InvalidParameter(str(e).removeprefix("invalid JSON: ")) from None
        raise
    if value is None:
        if required:
            raise InvalidParameter("invalid JSON: got EOF while reading request body")
        return None
    try:
        return validation.decode(body_type, value)
    except validation.TypeMismatch as e:
        raise InvalidParameter(str(e) if bare else f"invalid JSON: {e}") from None


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def json_response(data: Any, status: int = 200,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    # Exactly "application/json": the Go client ignores error bodies of any other type.
    return web.Response(body=json_bytes(data), status=status, content_type=JSON, headers=headers)


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return json_response({"message": message}, status=status)


async def body_chunks(request: web.Request, size: int = 1 << 20) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(size):
        yield chunk


class JsonMessageStream:
    """A chunked stream of JSON messages (progress for load/import/pull/build).

    Errors after the headers went out are reported in-band, in the shape the
    CLI renders (`errorDetail` + the deprecated `error`)."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.response = web.StreamResponse(headers={"Content-Type": JSON})

    async def start(self) -> None:
        if not self.response.prepared:
            await self.response.prepare(self._request)

    async def send(self, message: Mapping[str, Any]) -> None:
        await self.start()
        await self.response.write(json.dumps(message, separators=(",", ":")).encode() + b"\r\n")

    async def error(self, message: str) -> None:
        await self.send({"errorDetail": {"message": message}, "error": message})

    async def finish(self) -> web.StreamResponse:
        await self.start()
        await self.response.write_eof()
        return self.response
