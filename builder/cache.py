"""The build cache: step key -> image, durable in the metadata database.

A key is an explicit digest (where the legacy builder compared the configs of
the parent's child images): the parent image ID, the step's full command line
(RUN's command with the build args in effect, or a metadata step's `#(nop)`
marker, which for COPY/ADD carries the content digest of every source) and
the runtime config the step ran with. Equal keys give the same image, so a
fully cached rebuild reads only rows and digests. Entries are removed with
their image (foreign key) and by `docker builder prune`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from dockerd_py.engine.images.mediatypes import now_rfc3339
from dockerd_py.engine.metadata.db import Database


def step_key(parent_id: str, created_by: str, runtime_config: dict[str, Any],
             inputs: list[str] | None = None) -> str:
    document = json.dumps([parent_id, created_by, runtime_config, inputs or []],
                          sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(document.encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    key: str
    image_id: str
    parent: str
    description: str
    created: str
    last_used: str
    usage_count: int


class BuildCache:
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
