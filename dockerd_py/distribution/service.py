"""The distribution service: the engine's registry client (pull, push, login, inspect).

Each verb goes to the registries (registries.py: endpoints in order, auth per
endpoint and credentials) with the credentials of its call; pulled images
and pushed blobs are recorded through the image service.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..engine.images.contract import Images
from ..engine.reference import Reference, parse_normalized, with_tag
from ..engine.types import ImageRecord
from ..errors import DaemonError, InvalidParameter, Unauthorized
from . import blobs, manifests
from . import pull as pull_mod
from .auth import AuthConfig, Authorizer
from .compress import PushedBlobs
from .endpoints import RegistrySettings, login_domain
from .errors import RegistryError, TransportError
from .progress import Emit
from .push import Pusher, push
from .registries import Registries, credentials_for
from .registry import Registry, new_session
from .remote import RemoteImage, open_remote


class DistributionService:
    def __init__(self, settings: RegistrySettings, images: Images) -> None:
        self.images = images
        self.registries = Registries(settings)
        self.pusher = Pusher(images, self.registries, PushedBlobs())

    def reconfigure(self, settings: RegistrySettings) -> None:
        self.registries.reconfigure(settings)

    # -- pull --------------------------------------------------------------------

    async def pull(self, ref: str, *, auth: dict[str, Any] | None = None,
                   platform: str | None = None, progress: Emit | None = None,
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
        creds = credentials_for(parsed.domain, auth, credentials)
        emit = progress or _discard
        try:
            async with new_session() as session:
                if all_tags:
                    tags = await self._tags(session, parsed, creds)
                    image: ImageRecord | None = None
                    updated = False
                    for tag in tags:
                        image, moved = await pull_mod.pull_tag(
                            self.registries, self.images, session, with_tag(parsed, tag), creds,
                            want, emit)
                        updated = updated or moved
                    assert image is not None
                else:
                    image, updated = await pull_mod.pull_tag(
                        self.registries, self.images, session, parsed, creds, want, emit)
        except BaseException:
            # What the failed pull left (leased blobs, snapshots) goes before the error does.
            await self.images.collect_garbage()
            raise
        await emit(pull_mod.final_status(parsed.familiar(), updated))
        return image

    async def _tags(self, session: Any, ref: Reference, creds: AuthConfig) -> list[str]:
        tags = await self.registries.first_answer(session, ref, creds,
                                       lambda registry: registry.list_tags(ref.path))
        if not tags:
            raise RegistryError(f"no tags found for {ref.familiar_name}", 404)
        return sorted(tags)

    def remote(self, name: str, *, auth: dict[str, Any] | None = None
               ) -> AbstractAsyncContextManager[RemoteImage]:
        """The image `name` on its registry, read lazily (remote.py): a build's
        --cache-from."""
        return open_remote(self.registries, self.images.content, name, auth)

    # -- push --------------------------------------------------------------------

    async def push(self, name: str, tag: str = "", *, auth: dict[str, Any] | None = None,
                   progress: Emit | None = None) -> None:
        parsed = parse_normalized(name)
        creds = credentials_for(parsed.domain, auth, None)
        async with new_session() as session:
            await push(self.pusher, session, name, tag, creds, progress or _discard)

    # -- login -------------------------------------------------------------------

    async def login(self, auth: dict[str, Any]) -> str:
        """Check credentials against a registry (POST /auth); returns an identity
        token when a token server grants a refresh token, else ""."""
        creds = AuthConfig.from_dict(auth)
        domain = login_domain(creds.server_address)
        last: DaemonError | None = None
        async with new_session() as session:
            for endpoint in await self.registries.endpoints(domain):
                if endpoint.mirror:
                    continue
                authorizer = self.registries.new_authorizer(creds)
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
        self.registries.forget(registry.endpoint, authorizer.creds)
        return ""

    # -- inspect -----------------------------------------------------------------

    async def inspect(self, name: str, *, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        """GET /distribution/{name}/json: the descriptor and platforms a reference names."""
        parsed = parse_normalized(name)
        if not parsed.tag and not parsed.digest:
            parsed = with_tag(parsed, "latest")
        creds = credentials_for(parsed.domain, auth, None)

        async def manifest(registry: Registry) -> tuple[Registry, bytes, str, str]:
            return registry, *await pull_mod.get_manifest(
                registry, parsed, parsed.digest or parsed.tag or "latest")

        async with new_session() as session:
            registry, body, ctype, digest = await self.registries.first_answer(
                session, parsed, creds, manifest)
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

