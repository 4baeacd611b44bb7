"""The build context: the request body, unpacked into a private directory.

The CLI sends a (maybe compressed) tar; a body that is not a tar is taken as a
bare Dockerfile (`docker build - < Dockerfile` through API clients that do
not wrap it). Extraction is the engine's hostile-input-safe layer extraction,
so no entry can land outside the context directory. `.dockerignore` is applied
after the Dockerfile has been read, as dockerd does: ignored files are gone
before any COPY can see them.

Content digests of context paths (for the build cache and COPY's history
line) are computed once per build and remembered.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from typing import BinaryIO, cast

from dockerd_py.engine import archive
from dockerd_py.engine.aio import ThreadReader
from dockerd_py.errors import InvalidParameter

from .dockerignore import Matcher, read_patterns

_TAR_MAGIC_OFFSET = 257
DEFAULT_DOCKERFILE = "Dockerfile"


class BuildContext:
    def __init__(self, root: str) -> None:
        self.root = root            # the directory holding the context
        self.dir = os.path.join(root, "context")
        self._digests: dict[str, str] = {}

    @classmethod
    def of_directory(cls, directory: str, parent: str) -> BuildContext:
        """A context already on disk (blocking): read from where it is, never changed;
        the build's private files go to a new directory under parent."""
        if not os.path.isdir(directory):
            raise InvalidParameter(f"build context {directory} is not a directory")
        ctx = cls(_private_dir(parent))
        ctx.dir = os.path.realpath(directory)
        return ctx

    @classmethod
    async def receive(cls, chunks: AsyncIterator[bytes], parent: str) -> BuildContext:
        ctx = cls(await asyncio.to_thread(_private_dir, parent))
        reader = ThreadReader(chunks, asyncio.get_running_loop())
        try:
            await asyncio.to_thread(ctx._extract, reader)
        except BaseException:
            await asyncio.to_thread(reader.drain)
            await ctx.close()
            raise
        return ctx

    def _extract(self, reader: ThreadReader) -> None:
        os.mkdir(self.dir)
        os.chmod(self.dir, 0o755)  # COPY . reads the context root's mode
        source = archive.decompressed(cast(BinaryIO, reader))
        head = b""
        while len(head) < 512 and (more := source.read(512 - len(head))):
            head += more
        rest = _Prefixed(head, source)
        if _is_tar(head):
            try:
                archive.apply_layer(cast(BinaryIO, rest), self.dir)
            except archive.ArchiveError as e:
                raise InvalidParameter(f"Error processing tar file({e.args[0]}): ") from None
            return
        # Not a tar: the whole body is the Dockerfile.
        with open(os.path.join(self.dir, DEFAULT_DOCKERFILE), "wb") as f:
            shutil.copyfileobj(cast(BinaryIO, rest), f)

    async def close(self) -> None:
        await asyncio.to_thread(shutil.rmtree, self.root, True)

    # -- the Dockerfile and .dockerignore ----------------------------------

    def read_dockerfile(self, name: str) -> bytes:
        """The Dockerfile named by the `dockerfile` query parameter (blocking)."""
        name = name or DEFAULT_DOCKERFILE
        path = self.path_of(name)
        if path is None or not os.path.isfile(path):
            if name == DEFAULT_DOCKERFILE:
                lower = self.path_of("dockerfile")  # dockerd falls back to the lower-case name
                if lower is not None and os.path.isfile(lower):
                    path = lower
            if path is None or not os.path.isfile(path):
                shown = name if os.path.isabs(name) else name
                raise InvalidParameter(f"Cannot locate specified Dockerfile: {shown}")
        with open(path, "rb") as f:
            return f.read()

    def apply_dockerignore(self) -> None:
        """Remove what .dockerignore excludes (blocking)."""
        path = os.path.join(self.dir, ".dockerignore")
        if not os.path.isfile(path) or os.path.islink(path):
            return
        with open(path, encoding="utf-8", errors="replace") as f:
            patterns = read_patterns(f.read())
        if not patterns:
            return
        matcher = Matcher(patterns)
        self._prune(matcher, "")

    def _prune(self, matcher: object, rel: str) -> bool:
        """Remove excluded entries below rel; True when rel is left empty."""
        directory = os.path.join(self.dir, rel) if rel else self.dir
        empty = True
        for name in sorted(os.listdir(directory)):
            child = f"{rel}/{name}" if rel else name
            full = os.path.join(directory, name)
            excluded = matcher.matches(child)  # type: ignore[attr-defined]
            is_dir = stat.S_ISDIR(os.lstat(full).st_mode)
            if is_dir:
                if excluded and matcher.can_skip_dir(child):  # type: ignore[attr-defined]
                    shutil.rmtree(full)
                    continue
                if self._prune(matcher, child) and excluded:
                    os.rmdir(full)
                    continue
            elif excluded:
                os.unlink(full)
                continue
            empty = False
        return empty

    # -- paths and digests --------------------------------------------------

    def path_of(self, rel: str) -> str | None:
        """Host path of a context path, or None if it resolves outside the context."""
        real = os.path.realpath(os.path.join(self.dir, rel.lstrip("/")))
        if real == self.dir or real.startswith(self.dir + "/"):
            return real
        return None

    def digest(self, rel: str) -> str:
        """Content digest of a context path (file or tree): names, modes, owners,
        link targets and file contents, never mtimes (blocking)."""
        rel = os.path.normpath(rel.lstrip("/")) if rel.strip("/") else "."
        found = self._digests.get(rel)
        if found is None:
            found = self._digests[rel] = tree_digest(os.path.join(self.dir, rel))
        return found


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    magic = head[_TAR_MAGIC_OFFSET:_TAR_MAGIC_OFFSET + 5]
    if magic == b"ustar":
        return True
    # Old v7 tars have no magic: trust a valid header checksum.
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def _private_dir(parent: str) -> str:
    """A new directory for one build's private files, under parent (blocking)."""
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix="ctx-", dir=parent)


