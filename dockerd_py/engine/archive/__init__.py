"""Tars: safe extraction of hostile input, and writing them from a tree.

Blocking code: the engine runs it through `asyncio.to_thread` (or a thread of its own).

  * extract.py: the one extractor. `apply_layer` unpacks an image layer (or a build
    context) into an empty directory, whiteouts in the overlay format, and returns its
    diff_id and size; `unpack_to_dir` is `docker cp`'s extraction into a container's
    directory. Nothing in the tar is trusted: nothing is ever written outside the root.
  * rules.py: what those two callers decide differently (names, owners, how parents
    resolve, wording of refusals), pure.
  * write.py: the one tar writer (`TarWriter`), and `write_layer`/`tar_paths` over it.
  * compression.py: gzip/zstd/bzip2/xz recognised by magic and decompressed on the fly.
  * regular.py: regular files of a hostile tree, opened without opening anything else
    (a FIFO, a device node), for every reader of an image's or a container's files.
  * stream.py, dirfds.py, xattrs.py, format.py: the pieces they share.
"""

from .compression import decompressed, detect_compression
from .extract import apply_layer, unpack_to_dir
from .format import (
    CHUNK,
    OPAQUE_MARKER,
    OPAQUE_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    ArchiveError,
    LayerStats,
)
from .regular import RefusedFile, open_regular
from .rules import clean_name
from .write import TarWriter, tar_paths, walk, write_layer

__all__ = ["CHUNK", "OPAQUE_MARKER", "OPAQUE_XATTR", "WHITEOUT_META_PREFIX", "WHITEOUT_PREFIX",
           "ArchiveError", "LayerStats", "RefusedFile", "TarWriter", "apply_layer", "clean_name",
           "decompressed", "detect_compression", "open_regular", "tar_paths", "unpack_to_dir",
           "walk", "write_layer"]
