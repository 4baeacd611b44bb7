"""The distribution service: the engine's registry client (pull, push, login, inspect).

Credentials arrive per call (a decoded AuthConfig); an `Authorizer` per
(endpoint, credentials) keeps the registry's challenge and the tokens it
granted, so later calls with the same credentials reuse them.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..config import Config
from ..engine.images.service import ImageService
from ..engine.reference import Reference, parse_normalized, with_tag
from ..engine.types import ImageRecord
from ..errors import DaemonError, InvalidParameter, Unauthorized
from . import blobs, manifests
from . import pull as pull_mod
from . import push as push_mod
from .auth import AuthConfig, Authorizer
from .compress import PushedBlobs
from .endpoints import CERTS_DIR, Endpoint, RegistrySettings, endpoints, login_domain
from .errors import RegistryError, TransportError
from .registry import Registry, new_session

_AUTHORIZERS_KEPT = 64
T = TypeVar("T")
Progress = Callable[[dict[str, Any]], Awaitable[None]]


class DistributionService:
    def __init__(self, config: Callable[[], Config], images: ImageService) -> None:
        self.config = config              # read on each call: SIGHUP may change it
        self.images = images
        self.certs_dir = CERTS_DIR
        self._authorizers: OrderedDict[tuple[str, tuple[str, ...]], Authorizer] = OrderedDict()
        self.pushed = PushedBlobs()

    # -- plumbing shared by the verbs ------------------------------------------

    def settings(self) -> RegistrySettings:
        cfg = self.config()
        return RegistrySettings(cfg.registry_mirrors, cfg.insecure_registries, self.certs_dir)

    async def endpoints(self, domain: str) -> list[Endpoint]:
        return await asyncio.to_thread(endpoints, domain, self.settings())

    def authorizer(self, endpoint: Endpoint, creds: AuthConfig) -> Authorizer:
        key = (endpoint.url, creds.key)
        found = self._authorizers.get(key)
        if found is None:
            found = self._authorizers[key] = Authorizer(creds)
            while len(self._authorizers) > _AUTHORIZERS_KEPT:
                self._authorizers.popitem(last=False)
        self._authorizers.move_to_end(key)
        return found

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
                    raise pull_mod.not_found(e, ref) from None
                last = e
        assert last is not None
        raise last

    @staticmethod
    def credentials_for(domain: str, auth: Mapping[str, Any] | None,
                        credentials: Mapping[str, Mapping[str, Any]] | None) -> AuthConfig:
        if auth:
            return AuthConfig.from_dict(auth)
        for address, doc in (credentials or {}).items():
            if login_domain(address) == domain:
                return AuthConfig.from_dict(doc)
        return AuthConfig()

    # -- pull --------------------------------------------------------------------

    async def pull(self, ref: str, *, auth: dict[str, Any] | None = None,
                   platform: str | None = None, progress: Progress | None = None,
                   credentials: dict[str, dict[str, Any]] | None = None,
                   all_tags: bool = False) -> ImageRecord:
        """Pull `ref` (default tag latest, or every tag with all_tags) and return the
        image (the last one pulled, for all_tags). `progress` receives the JSON
        messages of the pull stream, ending with the Digest and Status lines."""
        parsed = parse_normalized(ref)
        if all_tags and (parsed.tag or parsed.digest):
            raise InvalidParameter("tag can't be used with --all-tags/-a")
        if not all_tags and not parsed.tag and not parsed.digest:
            parsed = with_tag(parsed, "latest")
        want = manifests.parse_platform(platform) if platform else None
        creds = self.credentials_for(parsed.domain, auth, credentials)
        emit = progress or _discard
        try:
            async with new_session() as session:
                if all_tags:
                    tags = await self._tags(session, parsed, creds)
                    image: ImageRecord | None = None
                    updated = False
                    for tag in tags:
                        image, moved = await pull_mod.pull_tag(
                            self, session, with_tag(parsed, tag), creds, want, emit)
                        updated = updated or moved
                    assert image is not None
                else:
                    image, updated = await pull_mod.pull_tag(self, session, parsed, creds, want,
                                                             emit)
        except BaseException:
            # What the failed pull left (leased blobs, snapshots) goes before the error does.
            await self.images.collect_garbage()
            raise
        await emit(pull_mod.final_status(parsed.familiar(), updated))
        return image

    async def _tags(self, session: Any, ref: Reference, creds: AuthConfig) -> list[str]:
        tags = await self.first_answer(session, ref, creds,
                                       lambda registry: registry.list_tags(ref.path))
        if not tags:
            raise RegistryError(f"no tags found for {ref.familiar_name}", 404)
        return sorted(tags)

    # -- push --------------------------------------------------------------------

    async def push(self, name: str, tag: str = "", *, auth: dict[str, Any] | None = None,
                   progress: Progress | None = None) -> None:
        parsed = parse_normalized(name)
        creds = self.credentials_for(parsed.domain, auth, None)
        async with new_session() as session:
            await push_mod.push(self, session, name, tag, creds, progress or _discard)

    # -- login -------------------------------------------------------------------

    async def login(self, auth: dict[str, Any]) -> str:
        """Check credentials against a registry (POST /auth); returns an identity
        token when a token server grants a refresh token, else ""."""
        creds = AuthConfig.from_dict(auth)
        domain = login_domain(creds.server_address)
        last: DaemonError | None = None
        async with new_session() as session:
            for endpoint in await self.endpoints(domain):
                if endpoint.mirror:
                    continue
                authorizer = Authorizer(creds)
                registry = Registry(session, endpoint, authorizer)
                try:
                    await registry.ping()
                    return await self._login(session, registry, authorizer)
                except TransportError as e:
                    last = e
        assert last is not None
        raise last

    async def _login(self, session: Any, registry: Registry, authorizer: Authorizer) -> str:
        url = registry.url("/v2/")
        challenge = authorizer.challenge
        if challenge is None:
            return ""  # the registry asks for nothing
        if challenge.scheme == "bearer":
            try:
                return await authorizer.login(session, registry.endpoint.ssl)
            except RegistryError as e:
                raise Unauthorized(str(e)) from None
        resp = await registry.request("GET", "/v2/", ())
        async with resp:
            if resp.status != 200:
                raise Unauthorized(f"login attempt to {url} failed with status: "
                                   f"{resp.status} {resp.reason}")
        self._authorizers.pop((registry.endpoint.url, authorizer.creds.key), None)
        return ""

    # -- inspect -----------------------------------------------------------------

    async def inspect(self, name: str, *, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET /distribution/{name}/json: the descriptor and platforms a reference names."""
        parsed = parse_normalized(name)
        if not parsed.tag and not parsed.digest:
            parsed = with_tag(parsed, "latest")
        creds = self.credentials_for(parsed.domain, auth, None)

        async def manifest(registry: Registry) -> tuple[Registry, bytes, str, str]:
            return registry, *await pull_mod.get_manifest(
                registry, parsed, parsed.digest or parsed.tag or "latest")

        async with new_session() as session:
            registry, body, ctype, digest = await self.first_answer(session, parsed, creds,
                                                                    manifest)
            doc = manifests.parse(body, ctype, parsed.string())
            platforms: list[dict[str, str]] = []
            if isinstance(doc, manifests.Index):
                for desc in doc.manifests:
                    if desc.platform is not None and desc.platform.os != "unknown":
                        platforms.append(_platform_json(desc.platform))
            else:
                async with self.images.leases.lease():
                    config = await blobs.fetch_json_blob(registry, parsed.path,
                                                         doc.config.digest, doc.config.size,
                                                         self.images.content)
                platforms.append(_platform_json(manifests.config_platform(json.loads(config))))
                self.images.schedule_gc()  # the config blob is not kept
            return {"Descriptor": {"mediaType": doc.media_type, "digest": digest,
                                   "size": len(body)},
                    "Platforms": platforms}


def _platform_json(p: manifests.Platform) -> dict[str, str]:
    out = {"architecture": p.architecture, "os": p.os}
    if p.variant:
        out["variant"] = p.variant
    return out


async def _discard(_: dict[str, Any]) -> None:
    return None

