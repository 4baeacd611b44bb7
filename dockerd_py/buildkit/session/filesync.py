"""File transfer over a session: the build context from the client (FileSync.DiffCopy,
the daemon receiving), exports back to it (FileSend.DiffCopy, the daemon sending)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from pathlib import Path

from .record import Session


async def sync_directory(session: Session, name: str, dest: Path, *,
                         include: Iterable[str] = (), exclude: Iterable[str] = (),
                         follow_paths: Iterable[str] = ()) -> None:
    """Make dest a copy of the client's directory `name` ("context", "dockerfile", a
    --build-context name) filtered by the .dockerignore-style patterns."""
    raise NotImplementedError("interface only: implemented in the next commit")


async def send_directory(session: Session, src: Path) -> None:
    """`--output type=local`: send the tree src to the client's directory."""
    raise NotImplementedError("interface only: implemented in the next commit")


async def send_tar(session: Session, chunks: AsyncIterable[bytes]) -> None:
    """`--output type=tar` (and oci/docker files): stream the bytes to the client's file."""
    raise NotImplementedError("interface only: implemented in the next commit")
