"""Compressed tar streams: recognised by their first bytes, decompressed on the fly.

gzip, zstd (skippable frames and several frames too), bzip2 and xz. Corrupt or truncated
compressed data becomes ArchiveError (the client's fault); I/O errors of the source stay
OSError.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from collections.abc import Callable
from typing import BinaryIO, cast

import zstandard

from .format import CHUNK, ArchiveError

try:  # ISA-L inflates gzip about four times faster than zlib: it paces `docker pull`
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    _GzipFile: type[gzip.GzipFile] = _igzip.GzipFile
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,
                                                     cast(type[Exception], _isal_zlib.error))
except ImportError:  # pragma: no cover - the stdlib is the fallback
    _GzipFile = gzip.GzipFile
    _INFLATE_ERRORS = (zlib.error,)
# How decompressors report corrupt or truncated input.
_DATA_ERRORS: tuple[type[Exception], ...] = (EOFError, lzma.LZMAError, zstandard.ZstdError,
                                             *_INFLATE_ERRORS)

_MAGICS = {b"\x1f\x8b\x08": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"BZh": "bzip2",
           b"\xfd7zXZ\x00": "xz"}


def detect_compression(head: bytes) -> str:
    """Name the compression of a stream from its first bytes (6 are enough)."""
    for magic, kind in _MAGICS.items():
        if head.startswith(magic):
            return kind
    # A zstd stream may open with skippable frames (magic 0x184D2A5?, little endian).
    if len(head) >= 4 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
        return "zstd"
    return "none"


def eof_wording(e: BaseException) -> str:
    """A decompressor's or tarfile's "ran out of data", said as Go says it."""
    text = str(e)
    if isinstance(e, EOFError) or "end of data" in text or "ended before" in text:
        return "unexpected EOF"
    return text


class _Reader:
    """The minimal readable stream tarfile and the decompressors use: puts peeked bytes back
    in front of `rest`, and, for a decompressor (`kind`), turns data errors into ArchiveError.
    """

    def __init__(self, rest: BinaryIO, head: bytes = b"", kind: str = "") -> None:
        self._rest, self._head, self._kind = rest, head, kind

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:
        """For ISA-L's gzip reader, which fills its own buffer."""
        data = self.read(len(buf))
        memoryview(buf)[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if self._head:
            cut = len(self._head) if size < 0 else size
            data, self._head = self._head[:cut], self._head[cut:]
            return data + self.read() if size < 0 else data
        try:
            return self._rest.read(size)
        except _DATA_ERRORS as e:
            raise ArchiveError(f"corrupt {self._kind} stream: {eof_wording(e)}") from e
        except OSError as e:
            # gzip/bz2 report bad data as OSError without errno; I/O errors of the source
            # carry one and are not the client's fault.
            if e.errno is not None or not self._kind:
                raise
            raise ArchiveError(f"corrupt {self._kind} stream: {e}") from e


_DECOMPRESSORS: dict[str, Callable[[BinaryIO], object]] = {
    "gzip": lambda f: _GzipFile(fileobj=f, mode="rb"),
    "bzip2": lambda f: bz2.BZ2File(f, "rb"),
    "xz": lambda f: lzma.LZMAFile(f, "rb"),
    # python-zstandard does not report a stream cut inside a frame: the tar reader catches
    # most such cuts, the caller's diff_id check the rest.
    "zstd": lambda f: zstandard.ZstdDecompressor().stream_reader(
        f, read_size=CHUNK, read_across_frames=True),
}


def decompressed(fileobj: BinaryIO) -> BinaryIO:
    """Wrap a readable stream (seekable or not) so that it yields the uncompressed bytes."""
    head = b""
    while len(head) < 6 and (more := fileobj.read(6 - len(head))):
        head += more
    source = cast(BinaryIO, _Reader(fileobj, head))
    kind = detect_compression(head)
    if kind == "none":
        return source
    inner = cast(BinaryIO, _DECOMPRESSORS[kind](source))
    return cast(BinaryIO, _Reader(inner, kind=kind))
