"""The builder service the API calls: POST /build, /build/prune, and the cache's usage.

A build runs under one lease (everything it writes is safe from garbage
collection until an image row holds it) inside a private directory under the
data root (`builder/ctx-*`: the context, step bundles, views). The directory
goes whatever happens; step snapshots are removed by their steps, and a build
that fails or is cancelled leaves nothing a later GC would not reclaim.

A daemon killed mid-build leaves all of that behind, and more: the steps' root
filesystems and image views stay mounted, and a RUN step's container keeps
running. `recover()`, at the next start before anything else looks at the
store, stops those containers, unmounts what is mounted under the builder
directory (and nothing outside it) and removes the build directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.parser import parse
from dockerd_py.engine.images.buildcache import Entry
from dockerd_py.engine.mount import mounts_under, unmount_under
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import DaemonError, InvalidParameter

from .backend import Backend
from .build import Build
from .cachemounts import CacheMounts
from .context import BuildContext
from .legacy import LegacyRenderer, Sink
from .observer import BuildObserver
from .options import BuildOptions
from .request import BuildRequest, BuildResult
from .solve import check_syntax, options_of

log = logging.getLogger(__name__)
CACHE_MOUNTS = "builder-cache-mounts"  # <data root>/builder-cache-mounts
CACHE_MOUNT_PREFIX = "sha256:"  # cache mount keys are hex digests too (25 shown, as BuildKit)
_STEP_DIR = re.compile(r"[0-9a-f]{12}")
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CacheRecord:
    """A cache entry as `docker system df -v` shows it."""

    entry: Entry
    size: int          # bytes the step's layer adds (0 for metadata steps)
    in_use: bool       # its image is tagged, or the parent of a tagged image chain
    shared: bool
    type: str = "regular"  # "exec.cachemount": a RUN --mount=type=cache directory


class BuildService:
    def __init__(self, backend: Backend, root: str) -> None:
        self.backend = backend
        self.root = root                  # <data root>/builder: contexts and step bundles
        self._cleanups: set[asyncio.Future[None]] = set()
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)
        # beside the build directories, never among them: those go at every start
        self.cache_mounts = CacheMounts(os.path.join(os.path.dirname(self.root), CACHE_MOUNTS))

    async def recover(self) -> None:
        """Clear what a daemon that died mid-build left (call at start, before any build
        and before the garbage collector sweeps the steps' snapshots)."""
        steps = await asyncio.to_thread(_step_dirs, self.root)
        for name in self.backend.runtimes.all():
            runtime = self.backend.runtimes.get(name)
            for cid in await asyncio.to_thread(_runtime_ids, runtime.root):
                if cid[:12] in steps:  # a step's state dir is named by its key's prefix
                    log.info("stopping build step %s left by a previous daemon", cid[:12])
                    try:
                        await runtime.delete(cid, force=True)
                    except DaemonError as e:
                        log.warning("build step %s: %s", cid[:12], e)
        await asyncio.to_thread(_sweep, self.root)

    async def build(self, chunks: AsyncIterator[bytes], options: BuildOptions,
                    sink: Sink) -> ImageRecord:
        """Run a build; progress goes to sink. Errors before the first message
        (context, Dockerfile syntax) are raised for the caller to answer with a status;
        later ones too, and the caller reports them in-band."""
        context = await BuildContext.receive(chunks, self.root)
        try:
            source = await asyncio.to_thread(context.read_dockerfile, options.dockerfile)
            if not source:
                raise InvalidParameter(f"the Dockerfile ({options.dockerfile}) cannot be empty")
            dockerfile = _parse(source, options.dockerfile)
            await asyncio.to_thread(context.apply_dockerignore)
            return await self._run(context, dockerfile, options, LegacyRenderer(sink))
        finally:
            self._close_later(context)

    async def solve(self, request: BuildRequest, directory: str) -> BuildResult:
        """A BuildKit build: the context is `directory` (the caller's: read, never
        changed), progress goes to request.observer. Raises DaemonError subclasses
        (InvalidParameter for the Dockerfile and the request, StepFailed for a RUN)."""
        options = options_of(request)
        if not request.dockerfile.strip():
            raise InvalidParameter("the Dockerfile cannot be empty")
        dockerfile = _parse(request.dockerfile, request.dockerfile_name)
        check_syntax(dockerfile.directives.get("syntax", ""))
        context = await asyncio.to_thread(BuildContext.of_directory, directory, self.root)
        try:
            image = await self._run(context, dockerfile, options, request.observer)
        finally:
            self._close_later(context)
        return BuildResult(image.id, image.config)

    async def _run(self, context: BuildContext, dockerfile: ins.Dockerfile,
                   options: BuildOptions, observer: BuildObserver) -> ImageRecord:
        async with self.backend.leases.lease():
            build = Build(self.backend, context, dockerfile, options, observer, context.root,
                          self.cache_mounts)
            image = await build.run()
            for ref in options.tags:
                await self.backend.images.set_tag(image, ref)
        await observer.done(image.id, options.tags)
        return image

    def _close_later(self, context: BuildContext) -> None:
        # removing a big context takes a while: not on the client's time
        cleanup = asyncio.ensure_future(context.close())
        self._cleanups.add(cleanup)
        cleanup.add_done_callback(self._cleanups.discard)

    # -- cache usage and pruning --------------------------------------------

    async def usage(self) -> list[CacheRecord]:
        entries = await self.backend.cache.entries()
        images = {i.id: i for i in await self.backend.images.list()}
        out = []
        for entry in entries:
            image = images.get(entry.image_id)
            parent = images.get(entry.parent)
            if image is None:
                continue
            size = image.size - (parent.size if parent else 0)
            out.append(CacheRecord(entry, max(size, 0), bool(image.tags), False))
        for m in await asyncio.to_thread(self.cache_mounts.records):
            entry = Entry(CACHE_MOUNT_PREFIX + m.key, "", "", m.description or m.id, m.created,
                          m.last_used, m.usage_count)
            out.append(CacheRecord(entry, m.size, m.in_use, False, "exec.cachemount"))
        return out

    async def prune(self, *, all: bool = False, keep_storage: int = 0,
                    until: float | None = None) -> tuple[list[str], int]:
        """Remove cache entries (all, or those whose image is not tagged) and the
        intermediate images only they kept; returns (entry IDs, bytes reclaimed)."""
        records = await self.usage()
        records.sort(key=lambda r: r.entry.last_used)
        victims = [r for r in records if (all and r.type == "regular") or not r.in_use]
        if until is not None:
            victims = [r for r in victims if parse_time(r.entry.created) < until]
        if keep_storage:
            total = sum(r.size for r in records)
            chosen = []
            for r in victims:
                if total <= keep_storage:
                    break
                chosen.append(r)
                total -= r.size
            victims = chosen
        mounts = [r for r in victims if r.type == "exec.cachemount"]
        regular = [r for r in victims if r.type == "regular"]
        reclaimed = 0
        if mounts:
            reclaimed += await asyncio.to_thread(
                self.cache_mounts.remove,
                [r.entry.key.removeprefix(CACHE_MOUNT_PREFIX) for r in mounts])
        if regular:
            await self.backend.cache.remove([r.entry.key for r in regular])
            before = await self._stored_bytes()
            await self._remove_intermediates({r.entry.image_id for r in regular})
            await self.backend.images.collect_garbage()
            reclaimed += max(before - await self._stored_bytes(), 0)
        return [r.entry.key.removeprefix("sha256:")[:25] for r in mounts + regular], reclaimed

    async def _stored_bytes(self) -> int:
        """Blobs plus unpacked layers: what pruning can give back."""
        blobs = await asyncio.to_thread(self.backend.content.disk_usage)
        layers = sum(i.size for i in await self.backend.snapshots.list() if i.kind == "committed")
        return int(blobs) + layers

    async def _remove_intermediates(self, image_ids: set[str]) -> None:
        """Drop untagged images no container and no remaining cache entry uses, children
        before parents."""
        def removable(image: ImageRecord) -> bool:
            running, stopped = self.backend.images.containers_using(image.id)
            return not (image.tags or image.digests or running or stopped)

        remaining = {e.image_id for e in await self.backend.cache.entries()}
        changed = True
        while changed:
            changed = False
            images = {i.id: i for i in await self.backend.images.list()}
            for image_id in list(image_ids):
                image = images.get(image_id)
                if image is None:
                    image_ids.discard(image_id)
                    continue
                if image.children or image_id in remaining or not removable(image):
                    continue
                await self.backend.images.forget(image_id)
                image_ids.discard(image_id)
                changed = True


def _parse(source: bytes, name: str) -> ins.Dockerfile:
    try:
        return parse(source, name=name)
    except ins.DockerfileError as e:
        raise InvalidParameter(e.message) from None  # already the client's wording


def _step_dirs(root: str) -> set[str]:
    """Names of the step directories of every build directory (a step key's prefix)."""
    out: set[str] = set()
    for build in os.listdir(root):
        with contextlib.suppress(OSError):
            out.update(e for e in os.listdir(os.path.join(root, build))
                       if _STEP_DIR.fullmatch(e))
    return out


def _runtime_ids(root: str | None) -> list[str]:
    if not root or not os.path.isdir(root):
        return []
    return [e for e in os.listdir(root) if _CONTAINER_ID.fullmatch(e)]


def _sweep(root: str) -> None:
    for point in unmount_under(root):
        log.info("unmounted %s, left by a previous daemon", point)
    mounted = mounts_under(root)  # what would not come off: never rmtree into a mount
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if any(p == path or p.startswith(path + "/") for p in mounted):
            log.warning("build directory %s is still mounted: left in place", path)
            continue
        shutil.rmtree(path, ignore_errors=True)
