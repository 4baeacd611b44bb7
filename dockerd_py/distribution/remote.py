"""An image on a registry, read without pulling it: its manifest and config now, a
layer only when asked (a build's --cache-from fetches the layers of the steps it
hits, as BuildKit's cache importer does, never the whole image).

The endpoints are the pull's (mirrors first, then the registry), with the
caller's credentials; the registry session stays open while the caller holds
the RemoteImage. A layer is fetched and unpacked through the pull's own code
(verified against its digest and diff ID) into the snapshot its chain ID
names, under the caller's lease; one already here is not fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..engine.content.contract import Store
from ..engine.images.unpack import chain_ids
from ..engine.leases import protect_digest, protect_snapshot
from ..engine.reference import parse_normalized, with_default_tag
from ..engine.snapshots.contract import Snapshotter
from ..engine.types import Layer
from . import blobs, progress
from . import pull as pull_mod
from .manifests import Manifest
from .registries import Registries, credentials_for
from .registry import Registry, new_session


class RemoteImage:
    def __init__(self, name: str, registry: Registry, repo: str, manifest: Manifest,
                 config: bytes, diff_ids: list[str]) -> None:
        self.name = name
        self.manifest = manifest
        self.config = config                  # the config blob, as the registry has it
        self.diff_ids = diff_ids
        self._registry = registry
        self._repo = repo
        self._locks: dict[int, asyncio.Lock] = {}

    async def layer(self, index: int, content: Store, snapshots: Snapshotter) -> Layer:
        """Layer `index` (0 is the bottom one) unpacked on the layers below it, which must
        be here already (the caller walks up from the bottom)."""
        desc = self.manifest.layers[index]
        chains = chain_ids(self.diff_ids[:index + 1])
        chain, parent = chains[-1], (chains[-2] if index else "")
        protect_digest(desc.digest)
        protect_snapshot(chain)
        async with self._locks.setdefault(index, asyncio.Lock()):
            info = await snapshots.stat(chain)
            have_blob = await asyncio.to_thread(content.exists, desc.digest)
            if info is not None and info.kind == "committed":
                if not have_blob:
                    await blobs.fetch_blob(self._registry, self._repo, desc.digest, desc.size,
                                           content)
                size = info.size
            elif have_blob:
                size = (await blobs.unpack_stored(content, snapshots, desc.digest,
                                                  self.diff_ids[index], chain, parent)).size
            else:
                counter = blobs.Counter(progress.short(desc.digest), desc.size,
                                       progress.discard)
                size = (await blobs.fetch_and_unpack(
                    self._registry, self._repo, desc.digest, desc.size, self.diff_ids[index],
                    chain, parent, content, snapshots, counter)).size
        return Layer(self.diff_ids[index], chain, desc.digest, desc.media_type, desc.size, size)


@contextlib.asynccontextmanager
async def open_remote(registries: Registries, content: Store, name: str,
                      auth: Mapping[str, Any] | None) -> AsyncIterator[RemoteImage]:
    """The image `name` (default tag latest) for this platform; raises the pull's errors
    (NotFound, RegistryError, TransportError) when it cannot be read."""
    ref = with_default_tag(parse_normalized(name))
    creds = credentials_for(ref.domain, auth, None)
    async with new_session() as session:
        resolved = await registries.first_answer(
            session, ref, creds, lambda registry: pull_mod.resolve(registry, ref, None))
        manifest = resolved.manifest
        config = await blobs.fetch_json_blob(resolved.registry, ref.path,
                                             manifest.config.digest, manifest.config.size,
                                             content)
        diff_ids = pull_mod.check_config(config, manifest, ref, None, False)
        yield RemoteImage(ref.string(), resolved.registry, ref.path, manifest, config,
                          diff_ids)
