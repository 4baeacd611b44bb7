"""Fetching one blob: streamed, size-capped, verified against its digest.

A layer is unpacked while it downloads: one worker thread reads the response
body, writes each piece into the content store's writer (which hashes it) and
hands the same bytes to the extractor (which decompresses, unpacks into a
fresh snapshot directory and hashes the tar for the diff ID). Nothing gets a
final name until the blob's digest and the layer's diff ID both check out:
the blob is committed to the store, then the snapshot under its chain ID.
"""

from __future__ import annotations

import asyncio
import json
import queue
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import BinaryIO

import aiohttp

from ..engine import archive
from ..engine.content.contract import BlobWriter, Store
from ..engine.leases import protect_digest
from ..engine.snapshots.contract import Snapshotter
from ..errors import DaemonError
from . import progress
from .errors import RegistryError, transport_error
from .registry import Registry

_MAX_CONFIG = 16 << 20
_BATCH = 1 << 20
_HANDOFF = 256 << 10
# Pieces the download may run ahead of unpacking: the socket keeps being read while
# the worker inflates and writes, instead of each waiting for the other.
_AHEAD = 16


class VerificationError(DaemonError):
    status = 500


@dataclass(frozen=True)
class Counter:
    """Reports bytes received as 'Downloading' progress."""

    ident: str
    total: int
    emit: progress.Emit


async def _body(resp: aiohttp.ClientResponse, digest: str, size: int,
                counter: Counter | None) -> AsyncIterator[bytes]:
    """The response body, never more than `size` bytes, with progress."""
    received = 0
    throttle = progress.Throttle(size)
    pending: list[bytes] = []
    held = 0
    try:
        async for chunk in resp.content.iter_any():
            received += len(chunk)
            if received > size:
                raise VerificationError(f"blob {digest}: registry sent more than the "
                                        f"{size} bytes the manifest announced")
            if counter is not None and throttle.due(received):
                await counter.emit(progress.transfer("Downloading", counter.ident,
                                                     received, size))
            # Hand the consumer (a worker thread) fewer, larger pieces, copied once.
            pending.append(chunk)
            held += len(chunk)
            if held >= _HANDOFF:
                yield b"".join(pending)
                pending.clear()
                held = 0
    except (TimeoutError, aiohttp.ClientError) as e:
        raise transport_error("GET", str(resp.url), e) from None
    if pending:
        yield b"".join(pending)
    if received != size:
        raise transport_error("GET", str(resp.url), aiohttp.ClientPayloadError(
            "unexpected EOF"))


def _verify(writer: BlobWriter, digest: str, size: int) -> None:
    if writer.digest != digest or writer.size != size:
        writer.abort()
        raise VerificationError(f"filesystem layer verification failed for digest {digest}")
    writer.commit(digest, size)


async def fetch_blob(registry: Registry, repo: str, digest: str, size: int,
                     content: Store, counter: Counter | None = None) -> None:
    """Download a blob into the content store (no unpacking)."""
    resp = await registry.get_blob(repo, digest)
    writer = content.writer()
    try:
        async with resp:
            pending = bytearray()
            async for chunk in _body(resp, digest, size, counter):
                pending += chunk
                if len(pending) >= _BATCH:
                    await asyncio.to_thread(writer.write, bytes(pending))
                    pending.clear()
            if pending:
                await asyncio.to_thread(writer.write, bytes(pending))
        await asyncio.to_thread(_verify, writer, digest, size)
    finally:
        await asyncio.to_thread(writer.abort)


async def fetch_json_blob(registry: Registry, repo: str, digest: str, size: int,
                          content: Store) -> bytes:
    """A config: small, kept in memory and in the store."""
    if size > _MAX_CONFIG:
        raise VerificationError(f"image config {digest} is too large ({size} bytes)")
    protect_digest(digest)  # before looking: a collection meanwhile keeps what we find
    if not await asyncio.to_thread(content.exists, digest):
        await fetch_blob(registry, repo, digest, size, content)
    data = await asyncio.to_thread(content.read_bytes, digest)
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise RegistryError(f"invalid image config {digest}: {e}", 500) from None
    return data


