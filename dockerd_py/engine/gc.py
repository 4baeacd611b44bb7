"""Garbage collection: mark what the metadata reaches, sweep the rest.

`mark` is pure (a tri-colour walk over an explicit reference graph, as
containerd's pkg/gc). `collect` supplies the graph from the database: images
reach their config, manifest and layer blobs and their top snapshot;
snapshots reach their parents; live leases are extra roots. It runs under the
lease manager's GC lock, and asks the leases again at the moment it deletes:
for each blob, and inside the transaction that deletes snapshot rows, so work
that protected something after the mark (leases.py: protect, then look) keeps it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .content.contract import Store
from .leases import LeaseManager
from .metadata.db import Database
from .snapshots.contract import Snapshotter

log = logging.getLogger(__name__)

Node = tuple[str, str]  # ("content", digest) | ("snapshot", name)


def mark(roots: Iterable[Node], refs: Callable[[Node], Iterable[Node]]) -> set[Node]:
    seen: set[Node] = set()
    grey = list(roots)
    while grey:
        node = grey.pop()
        if node in seen:
            continue
        seen.add(node)
        grey.extend(n for n in refs(node) if n not in seen)
    return seen


@dataclass(frozen=True)
class Graph:
    roots: list[Node]
    edges: dict[Node, list[Node]]


def read_graph(conn: sqlite3.Connection) -> Graph:
    roots: list[Node] = []
    edges: dict[Node, list[Node]] = {}
    for row in conn.execute("SELECT id, manifest_digest, top_chain FROM images"):
        image = ("image", row["id"])
        roots.append(image)
        out = edges.setdefault(image, [("content", row["id"])])
        if row["manifest_digest"]:
            out.append(("content", row["manifest_digest"]))
        if row["top_chain"]:
            out.append(("snapshot", row["top_chain"]))
    for row in conn.execute("SELECT image_id, blob_digest FROM image_layers"):
        edges[("image", row["image_id"])].append(("content", row["blob_digest"]))
    for row in conn.execute("SELECT id FROM containers"):  # each keeps its active snapshot
        roots.append(("snapshot", row["id"]))
    for row in conn.execute("SELECT name, parent FROM snapshots WHERE parent != ''"):
        edges[("snapshot", row["name"])] = [("snapshot", row["parent"])]
    # Later services (containers, build cache) add their roots through this hook.
    for hook in EXTRA_ROOTS:
        roots.extend(hook(conn))
    return Graph(roots, edges)


EXTRA_ROOTS: list[Callable[[sqlite3.Connection], Iterable[Node]]] = []


@dataclass
class Stats:
    blobs: int = 0
    snapshots: int = 0
    bytes: int = 0


async def collect(db: Database, content: Store, snapshots: Snapshotter,
                  leases: LeaseManager, *, startup: bool = False) -> Stats:
    stats = Stats()
    async with leases.gc_lock:
        graph = await db.run(read_graph)
        leased_digests, leased_snapshots = leases.protected()
        roots = graph.roots + [("content", d) for d in leased_digests]
        roots += [("snapshot", s) for s in leased_snapshots]
        live = mark(roots, lambda n: graph.edges.get(n, ()))
        keep_snapshots = {name for kind, name in live if kind == "snapshot"}
        stats.snapshots = len(await snapshots.sweep(keep_snapshots, startup=startup,
                                                    leased=leases.leased_snapshots))

        def sweep_blobs() -> None:
            for digest in list(content.digests()):
                if ("content", digest) in live:
                    continue
                try:
                    size = content.size(digest)
                except Exception:
                    size = 0
                if leases.delete_unless_leased(digest, content.delete):
                    stats.bytes += size
                    stats.blobs += 1
            if startup:
                content.clear_ingest()

        await asyncio.to_thread(sweep_blobs)
    if stats.blobs or stats.snapshots:
        log.info("gc: removed %d blobs (%d bytes), %d snapshots", stats.blobs, stats.bytes,
                 stats.snapshots)
    return stats
