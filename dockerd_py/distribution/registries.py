"""The registries a pull, push or inspect talks to: endpoints in order, and their auth.

Credentials arrive per call (a decoded AuthConfig); an `Authorizer` per
(endpoint, credentials) keeps the registry's challenge and the tokens it
granted, so later calls with the same credentials reuse them. The settings
(mirrors, insecure registries, concurrency) are replaced whole on reload.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..engine.reference import Reference
from ..errors import DaemonError
from .auth import AuthConfig, Authorizer
from .endpoints import Endpoint, RegistrySettings, endpoints, is_insecure, login_domain
from .errors import RegistryError, TransportError, not_found
from .registry import Registry

_AUTHORIZERS_KEPT = 64
T = TypeVar("T")


class Registries:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self._authorizers: OrderedDict[tuple[str, tuple[str, ...]], Authorizer] = OrderedDict()

    def reconfigure(self, settings: RegistrySettings) -> None:
        self.settings = settings

    async def endpoints(self, domain: str) -> list[Endpoint]:
        return await asyncio.to_thread(endpoints, domain, self.settings)

    def plain_http_allowed(self, host: str) -> bool:
        """Whether credentials may go to `host` in clear (blocking: may resolve it)."""
        return is_insecure(host, self.settings)

    def new_authorizer(self, creds: AuthConfig) -> Authorizer:
        return Authorizer(creds, self.plain_http_allowed)

    def authorizer(self, endpoint: Endpoint, creds: AuthConfig) -> Authorizer:
        key = (endpoint.url, creds.key)
        found = self._authorizers.get(key)
        if found is None:
            found = self._authorizers[key] = self.new_authorizer(creds)
            while len(self._authorizers) > _AUTHORIZERS_KEPT:
                self._authorizers.popitem(last=False)
        self._authorizers.move_to_end(key)
        return found

    def forget(self, endpoint: Endpoint, creds: AuthConfig) -> None:
        """Drop what an authorizer learned (after a login checked new credentials)."""
        self._authorizers.pop((endpoint.url, creds.key), None)

    async def first_answer(self, session: Any, ref: Reference, creds: AuthConfig,
                           action: Callable[[Registry], Awaitable[T]]) -> T:
        """action() on the first endpoint (mirrors, then the registry; https, then http
        where allowed) that answers. A transport failure, or a registry error from a
        mirror, moves on to the next; a registry error from the last one is final."""
        found = await self.endpoints(ref.domain)
        last: DaemonError | None = None
        for i, endpoint in enumerate(found):
            registry = Registry(session, endpoint, self.authorizer(endpoint, creds))
            try:
                await registry.ping()
                return await action(registry)
            except TransportError as e:
                last = e
            except RegistryError as e:
                if not endpoint.mirror or i == len(found) - 1:
                    raise not_found(e, ref) from None
                last = e
        assert last is not None
        raise last


def credentials_for(domain: str, auth: Mapping[str, Any] | None,
                    credentials: Mapping[str, Mapping[str, Any]] | None) -> AuthConfig:
    """The credentials of a call: its own, else those stored for the registry's domain."""
    if auth:
        return AuthConfig.from_dict(auth)
    for address, doc in (credentials or {}).items():
        if login_domain(address) == domain:
            return AuthConfig.from_dict(doc)
    return AuthConfig()
