"""Local directories of the client kept between builds, as BuildKit keeps them: the
file sync then only moves what changed since the last build from the same client
directory (its shared key). A directory is held by one build at a time (a second
build from the same directory waits); the least recently used ones beyond
MAX_KEPT are removed, and all of them when the daemon starts or the build cache
is pruned."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

MAX_KEPT = 16


class ContextDirs:
    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self._locks: dict[str, asyncio.Lock] = {}
        self._used: dict[str, float] = {}
        shutil.rmtree(self.root, ignore_errors=True)   # a previous run's: never trusted
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def hold(self, shared_key: str, name: str) -> AsyncIterator[Path]:
        """The directory for the client's `name` directory under `shared_key` ("" for
        none: a fresh directory, removed afterwards)."""
        if not shared_key:
            path = Path(await asyncio.to_thread(_fresh, self.root))
            try:
                yield path
            finally:
                await asyncio.to_thread(shutil.rmtree, path, True)
            return
        key = hashlib.sha256(f"{shared_key}\0{name}".encode()).hexdigest()[:32]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            path = self.root / key
            await asyncio.to_thread(path.mkdir, 0o755, False, True)
            self._used[key] = time.monotonic()
            try:
                yield path
            except BaseException:
                # an interrupted sync may have left it half-way: start over next time
                await asyncio.to_thread(shutil.rmtree, path, True)
                raise
        await self._evict()

    async def _evict(self) -> None:
        idle = sorted((t, k) for k, t in self._used.items() if not self._locks[k].locked())
        for _, key in idle[:max(0, len(self._used) - MAX_KEPT)]:
            await self._drop(key)

    async def clear(self) -> None:
        """Remove every idle directory (the build cache is pruned)."""
        for key in [k for k in self._used if not self._locks[k].locked()]:
            await self._drop(key)

    async def _drop(self, key: str) -> None:
        self._used.pop(key, None)
        self._locks.pop(key, None)
        await asyncio.to_thread(shutil.rmtree, self.root / key, True)


def _fresh(root: Path) -> str:
    return tempfile.mkdtemp(prefix="ctx-", dir=root)
