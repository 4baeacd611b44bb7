"""`RUN --mount=type=cache`: directories that persist between builds.

Each cache id has a directory under `<data root>/builder-cache-mounts/`
(named by a digest of the id, never by the id itself: the id is the
client's), holding `meta.json` (id, times, use count) and one or more
instances `data-N/` (a `sharing=private` cache that is busy gets a new
instance; `shared` ones are used by every step at once; `locked` ones one
step at a time). A cache is created empty (owned by uid/gid, with mode) or
seeded from a stage's or image's directory (`from`/`source`), and from then
on is never part of any layer or the build cache key. `docker builder prune`
and `POST /build/prune` remove the caches no step is using; `docker system
df` counts them (Type "exec.cachemount", as BuildKit's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dockerd_py.engine.images.mediatypes import now_rfc3339

_META = "meta.json"


@dataclass(frozen=True)
class CacheMountRecord:
    key: str            # the directory's name (a digest of the id)
    id: str
    description: str
    created: str
    last_used: str
    usage_count: int
    size: int
    in_use: bool


def _tree_size(path: str) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


class CacheMounts:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._busy: dict[str, int] = {}                 # instance dir -> users
        self._locks: dict[str, asyncio.Lock] = {}       # key -> lock (sharing=locked)
        self._choosing: dict[str, asyncio.Lock] = {}    # key -> lock (instance choice)

    def _key(self, cache_id: str) -> str:
        return hashlib.sha256(cache_id.encode()).hexdigest()[:32]

    @contextlib.asynccontextmanager
    async def use(self, cache_id: str, sharing: str, seed: Callable[[str], None],
                  description: str = "") -> AsyncIterator[str]:
        """The host directory of cache `cache_id` for one step; `seed(dir)` fills a new
        one (blocking; it runs in a thread); description: what `docker system df -v`
        shows for a new cache."""
        key = self._key(cache_id)
        async with contextlib.AsyncExitStack() as stack:
            if sharing == "locked":
                await stack.enter_async_context(self._locks.setdefault(key, asyncio.Lock()))
            # one step at a time chooses (and maybe creates) an instance of this cache
            async with self._choosing.setdefault(key, asyncio.Lock()):
                directory = self._choose(key, sharing)
                self._busy[directory] = self._busy.get(directory, 0) + 1
                stack.callback(self._release, directory)
                await asyncio.to_thread(self._prepare, key, directory, cache_id, seed,
                                        description)
            yield directory

    def _release(self, directory: str) -> None:
        self._busy[directory] -= 1
        if not self._busy[directory]:
            del self._busy[directory]

    def _choose(self, key: str, sharing: str) -> str:
        """The instance a step gets: the first, or for `private` the first no step uses."""
        n = 0
        while True:
            directory = os.path.join(self.root, key, f"data-{n}")
            if sharing != "private" or directory not in self._busy:
                return directory
            n += 1

    def _prepare(self, key: str, directory: str, cache_id: str,
                 seed: Callable[[str], None], description: str) -> None:
        top = os.path.join(self.root, key)
        os.makedirs(top, mode=0o700, exist_ok=True)
        meta = self._read_meta(top) or {"id": cache_id, "created": now_rfc3339(),
                                         "usage_count": 0, "description": description}
        meta["last_used"] = now_rfc3339()
        meta["usage_count"] = int(str(meta.get("usage_count", 0))) + 1
        self._write_meta(top, meta)
        if not os.path.isdir(directory):
            partial = directory + ".new"
            shutil.rmtree(partial, ignore_errors=True)
            os.mkdir(partial, 0o755)
            seed(partial)
            os.rename(partial, directory)

    @staticmethod
    def _read_meta(top: str) -> dict[str, object] | None:
        try:
            with open(os.path.join(top, _META)) as f:
                value = json.load(f)
            return value if isinstance(value, dict) else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _write_meta(top: str, meta: dict[str, object]) -> None:
        tmp = os.path.join(top, _META + ".tmp")
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, os.path.join(top, _META))

    # -- accounting ----------------------------------------------------------------

    def records(self) -> list[CacheMountRecord]:
        """Every cache (blocking: sizes are walked)."""
        out = []
        for key in sorted(os.listdir(self.root)):
            top = os.path.join(self.root, key)
            meta = self._read_meta(top)
            if meta is None:
                continue
            busy = any(d.startswith(top + "/") for d in self._busy)
            out.append(CacheMountRecord(
                key, str(meta.get("id", "")), str(meta.get("description", "")),
                str(meta.get("created", "")),
                str(meta.get("last_used", "")), int(str(meta.get("usage_count", 0))),
                _tree_size(top), busy))
        return out

    def remove(self, keys: list[str]) -> int:
        """Remove the caches (not those in use); returns the bytes freed (blocking)."""
        freed = 0
        for record in self.records():
            if record.key in keys and not record.in_use:
                freed += record.size
                shutil.rmtree(os.path.join(self.root, record.key), ignore_errors=True)
        return freed
