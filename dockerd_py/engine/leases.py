"""Leases: protection from garbage collection for work in progress.

A pull, load, import or build creates blobs and snapshots before any image
row references them, and reuses blobs and snapshots that other images made.
While its lease is held, everything recorded in it is a GC root. The lease
rides the context (contextvars are copied into `asyncio.to_thread` workers),
so the content store and the snapshotter record what they create without
being told about leases.

The protocol that makes reuse safe: *protect first, then look*. Whoever
decides to reuse a blob or a snapshot adds it to its lease before checking
that it exists; the collector decides about each blob and each snapshot
against the leases as they are at that moment, atomically with respect to
`protect_*` (one lock for blobs; for snapshots, the metadata transaction that
deletes the rows, which also serialises the snapshotter's own reads). So
either the collector saw the protection and kept the thing, or it removed it
before the check, which then finds it gone. A resource is added to the lease
before it gets its final name for the same reason, and releasing a lease waits
for a running collection to finish.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class Lease:
    digests: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)


current_lease: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "current_lease", default=None)

# Held for a set insertion, or for the collector's "is it leased? then delete it" of one
# blob: never across an await, never for long.
_guard = threading.Lock()


def protect_digest(digest: str) -> None:
    lease = current_lease.get()
    if lease is not None:
        with _guard:
            lease.digests.add(digest)


def protect_snapshot(name: str) -> None:
    lease = current_lease.get()
    if lease is not None:
        with _guard:
            lease.snapshots.add(name)


class LeaseManager:
    def __init__(self) -> None:
        self._live: set[Lease] = set()
        self.gc_lock = asyncio.Lock()

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        lease = Lease()
        with _guard:
            self._live.add(lease)
        token = current_lease.set(lease)
        try:
            yield lease
        finally:
            current_lease.reset(token)
            async with self.gc_lock:
                with _guard:
                    self._live.discard(lease)

    def _protected(self) -> tuple[set[str], set[str]]:
        digests: set[str] = set()
        snapshots: set[str] = set()
        for lease in self._live:
            digests |= lease.digests
            snapshots |= lease.snapshots
        return digests, snapshots

    def protected(self) -> tuple[set[str], set[str]]:
        """The digests and snapshot names every live lease holds now."""
        with _guard:
            return self._protected()

    def leased_snapshots(self) -> set[str]:
        """For the snapshotter's sweep, read inside its deleting transaction."""
        return self.protected()[1]

    def delete_unless_leased(self, digest: str, delete: Callable[[str], None]) -> bool:
        """delete(digest) unless a lease holds it, as one step against protect_digest
        (blocking; call from a thread). True if it was deleted."""
        with _guard:
            if any(digest in lease.digests for lease in self._live):
                return False
            delete(digest)
            return True
