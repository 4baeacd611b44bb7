"""The content store contract (after containerd's core/content).

Content is immutable blobs addressed by their digest (``sha256:<hex>``): the
layers as they came (compressed), image configs and manifests. A blob is
written once and read many times; two writes of the same bytes store one blob.

Lifecycle of a blob:
  * ``writer()`` opens an *ingest*: bytes written to it are hashed as they come
    and kept apart from the committed blobs. ``commit(expected, expected_size)``
    checks size and digest, makes the bytes durable, and only then gives them
    their final name; a mismatch raises and keeps nothing. A writer used as a
    context manager aborts unless committed, so a failure midway leaves no blob.
  * A committed blob is recorded in the lease of the calling context (see
    leases.py) before it gets its name, so the garbage collector cannot take it
    before an image record refers to it.
  * Readers ask by digest (``exists``, ``size``, ``open``, ``read_bytes``); an
    unknown digest is NotFound and a malformed one InvalidParameter.
  * ``delete`` and ``digests`` are the garbage collector's; ``clear_ingest``
    drops what a crashed daemon was writing (call before serving).

The store is blocking (file I/O): call it from worker threads.
Roles, as containerd composes them: a reader needs a ``Provider``, a writer an
``Ingester``, the collector a ``Manager``; ``Store`` is all three.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from ...errors import InvalidParameter

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")  # fullmatch: `$` passes a final "\n"


def check_digest(digest: str) -> str:
    """The digest if it is a well-formed sha256 digest; InvalidParameter otherwise."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidParameter(f"invalid digest: {digest!r}")
    return digest


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobWriter(Protocol):
    size: int  # bytes written so far

    def write(self, data: bytes | memoryview) -> int: ...

    def copy_from(self, src: BinaryIO, bufsize: int = 1 << 20) -> None: ...

    @property
    def digest(self) -> str:
        """The digest of what was written so far."""

    def commit(self, expected: str | None = None, expected_size: int | None = None, *,
               sync_name: bool = True) -> str:
        """Check and name the blob; returns its digest. The name is durable on return
        unless sync_name is False (then call the store's sync_names() before a metadata
        row refers to it)."""

    def abort(self) -> None: ...

    def __enter__(self) -> BlobWriter: ...

    def __exit__(self, *exc: object) -> None: ...


class Provider(Protocol):
    def exists(self, digest: str) -> bool: ...

    def size(self, digest: str) -> int: ...

    def open(self, digest: str) -> BinaryIO: ...

    def read_bytes(self, digest: str) -> bytes: ...


class Ingester(Protocol):
    def writer(self) -> BlobWriter: ...

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        """Write and commit a small blob in one call; returns its digest."""

    def sync_names(self) -> None:
        """Make the names of the blobs committed so far durable (one directory fsync)."""


class Manager(Protocol):
    def delete(self, digest: str) -> None:
        """Remove a blob (nothing if it is gone already)."""

    def digests(self) -> Iterator[str]: ...

    def disk_usage(self) -> int:
        """Bytes the committed blobs take."""

    def clear_ingest(self) -> None: ...


class Store(Provider, Ingester, Manager, Protocol):
    """The whole content store."""