class _Prefetched:
    """A file object for one worker thread over a body that the event loop pumps
    into a queue, at most _AHEAD pieces ahead of the reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[bytes | BaseException | None] = queue.SimpleQueue()
        self._room = asyncio.Semaphore(_AHEAD)
        self._buf, self._off = b"", 0
        self._eof = False

    async def pump(self, chunks: AsyncIterator[bytes]) -> None:
        """Runs on the loop; an error or cancellation is passed on to the reader."""
        try:
            async for chunk in chunks:
                await self._room.acquire()
                self._queue.put(chunk)
        except BaseException as e:
            self._queue.put(e)
            raise
        self._queue.put(None)

    def _fill(self) -> bool:
        while self._off >= len(self._buf) and not self._eof:
            item = self._queue.get()
            if item is None:
                self._eof = True
            elif isinstance(item, BaseException):
                self._eof = True
                raise item
            else:
                self._loop.call_soon_threadsafe(self._room.release)
                self._buf, self._off = item, 0
        return self._off < len(self._buf)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if not self._fill():
            return b""
        if self._off == 0 and (n is None or n < 0 or n >= len(self._buf)):
            data = self._buf  # the whole piece: no copy
        else:
            end = len(self._buf) if n is None or n < 0 else self._off + n
            data = self._buf[self._off:end]
        self._off += len(data)
        return data


class _Tee:
    """File object for the extractor: every byte it reads also goes to the writer."""

    def __init__(self, source: _Prefetched, writer: BlobWriter) -> None:
        self._source = source
        self._writer = writer

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._writer.write(data)
        return data

    def drain(self) -> None:
        while self.read(_BATCH):
            pass


def _extract(tee: _Tee, root: str) -> archive.LayerStats | BaseException:
    """Unpack, then read what the extractor left (gzip trailer, padding) so the
    digest covers the whole blob. A broken archive is returned, not raised: a
    digest mismatch, known only once everything is read, is the better error."""
    try:
        stats: archive.LayerStats | BaseException = archive.apply_layer(
            tee, root)  # type: ignore[arg-type]
    except archive.ArchiveError as e:
        stats = e
    tee.drain()
    return stats


@dataclass(frozen=True)
class Unpacked:
    size: int  # bytes unpacked


async def fetch_and_unpack(registry: Registry, repo: str, digest: str, size: int,
                           diff_id: str, chain: str, parent: str, content: Store,
                           snapshots: Snapshotter, counter: Counter) -> Unpacked:
    """Download a layer blob and unpack it as it arrives into snapshot `chain`."""
    resp = await registry.get_blob(repo, digest)
    key = f"extract-{uuid.uuid4().hex}"
    writer = content.writer()
    committed = False
    try:
        async with resp:
            info = await snapshots.prepare(key, parent)
            body = _Prefetched(asyncio.get_running_loop())
            pump = asyncio.ensure_future(body.pump(_body(resp, digest, size, counter)))
            tee = _Tee(body, writer)
            worker = asyncio.ensure_future(asyncio.to_thread(_extract, tee,
                                                             snapshots.fs_dir(info)))
            try:
                result = await asyncio.shield(worker)
            except asyncio.CancelledError:
                # Cut the body so the worker stops, and let it finish before its
                # snapshot directory is removed below.
                resp.close()
                pump.cancel()
                await asyncio.wait([worker])
                raise
            finally:
                # Done or failed, the worker reads no more: stop the pump. Its error,
                # if any, already reached the worker, which raised it.
                pump.cancel()
                await asyncio.wait([pump])
                if not pump.cancelled():
                    pump.exception()
        await counter.emit(progress.layer("Verifying Checksum", counter.ident))
        await asyncio.to_thread(_verify, writer, digest, size)
        if isinstance(result, BaseException):
            raise VerificationError(f"failed to register layer: {result}")
        if result.diff_id != diff_id:
            raise VerificationError(f"failed to register layer: layer {digest} does not match "
                                    f"its diff ID (expected {diff_id}, got {result.diff_id})")
        await counter.emit(progress.layer("Download complete", counter.ident))
        await snapshots.commit(chain, key, result.size)
        committed = True
        return Unpacked(result.size)
    finally:
        await asyncio.to_thread(writer.abort)
        if not committed:
            try:
                await snapshots.remove(key)
            except DaemonError:
                pass


def _apply_stored(content: Store, digest: str, root: str) -> archive.LayerStats:
    with content.open(digest) as f:
        return archive.apply_layer(f, root)


async def unpack_stored(content: Store, snapshots: Snapshotter, digest: str,
                        diff_id: str, chain: str, parent: str) -> Unpacked:
    """Unpack a blob already in the store (its snapshot went, the blob stayed)."""
    key = f"extract-{uuid.uuid4().hex}"
    info = await snapshots.prepare(key, parent)
    try:
        stats = await asyncio.to_thread(_apply_stored, content, digest, snapshots.fs_dir(info))
        if stats.diff_id != diff_id:
            raise VerificationError(f"failed to register layer: layer {digest} does not match "
                                    f"its diff ID (expected {diff_id}, got {stats.diff_id})")
        await snapshots.commit(chain, key, stats.size)
        return Unpacked(stats.size)
    except BaseException:
        try:
            await snapshots.remove(key)
        except DaemonError:
            pass
        raise


def open_blob(content: Store, digest: str) -> BinaryIO:
    return content.open(digest)


async def read_file_chunks(content: Store, digest: str, counter: Counter | None,
                           size: int, status: str = "Pushing") -> AsyncIterator[bytes]:
    """A stored blob as chunks for an upload body, with 'Pushing' progress."""
    f = await asyncio.to_thread(open_blob, content, digest)
    throttle = progress.Throttle(size)
    sent = 0
    try:
        while chunk := await asyncio.to_thread(f.read, _BATCH):
            sent += len(chunk)
            if counter is not None and throttle.due(sent):
                await counter.emit(progress.transfer(status, counter.ident, sent, size))
            yield chunk
    finally:
        await asyncio.to_thread(f.close)
