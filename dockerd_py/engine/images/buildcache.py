"""Build cache records: which image a build step produced, by the step's key.

The key is the builder's (a digest of everything the step depends on); the
engine keeps the rows beside the images so that an entry goes with its image
(foreign key) and `docker system df` and `builder prune` read one store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from ..metadata.db import Database
from .mediatypes import now_rfc3339


@dataclass(frozen=True)
class Entry:
    key: str
    image_id: str
    parent: str
    description: str
    created: str
    last_used: str
    usage_count: int


class BuildCacheRecords:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lookup(self, key: str) -> str | None:
        """The image a step with this key produced, if it still exists; marks it used."""
        now = now_rfc3339()

        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT b.image_id FROM build_cache b JOIN images i "
                               "ON i.id = b.image_id WHERE b.key = ?", (key,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE build_cache SET last_used = ?, usage_count = usage_count + 1 "
                         "WHERE key = ?", (now, key))
            return str(row[0])

        return await self._db.run(find)

    async def record(self, key: str, image_id: str, parent: str, description: str) -> None:
        now = now_rfc3339()
        await self._db.run(lambda c: c.execute(
            "INSERT OR REPLACE INTO build_cache(key, image_id, parent, description, created, "
            "last_used) VALUES (?, ?, ?, ?, ?, ?)",
            (key, image_id, parent, description, now, now)))

    async def entries(self) -> list[Entry]:
        def read(conn: sqlite3.Connection) -> list[Entry]:
            return [Entry(r["key"], r["image_id"], r["parent"], r["description"], r["created"],
                          r["last_used"], r["usage_count"])
                    for r in conn.execute("SELECT * FROM build_cache ORDER BY created")]
        return await self._db.run(read)

    async def remove(self, keys: list[str]) -> None:
        await self._db.run(lambda c: c.executemany("DELETE FROM build_cache WHERE key = ?",
                                                   [(k,) for k in keys]))
