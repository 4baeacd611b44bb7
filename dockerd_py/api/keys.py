"""Application keys: how handlers reach the engine."""

from aiohttp import web

from ..engine.engine import Engine

ENGINE = web.AppKey("engine", Engine)
