"""The snapshotter contract (after containerd's core/snapshots).

A snapshotter keeps the file system trees that images and containers stand
on, stacked as layers: each snapshot has at most one parent, and a mount of
a snapshot shows its parents' trees beneath its own.

Lifecycle:
  * ``prepare(key, parent)`` makes an *active* snapshot: a writable directory
    identified by ``key``, stacked on the committed snapshot ``parent`` (by name,
    "" for none). The key must be new; the snapshot is recorded in the lease of
    the calling context (leases.py) until something durable references it.
  * ``commit(name, key, size)`` turns the active snapshot into a *committed* one
    called ``name``; committed snapshots are immutable and are the only valid
    parents. Image layers are committed under their chain ID, so a layer shared
    by two images is unpacked once: when ``name`` exists already (another unpack
    won the race) the active snapshot is dropped and the existing one returned.
  * ``mounts(key)`` tells how to mount a snapshot: an active one as an overlay
    with its own directory as the upper dir and its parents' as lower dirs; a
    committed one read-only (a *view*). Mounts whose lower dirs are relative must
    be made with ``root`` as the working directory.
  * ``remove(name)`` forgets a snapshot that has no children (Conflict if it has,
    NotFound if there is no such snapshot) and deletes its directory.
  * ``abort(key)`` is the failure path of a prepare that was being filled: the
    directory goes before the row, so that a full disk gets its space back even when
    the row's deletion cannot be written yet.
  * ``sweep(keep, leased=...)`` is the garbage collector's: every snapshot not in
    ``keep`` goes, and any directory no snapshot owns. ``leased()`` is asked inside
    the transaction that deletes the rows, so a snapshot a lease protected after
    the collector's mark (and before its own existence check, see leases.py) stays,
    with its parents.

Importing a two-layer image: prepare("extract-1", ""), apply layer 1 into its
directory, commit(chainID1, "extract-1"); prepare("extract-2", chainID1),
apply layer 2, commit(chainID2, "extract-2"). Running a container on it:
prepare(<container id>, chainID2), mount, run, and later remove(<container id>).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["active", "committed"]


@dataclass(frozen=True)
class Info:
    id: int            # names the snapshot's directory
    name: str          # the key of an active snapshot, the name of a committed one
    parent: str        # the committed snapshot below it, "" for none
    kind: Kind
    size: int          # bytes of its own tree (known once committed)
    created: float


@dataclass(frozen=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...]


class Snapshotter(Protocol):
    @property
    def root(self) -> str:
        """Where the snapshots' directories live (relative lower dirs start here)."""

    def fs_dir(self, info: Info) -> str:
        """The directory holding a snapshot's own tree."""

    async def stat(self, name: str) -> Info | None:
        """The snapshot of a key or name, or None."""

    async def prepare(self, key: str, parent: str = "") -> Info: ...

    async def commit(self, name: str, key: str, size: int) -> Info: ...

    async def mounts(self, key: str) -> builtins.list[Mount]: ...

    async def chain(self, name: str) -> builtins.list[Info]:
        """The snapshot and its ancestors, nearest first (NotFound if one is missing)."""

    async def list(self) -> builtins.list[Info]:
        """Every snapshot, oldest first."""

    async def remove(self, name: str) -> None: ...

    async def abort(self, key: str) -> None:
        """Roll back a prepare whose filling failed (a full disk, a bad layer): the active
        snapshot's directory goes first, then its row; nothing for a missing key."""

    async def sweep(self, keep: Iterable[str], *, startup: bool = False,
                    leased: Callable[[], Iterable[str]] = tuple) -> builtins.list[Info]: ...
