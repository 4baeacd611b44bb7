"""Image records in the metadata database (functions run inside `Database.run`)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict

from ..types import ImageRecord, Layer


def _records(conn: sqlite3.Connection, where: str = "", args: tuple[str, ...] = ()
             ) -> list[ImageRecord]:
    rows = conn.execute(f"SELECT * FROM images {where} ORDER BY added_seq", args).fetchall()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    marks = ",".join("?" * len(ids))
    layers: dict[str, list[Layer]] = defaultdict(list)
    for r in conn.execute(f"SELECT * FROM image_layers WHERE image_id IN ({marks}) "
                          "ORDER BY image_id, idx", ids):
        layers[r["image_id"]].append(Layer(r["diff_id"], r["chain_id"], r["blob_digest"],
                                           r["media_type"], r["blob_size"], r["size"]))
    tags: dict[str, list[str]] = defaultdict(list)
    for r in conn.execute(f"SELECT * FROM tags WHERE image_id IN ({marks}) ORDER BY ref", ids):
        tags[r["image_id"]].append(r["ref"])
    digests: dict[str, list[str]] = defaultdict(list)
    for r in conn.execute(f"SELECT * FROM digests WHERE image_id IN ({marks}) ORDER BY ref", ids):
        digests[r["image_id"]].append(r["ref"])
    children: dict[str, list[str]] = defaultdict(list)
    for r in conn.execute(f"SELECT id, parent FROM images WHERE parent IN ({marks})", ids):
        children[r["parent"]].append(r["id"])
    return [
        ImageRecord(
            id=r["id"], config=json.loads(r["config"]), layers=tuple(layers[r["id"]]),
            size=r["size"], created=r["created"], added_seq=r["added_seq"],
            manifest_digest=r["manifest_digest"], parent=r["parent"], top_chain=r["top_chain"],
            last_tag_time=r["last_tag_time"], tags=tuple(tags[r["id"]]),
            digests=tuple(digests[r["id"]]), children=tuple(children[r["id"]]))
        for r in rows
    ]


def get(conn: sqlite3.Connection, image_id: str) -> ImageRecord | None:
    found = _records(conn, "WHERE id = ?", (image_id,))
    return found[0] if found else None


def all_images(conn: sqlite3.Connection) -> list[ImageRecord]:
    return _records(conn)


def by_ref(conn: sqlite3.Connection, ref: str) -> str | None:
    table = "digests" if "@" in ref else "tags"
    row = conn.execute(f"SELECT image_id FROM {table} WHERE ref = ?", (ref,)).fetchone()
    return row[0] if row else None


def layer_blobs(conn: sqlite3.Connection, diff_id: str) -> list[tuple[str, str, int]]:
    """(blob digest, media type, size) of every recorded layer with this diff ID."""
    return [(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT blob_digest, media_type, blob_size FROM image_layers WHERE diff_id = ?",
        (diff_id,))]


def by_prefix(conn: sqlite3.Connection, hex_prefix: str) -> list[str]:
    like = "sha256:" + hex_prefix.replace("%", "").replace("_", "") + "%"
    return [r[0] for r in conn.execute("SELECT id FROM images WHERE id LIKE ? LIMIT 2", (like,))]


def insert(conn: sqlite3.Connection, image: ImageRecord) -> bool:
    """Add an image unless one with this ID exists; True if added."""
    if conn.execute("SELECT 1 FROM images WHERE id = ?", (image.id,)).fetchone():
        if image.manifest_digest:
            conn.execute("UPDATE images SET manifest_digest = ? WHERE id = ?"
                         " AND manifest_digest = ''",
                         (image.manifest_digest, image.id))
        return False
    seq = conn.execute("SELECT COALESCE(MAX(added_seq), 0) + 1 FROM images").fetchone()[0]
    conn.execute(
        "INSERT INTO images(id, config, manifest_digest, parent, top_chain, size, created, "
        "added_seq, last_tag_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (image.id, json.dumps(image.config), image.manifest_digest, image.parent,
         image.top_chain, image.size, image.created, seq, image.last_tag_time))
    conn.executemany(
        "INSERT INTO image_layers(image_id, idx, diff_id, chain_id, blob_digest, media_type, "
        "blob_size, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(image.id, i, layer.diff_id, layer.chain_id, layer.blob_digest, layer.media_type,
          layer.blob_size, layer.size) for i, layer in enumerate(image.layers)])
    return True


def set_tag(conn: sqlite3.Connection, ref: str, image_id: str, now: str) -> str | None:
    """Point ref at image_id; returns the image it pointed at before (if another)."""
    table = "digests" if "@" in ref else "tags"
    row = conn.execute(f"SELECT image_id FROM {table} WHERE ref = ?", (ref,)).fetchone()
    previous = row[0] if row else None
    conn.execute(f"INSERT OR REPLACE INTO {table}(ref, image_id) VALUES (?, ?)", (ref, image_id))
    conn.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (now, image_id))
    return previous if previous != image_id else None


def add_digest_ref(conn: sqlite3.Connection, ref: str, image_id: str) -> None:
    """Record a RepoDigest ("repo@sha256:...") without touching the tag time (a push)."""
    conn.execute("INSERT OR REPLACE INTO digests(ref, image_id) VALUES (?, ?)", (ref, image_id))


def remove_ref(conn: sqlite3.Connection, ref: str) -> None:
    conn.execute("DELETE FROM digests WHERE ref = ?", (ref,))
    conn.execute("DELETE FROM tags WHERE ref = ?", (ref,))


def remove(conn: sqlite3.Connection, image_id: str) -> None:
    conn.execute("UPDATE images SET parent = '' WHERE parent = ?", (image_id,))
    conn.execute("DELETE FROM images WHERE id = ?", (image_id,))


def remove_with_parents(conn: sqlite3.Connection, image: ImageRecord, *, parents: bool
                        ) -> list[tuple[ImageRecord, list[Layer]]]:
    """Delete an image row and, with parents, each parent left untagged and childless;
    returns each image deleted with the layers that no image uses any more after it
    went (top first, as `docker rmi` reports them)."""
    out: list[tuple[ImageRecord, list[Layer]]] = []
    current: ImageRecord | None = image
    while current is not None:
        remove(conn, current.id)
        used = {r[0] for r in conn.execute("SELECT DISTINCT chain_id FROM image_layers")}
        freed = []
        for layer in reversed(current.layers):
            if layer.chain_id not in used:
                freed.append(layer)
                used.add(layer.chain_id)
        out.append((current, freed))
        parent = get(conn, current.parent) if parents and current.parent else None
        current = parent if parent and parent.dangling and not parent.children else None
    return out
