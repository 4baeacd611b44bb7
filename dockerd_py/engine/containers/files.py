"""A container's files as front ends reach them: `docker cp` both ways, `docker export`,
`docker diff` and `docker commit` (the verbs live in copy.py and commit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..diff import Change
from . import commit as commit_verb
from . import copy as copy_verbs
from .fsverbs import FileAccess


class ContainerFiles:
    def __init__(self, access: FileAccess) -> None:
        self._fs = access

    async def stat_path(self, ref: str, path: str) -> dict[str, Any]:
        return await copy_verbs.stat_path(self._fs, ref, path)

    def archive_path(self, ref: str, path: str
                     ) -> AbstractAsyncContextManager[tuple[dict[str, Any],
                                                            AsyncIterator[bytes]]]:
        return copy_verbs.archive_path(self._fs, ref, path)

    async def extract_to_dir(self, ref: str, path: str, chunks: AsyncIterator[bytes], *,
                             copy_uid_gid: bool = False,
                             allow_overwrite_dir_with_file: bool = True) -> None:
        await copy_verbs.extract_to_dir(
            self._fs, ref, path, chunks, copy_uid_gid=copy_uid_gid,
            allow_overwrite_dir_with_file=allow_overwrite_dir_with_file)

    def export(self, ref: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return copy_verbs.export(self._fs, ref)

    async def changes(self, ref: str) -> list[Change]:
        return await commit_verb.changes(self._fs, ref)

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", pause: bool = True, changes: Sequence[str] = (),
                     config: dict[str, Any] | None = None) -> str:
        return await commit_verb.commit(self._fs, ref, repo=repo, tag=tag, comment=comment,
                                        author=author, pause=pause, changes=changes,
                                        config=config)
