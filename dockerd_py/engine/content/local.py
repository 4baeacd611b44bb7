"""The content store on disk: immutable blobs addressed by digest, in OCI layout.

Layout under the root: ``blobs/sha256/<hex>`` for committed blobs and
``ingest/<random>`` for writes in progress. A writer hashes as it writes,
fsyncs, checks size and digest, and only then renames into ``blobs/``: nothing
half-written ever carries a final name. The rename is made durable (``blobs/``
fsynced) before commit returns, so a metadata row written afterwards never names a
blob a power loss could take back; a caller committing many blobs at once asks for
``sync_name=False`` and calls ``sync_names()`` once after the last. Committing a blob
that already exists discards the new copy (deduplication by digest). Blocking; call
from threads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import BinaryIO

from ...errors import InvalidParameter, NotFound
from ..durable import fsync_dir
from ..leases import protect_digest
from .contract import check_digest


class Writer:
    """One blob being written; use as a context manager (aborts unless committed)."""

    def __init__(self, store: ContentStore) -> None:
        self._store = store
        fd, self._path = tempfile.mkstemp(dir=store.ingest_dir, prefix="data-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def copy_from(self, src: BinaryIO, bufsize: int = 1 << 20) -> None:
        while chunk := src.read(bufsize):
            self.write(chunk)

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self, expected: str | None = None, expected_size: int | None = None, *,
               sync_name: bool = True) -> str:
        digest = self.digest
        if expected is not None and digest != expected:
            self.abort()
            raise InvalidParameter(f"digest mismatch: expected {expected}, got {digest}")
        if expected_size is not None and self.size != expected_size:
            self.abort()
            raise InvalidParameter(f"size mismatch for {digest}: expected {expected_size}, "
                                   f"got {self.size}")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        protect_digest(digest)
        final = self._store.path(digest)
        if os.path.exists(final):
            os.unlink(self._path)
        else:
            os.rename(self._path, final)
            if sync_name:
                self._store.sync_names()
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._path):
            os.unlink(self._path)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class ContentStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.blobs_dir = os.path.join(root, "blobs", "sha256")
        self.ingest_dir = os.path.join(root, "ingest")
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.ingest_dir, exist_ok=True)
        os.chmod(root, 0o700)  # as dockerd's image/ (an older daemon left it 0755)

    def path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, check_digest(digest)[7:])

    def exists(self, digest: str) -> bool:
        return os.path.exists(self.path(digest))

    def size(self, digest: str) -> int:
        try:
            return os.stat(self.path(digest)).st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self) -> Writer:
        return Writer(self)

    def write_bytes(self, data: bytes, expected: str | None = None) -> str:
        with self.writer() as w:
            w.write(data)
            return w.commit(expected)

    def sync_names(self) -> None:
        """Make the blobs committed so far durable under their names."""
        fsync_dir(self.blobs_dir)

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self) -> Iterator[str]:
        for name in os.listdir(self.blobs_dir):
            if len(name) == 64:
                yield "sha256:" + name

    def disk_usage(self) -> int:
        return sum(e.stat().st_size for e in os.scandir(self.blobs_dir))

    def clear_ingest(self) -> None:
        """Discard partial writes (left by a crash); call before serving."""
        shutil.rmtree(self.ingest_dir, ignore_errors=True)
        os.makedirs(self.ingest_dir, exist_ok=True)
