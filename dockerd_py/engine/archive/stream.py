"""Reading a tar stream once, forward, with Go's archive/tar rules for where it ends.

`TarStream` is what tarfile reads from: buffered, forward-only (tarfile in non-stream mode
only seeks forward when members are read in order, so a seek skips by reading), hashing
the bytes when asked (a layer's diff_id covers the whole uncompressed stream), and handing
file data straight to a file descriptor without copies. tarfile reads PAX and GNU
long-name headers whole: like Go's archive/tar, metadata beyond 2 MiB is refused, so that
a declared size cannot make us buffer gigabytes.

`members()` yields the entries as tarfile parses them, and then insists on a proper end:
tarfile stops silently at a short or garbled header after the first one, Go does not.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from .format import CHUNK, TarFormatError

_MAX_METADATA = 2 * CHUNK


class TarStream:
    """Forward-only, buffered (and, if asked, hashing) view of an uncompressed tar stream."""

    def __init__(self, source: BinaryIO, *, hashing: bool = True) -> None:
        self._source = source
        self._sha = hashlib.sha256() if hashing else None
        self._buf, self._off, self._consumed = b"", 0, 0
        self.last_read = b""

    def fill(self) -> bool:
        """Make sure unread bytes are buffered; False at EOF."""
        if self._off < len(self._buf):
            return True
        data = self._source.read(CHUNK)
        if self._sha is not None:
            self._sha.update(data)
        self._consumed += len(data)
        self._buf, self._off = data, 0
        return bool(data)

    def tell(self) -> int:
        return self._consumed - (len(self._buf) - self._off)

    def read(self, size: int) -> bytes:
        if not 0 <= size <= _MAX_METADATA:
            raise TarFormatError(f"header of {size} bytes is too large")
        parts = []
        while size > 0 and self.fill():
            part = self._buf[self._off : self._off + size]
            self._off += len(part)
            size -= len(part)
            parts.append(part)
        self.last_read = parts[0] if len(parts) == 1 else b"".join(parts)
        return self.last_read

    def seek(self, pos: int) -> int:
        skip = pos - self.tell()
        if skip < 0:
            raise TarFormatError("backward seek")
        while skip > 0 and self.fill():  # past the end is allowed, as for files
            step = min(skip, len(self._buf) - self._off)
            self._off += step
            skip -= step
        return self.tell()

    def copy_to(self, fd: int, size: int) -> None:
        while size > 0:
            if not self.fill():
                raise TarFormatError("unexpected EOF in file data")
            view = memoryview(self._buf)[self._off : self._off + size]
            self._off += len(view)
            size -= len(view)
            write_all(fd, view)

    def finish(self) -> str:
        """Read to EOF (the end padding belongs to the diff_id) and return the digest."""
        self._off = len(self._buf)
        while self.fill():
            self._off = len(self._buf)
        return "sha256:" + (self._sha.hexdigest() if self._sha is not None else "")


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def members(stream: TarStream) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    """The entries of the tar in stream (none for an empty stream), with the TarFile that
    reads their data. Raises tarfile.TarError or TarFormatError for a broken stream."""
    if not stream.fill():  # no bytes at all: no entries (Go's reader says the same)
        return
    tar = tarfile.TarFile(fileobj=cast(BinaryIO, stream), mode="r")
    last: tarfile.TarInfo | None = None
    while (m := _next(tar, stream, last)) is not None:
        last = m
        tar.members.clear()  # type: ignore[attr-defined]  # a layer may have millions
        yield tar, m
    # tarfile ends silently on a short or garbled header after the first; the last
    # block it read tells which. A clean EOF on a block boundary is accepted, as Go does.
    block = stream.last_read
    if block and stream.tell() - len(block) == tar.offset:
        if len(block) < tarfile.BLOCKSIZE:
            raise TarFormatError("unexpected EOF in header")
        if block.count(0) != tarfile.BLOCKSIZE:
            raise TarFormatError(f"invalid header at offset {tar.offset}")


def _next(tar: tarfile.TarFile, stream: TarStream,
          last: tarfile.TarInfo | None) -> tarfile.TarInfo | None:
    try:
        return tar.next()
    except tarfile.ReadError as e:
        # Go's archive/tar (dockerd, containerd) takes EOF right after the last member's
        # data, before its block padding, as the end of the archive; umoci writes such
        # layers. EOF anywhere else (inside the padding too) stays an error.
        if (last is not None and str(e) == "unexpected end of data"
                and not stream.fill()
                and stream.tell() == last.offset_data + last.size):
            return None
        raise
