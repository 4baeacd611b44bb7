"""Write an incoming layer stream into the content store, one pass."""

from __future__ import annotations

import asyncio
import bz2
import lzma
from collections.abc import AsyncIterator

from ..archive import detect_compression
from ..content.contract import BlobWriter, Store
from .mediatypes import layer_media_type
from .unpack import LayerBlob

_FLUSH = 1 << 20


async def ingest_stream(content: Store, chunks: AsyncIterator[bytes]) -> LayerBlob:
    """Store a tar stream (plain, gzip or zstd kept as sent; bzip2/xz stored
    decompressed, as OCI has no media type for them) and return its blob."""
    writer = content.writer()
    try:
        pending = bytearray()
        head = b""
        decoder: object | None = None
        async for chunk in chunks:
            if not head:
                head = chunk[:8]
                kind = detect_compression(head)
                decoder = {"bzip2": bz2.BZ2Decompressor, "xz": lzma.LZMADecompressor}.get(kind)
                if decoder is not None:
                    decoder = decoder()
            pending += chunk
            if len(pending) >= _FLUSH:
                await asyncio.to_thread(_write, writer, bytes(pending), decoder)
                pending.clear()
        if pending:
            await asyncio.to_thread(_write, writer, bytes(pending), decoder)
        first = head if decoder is None else b""
        digest = await asyncio.to_thread(writer.commit)
        return LayerBlob(digest, layer_media_type(first), writer.size)
    finally:
        await asyncio.to_thread(writer.abort)


def _write(writer: BlobWriter, data: bytes, decoder: object | None) -> None:
    writer.write(decoder.decompress(data) if decoder is not None else data)  # type: ignore[attr-defined]