class _Prefixed(io.RawIOBase):
    """A stream with peeked bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            cut = len(self._head) if size is None or size < 0 else size
            data, self._head = self._head[:cut], self._head[cut:]
            return data
        return self._rest.read(size)


def file_digest(path: str) -> str:
    """sha256 of a regular file's content, remembered for files that are not changing
    (see _known)."""
    with os.fdopen(archive.open_regular(path, live=False), "rb") as f:
        before = os.fstat(f.fileno())
        key = (before.st_dev, before.st_ino)
        with _known_lock:
            known = _known.get(key)
        if known is not None and known[0] == _identity(before):
            return known[1]
        started = time.time_ns()
        sha = hashlib.sha256()
        while chunk := f.read(1 << 20):
            sha.update(chunk)
        after = os.fstat(f.fileno())
    digest = sha.hexdigest()
    if _identity(after) == _identity(before) and \
            after.st_ctime_ns + _SETTLED_NS < started:
        with _known_lock:
            if len(_known) >= _KNOWN_MAX:
                _known.clear()
            _known[key] = (_identity(after), digest)
    return digest


# Content digests of files already read, by inode: a build reads the same context and
# stage files again and again (every build of a kept BuildKit context, every cached
# step's key). An entry is used only while the inode's size, mtime and ctime are those
# it was read with, and only files whose ctime was already a while in the past when they
# were read are remembered ("racy" files, which might change again within the clock's
# granularity without a new ctime, are read every time, as git does). A write of any
# kind sets ctime to the current time, which user space cannot set back.
_SETTLED_NS = 2_000_000_000
_KNOWN_MAX = 100_000
_known: dict[tuple[int, int], tuple[tuple[int, int, int, int], str]] = {}
_known_lock = threading.Lock()


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _entry_line(rel: str, st: os.stat_result, path: str) -> bytes:
    kind = stat.S_IFMT(st.st_mode)
    line = f"{rel}\0{kind:o}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0"
    if stat.S_ISREG(kind):
        line += file_digest(path)
    elif stat.S_ISLNK(kind):
        line += os.readlink(path)
    return line.encode("utf-8", "surrogateescape") + b"\n"


def tree_digest(top: str) -> str:
    """sha256 over a sorted listing of the tree with per-file content digests."""
    sha = hashlib.sha256()
    st = os.lstat(top)
    sha.update(_entry_line(".", st, top))
    if stat.S_ISDIR(st.st_mode):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, top)
                sha.update(_entry_line(rel, os.lstat(full), full))
    return sha.hexdigest()


# Digests of paths in images: an image's ID fixes its filesystem, so the digest of a path
# in it never changes (COPY --from a stage or image, read again by every later build
# whose cache keys need it).
_IMAGE_DIGESTS_MAX = 4096
_image_digests: dict[tuple[str, str], str] = {}
_image_digests_lock = threading.Lock()


def image_tree_digest(image_id: str, root: str, path: str) -> str:
    """tree_digest of path, a path below root, the mounted filesystem of image_id."""
    key = (image_id, os.path.relpath(path, root))
    with _image_digests_lock:
        found = _image_digests.get(key)
    if found is None:
        found = tree_digest(path)
        with _image_digests_lock:
            if len(_image_digests) >= _IMAGE_DIGESTS_MAX:
                _image_digests.clear()
            _image_digests[key] = found
    return found
