"""The aiohttp application: routing with optional /vX.Y prefix, Docker's
headers on every response, and the one place errors become HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from ..errors import DaemonError
from ..version import API_VERSION, MIN_API_VERSION, VERSION, parse_api_version
from .httputil import error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_VERSION_PREFIX = "/v{version:[0-9]+(?:\\.[0-9]+)?}"
_API_MAX = parse_api_version(API_VERSION)
_API_MIN = parse_api_version(MIN_API_VERSION)
_SERVER = f"Docker/{VERSION} (linux)"
# Go's net/http lets a request line or header take up to 1 MiB (DefaultMaxHeaderBytes),
# so long query strings (`docker save` of many images, big filters) work; aiohttp's
# default is 8 KiB.
MAX_HEADER_BYTES = 1 << 20


def add_routes(app: web.Application, tables: Iterable[web.RouteTableDef]) -> None:
    """Register every route both unversioned and under /vX.Y (as dockerd)."""
    for table in tables:
        for route in table:
            assert isinstance(route, web.RouteDef)
            for prefix in ("", _VERSION_PREFIX):
                app.router.add_route(route.method, prefix + route.path, route.handler,
                                     **route.kwargs)


API_VERSION_KEY = web.RequestKey("api_version", tuple)


def api_version(request: web.Request) -> tuple[int, int]:
    """The API version the client asked for (the maximum when unversioned)."""
    version: tuple[int, int] = request.get(API_VERSION_KEY, _API_MAX)
    return version


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        version = request.match_info.get("version")
        if version is not None:
            asked = parse_api_version(version)
            if asked < _API_MIN:
                return error_response(
                    400, f"client version {version} is too old. Minimum supported API version "
                         f"is {MIN_API_VERSION}, please upgrade your client to a newer version")
            if asked > _API_MAX:
                return error_response(400, f"client version {version} is too new. Maximum "
                                           f"supported API version is {API_VERSION}")
            request[API_VERSION_KEY] = asked
        return await handler(request)
    except DaemonError as e:
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        return error_response(e.status, str(e))
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return error_response(404, "page not found")
    except web.HTTPException as e:
        return error_response(e.status, e.reason or e.text or "error")
    except ConnectionResetError:
        raise
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, str(e) or type(e).__name__)


def _set_docker_headers(response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Server"] = _SERVER
    response.headers["Ostype"] = "linux"
    response.headers["Docker-Experimental"] = "false"


async def _docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    _set_docker_headers(response)


_aiohttp_handle_error = RequestHandler.handle_error


def _handle_error(self: RequestHandler, request: web.BaseRequest, status: int = 500,
                  exc: BaseException | None = None,
                  message: str | None = None) -> web.StreamResponse:
    """aiohttp's own answer, for a request it could not parse (or a failure outside the
    app's middleware), in dockerd's shape: {"message"} JSON with Docker's headers. A
    request line or header over the limit is 431, as Go's server answers."""
    if status >= 500 or request.writer.output_size > 0:
        _aiohttp_handle_error(self, request, status, exc, message)  # logs; raises if too late
    else:
        log.debug("malformed request: %s", exc or message)
    if isinstance(exc, LineTooLong):
        status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
        message = f"request line or header field longer than {MAX_HEADER_BYTES} bytes"
    response = error_response(status, message or HTTPStatus(status).phrase)
    response.force_close()
    _set_docker_headers(response)
    return response


RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]


def make_app(tables: Iterable[web.RouteTableDef]) -> web.Application:
    # client_max_size only bounds request.read()/json(); large bodies are streamed.
    limits = {"max_line_size": MAX_HEADER_BYTES, "max_field_size": MAX_HEADER_BYTES}
    app = web.Application(middlewares=[errors_middleware], client_max_size=8 << 20,
                          handler_args=limits)
    app.on_response_prepare.append(_docker_headers)
    add_routes(app, tables)
    return app
