"""The snapshotter contract (after containerd's core/snapshots).

Lifecycle:
  * ``prepare(key, parent)`` makes an *active* snapshot: a writable directory
    identified by ``key``, stacked on the committed snapshot ``parent`` (by name).
  * ``commit(name, key)`` turns the active snapshot into a *committed* one
    called ``name``; committed snapshots are immutable and are the only valid
    parents. Image layers are committed under their chain ID, so a layer shared
    by two images is unpacked once.
  * ``mounts(key)`` tells how to mount an active snapshot: its own directory as
    the overlay upper dir and its parents' directories as lower dirs.
  * ``remove(name)`` forgets a snapshot that has no children.

Importing a two-layer image: prepare("extract-1", ""), apply layer 1 into its
directory, commit(chainID1, "extract-1"); prepare("extract-2", chainID1),
apply layer 2, commit(chainID2, "extract-2"). Running a container on it:
prepare(<container id>, chainID2), mount, run, and later remove(<container id>).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["active", "committed"]


@dataclass(frozen=True)
class Info:
    id: int
    name: str
    parent: str
    kind: Kind
    size: int
    created: float


@dataclass(frozen=True)
class Mount:
    type: str
    source: str
    options: tuple[str, ...]
