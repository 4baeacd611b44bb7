"""Reading a tar stream once, forward, with Go's archive/tar rules for where it ends.

`TarStream` is what tarfile reads from: buffered, forward-only (tarfile in non-stream mode
only seeks forward when members are read in order, so a seek skips by reading), hashing
the bytes when asked (a layer's diff_id covers the whole uncompressed stream), and handing
file data straight to a file descriptor without copies.

Every tar the daemon reads (layers, load, import, build contexts, ADD, cp) goes through
`members()`, the one place where its metadata is bounded. tarfile reads PAX and GNU
long-name/long-link headers whole, chains of them recursively, GNU sparse maps block by
block and merges global PAX headers into later members: like Go's archive/tar, one header
beyond 2 MiB, more than 4 MiB of headers before one member, a sparse map beyond 1 MiB or
global headers beyond 2 MiB are refused before they are buffered, so that a declared size
cannot make us allocate gigabytes. PAX records are checked with Go's rules before
tarfile's regular expressions see them: a malformed record, or runs of digits long enough
to make those expressions quadratic, are refused.

`members()` yields the entries as tarfile parses them, and then insists on a proper end:
tarfile stops silently at a short or garbled header after the first one, Go does not.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, cast

from .format import CHUNK, TarFormatError, TarLimitError

_MAX_METADATA = 2 * CHUNK   # one PAX or GNU header; the global headers in force
_MAX_HEADERS = 2 * _MAX_METADATA  # all the headers of one member (a PAX and a long name)
_MAX_BLOCK_READS = CHUNK // tarfile.BLOCKSIZE  # block reads for one member: sparse maps
# Python's PAX parsing searches its records with expressions that cost the square of a run
# of digits: a header's runs, squared and added up, stay below this (a 4 KiB name is 16 Mi).
_MAX_DIGIT_WORK = 1 << 25
_DIGIT_RUN = re.compile(rb"[0-9]+")


class TarStream:
    """Forward-only, buffered (and, if asked, hashing) view of an uncompressed tar stream."""

    def __init__(self, source: BinaryIO, *, hashing: bool = True) -> None:
        self._source = source
        self._sha = hashlib.sha256() if hashing else None
        self._buf, self._off, self._consumed = b"", 0, 0
        self.last_read = b""
        # While tarfile reads the headers of one member (see `members`): what is left.
        self._header_bytes: int | None = None
        self._block_reads = 0

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

    def begin_headers(self) -> None:
        """tarfile is about to read the headers of the next member: start their budget."""
        self._header_bytes, self._block_reads = _MAX_HEADERS, 0

    def end_headers(self) -> None:
        self._header_bytes = None

    def _charge(self, size: int) -> None:
        if not 0 <= size <= _MAX_METADATA:
            raise TarLimitError(f"header of {size} bytes is too large")
        if self._header_bytes is None:
            return
        self._header_bytes -= size
        if self._header_bytes < 0:
            raise TarLimitError("headers of one entry are too large")
        if size == tarfile.BLOCKSIZE:
            self._block_reads += 1
            if self._block_reads > _MAX_BLOCK_READS:
                raise TarLimitError("sparse map is too large")

    def peek(self, size: int) -> bytes:
        """The next `size` bytes (fewer at EOF), left unread; `size` is bounded as a header."""
        if not 0 <= size <= _MAX_METADATA:
            raise TarLimitError(f"header of {size} bytes is too large")
        if self._off + size > len(self._buf):
            rest = [self._buf[self._off :]]
            have = len(rest[0])
            while have < size and (data := self._source.read(CHUNK)):
                if self._sha is not None:
                    self._sha.update(data)
                self._consumed += len(data)
                rest.append(data)
                have += len(data)
            self._buf, self._off = b"".join(rest), 0
        return self._buf[self._off : self._off + size]

    def read(self, size: int) -> bytes:
        self._charge(size)
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
        for view in self.data(size):
            write_all(fd, view)

    def data(self, size: int) -> Iterator[memoryview]:
        """The next `size` bytes (a member's data), as views of the buffer."""
        while size > 0:
            if not self.fill():
                raise TarFormatError("unexpected EOF in file data")
            view = memoryview(self._buf)[self._off : self._off + size]
            self._off += len(view)
            size -= len(view)
            yield view

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
    stream.begin_headers()  # the constructor reads the first member's headers
    try:
        tar = tarfile.TarFile(fileobj=cast(BinaryIO, stream), mode="r", tarinfo=_CheckedInfo)
    finally:
        stream.end_headers()
    last: tarfile.TarInfo | None = None
    while (m := _bounded_next(tar, stream, last)) is not None:
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


def _bounded_next(tar: tarfile.TarFile, stream: TarStream,
                  last: tarfile.TarInfo | None) -> tarfile.TarInfo | None:
    stream.begin_headers()
    try:
        m = _next(tar, stream, last)
    finally:
        stream.end_headers()
    # Global headers accumulate in tar.pax_headers for the rest of the archive.
    if sum(len(k) + len(v) for k, v in tar.pax_headers.items()) > _MAX_METADATA:
        raise TarLimitError("global headers are too large")
    return m


class _CheckedInfo(tarfile.TarInfo):
    """tarfile's TarInfo, with a PAX header's records checked before tarfile parses them."""

    def _proc_pax(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        records = cast(TarStream, tar.fileobj).peek(self.size)
        if len(records) < self.size:
            raise TarFormatError("unexpected EOF in header")
        check_pax(records)
        return cast(tarfile.TarInfo, super()._proc_pax(tar))  # type: ignore[misc]


def check_pax(records: bytes) -> None:
    """Go's parsePAX: records of "<length> <key>=<value>\n", each exactly its length."""
    pos = 0
    while pos < len(records):
        space = records.find(b" ", pos, pos + 21)
        if space <= pos or not records[pos:space].isdigit():
            raise TarFormatError("invalid PAX record")
        end = pos + int(records[pos:space])
        if end <= space + 1 or end > len(records) or records[end - 1] != 0x0A \
                or records.find(b"=", space + 1, end - 1) <= space + 1:
            raise TarFormatError("invalid PAX record")
        pos = end
    work = 0
    for run in _DIGIT_RUN.finditer(records):
        work += (run.end() - run.start()) ** 2
    if work > _MAX_DIGIT_WORK:
        raise TarLimitError("PAX header holds too many digits")


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
