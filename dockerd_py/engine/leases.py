"""Leases: protection from garbage collection for work in progress.

A pull, load, import or build creates blobs and snapshots before any image
row references them. While its lease is held, everything recorded in it is a
GC root. The lease rides the context (contextvars are copied into
`asyncio.to_thread` workers), so the content store and the snapshotter record
what they create without being told about leases.

Ordering that makes this safe: a resource is added to the lease *before* it
gets its final name, the GC re-checks live leases before deleting anything,
and releasing a lease waits for a running GC to finish.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Lease:
    digests: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)


current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "current_lease", default=None)


def protect_digest(digest: str) -> None:
    lease = current_lease.get()
    if lease is not None:
        lease.digests.add(digest)


def protect_snapshot(name: str) -> None:
    lease = current_lease.get()
    if lease is not None:
        lease.snapshots.add(name)


class LeaseManager:
    def __init__(self) -> None:
        self._live: set[Lease] = set()
        self.gc_lock = asyncio.Lock()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        lease = Lease()
        self._live.add(lease)
        token = current_lease.set(lease)
        try:
            yield lease
        finally:
            current_lease.reset(token)
            async with self.gc_lock:
                self._live.discard(lease)

    def protected(self) -> tuple[set[str], set[str]]:
        digests: set[str] = set()
        snapshots: set[str] = set()
        for lease in list(self._live):
            digests |= lease.digests
            snapshots |= lease.snapshots
        return digests, snapshots
