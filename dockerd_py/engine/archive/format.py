"""The vocabulary of tars: whiteout names, the xattrs that carry meaning, errors and figures."""

from __future__ import annotations

from dataclasses import dataclass

from dockerd_py.errors import InvalidParameter

CHUNK = 1 << 20
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
OVERLAY_XATTRS = "trusted.overlay."
CAPABILITY_XATTR = "security.capability"
PAX_XATTR = "SCHILY.xattr."


class ArchiveError(InvalidParameter):
    """The archive is malformed, truncated, or tries to write outside its root."""


class TarFormatError(ArchiveError):
    """The tar stream itself is broken (as opposed to one of its entries)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"invalid layer tar: {detail}")
        self.detail = detail


class TarLimitError(TarFormatError):
    """A header beyond what the reader buffers: refused before it is read, the client's
    fault on every path (cp included)."""


@dataclass(frozen=True)
class LayerStats:
    diff_id: str  # "sha256:<hex>" of the whole uncompressed tar stream
    size: int  # sum of the sizes of the regular files and symlinks in the layer (as dockerd)
