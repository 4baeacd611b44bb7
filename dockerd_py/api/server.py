"""The aiohttp application: routing with optional /vX.Y prefix, Docker's
headers on every response, and the one place errors become HTTP statuses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from ..errors import DaemonError
from ..version import API_VERSION, MIN_API_VERSION, VERSION, parse_api_version
from .httputil import error_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_VERSION_PREFIX = "/v{version:[0-9]+(?:\\.[0-9]+)?}"
_API_MAX = parse_api_version(API_VERSION)
_API_MIN = parse_api_version(MIN_API_VERSION)
_SERVER = f"Docker/{VERSION} (linux)"


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


async def _docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Server"] = _SERVER
    response.headers["Ostype"] = "linux"
    response.headers["Docker-Experimental"] = "false"


def make_app(tables: Iterable[web.RouteTableDef]) -> web.Application:
    # client_max_size only bounds request.read()/json(); large bodies are streamed.
    app = web.Application(middlewares=[errors_middleware], client_max_size=8 << 20)
    app.on_response_prepare.append(_docker_headers)
    add_routes(app, tables)
    return app
