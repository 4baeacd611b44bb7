"""What the callers of the extractor decide differently: pure decisions, no I/O.

The extractor (extract.py) is one mechanism; a `Rules` object tells it how to name
entries, whose they are, how parents resolve, and how each refusal is worded:

  * `LayerRules`: image layers and build contexts. Names are cleaned as dockerd cleans
    them (a leading "/" dropped, ".." climbing out of the root refused), a parent must
    be a real directory (a path through a symlink is refused, never resolved), ".wh."
    entries are overlay whiteouts, trusted.overlay.* never comes from a tar. Refusals are
    ArchiveError (400).
  * `CopyRules`: `docker cp` into a container (go-archive's Unpack). Parents resolve
    inside the destination, symlinks included; "." entries are skipped; ".wh." files are
    plain files; an owner may be imposed (`cp -a`); with noOverwriteDirNonDir a directory
    and a non-directory never replace each other. In go-archive's order, an entry's
    parents are made and its name cleared before the entry itself is looked at, and a
    directory gets its mode when it is made. Failures are dockerd's: 500s worded as its
    messages, a missing file left as FileNotFoundError (the caller's 404).
"""

from __future__ import annotations

import enum
import errno
import json
import posixpath
import tarfile
from typing import Protocol

from ...errors import InternalError, InvalidParameter
from .compression import eof_wording
from .format import OVERLAY_XATTRS, ArchiveError, TarFormatError, TarLimitError


class Why(enum.Enum):
    """A refusal the extractor may meet; the value is the layer's wording."""

    ROOT = "cannot replace the layer root"
    PARENT_SYMLINK = "parent {} is a symlink"
    PARENT_NOT_DIR = "parent {} is not a directory"
    LINK_MISSING = "hardlink target {} is not an earlier entry of this layer"
    LINK_DIR = "hardlink to a directory"
    LINK_NUL = "link target contains NUL"
    WHITEOUT = "invalid whiteout"
    UNSUPPORTED = "unsupported entry type {}"
    XATTR = "cannot set xattr {}"
    OVERWRITE_DIR = "cannot overwrite directory {}"
    OVERWRITE_NON_DIR = "cannot overwrite non-directory {}"


class Rules(Protocol):
    whiteouts: bool  # ".wh." entries become overlay whiteouts
    in_root: bool  # parents resolve symlinks inside the root (else: refused)
    implicit_owner: tuple[int, int] | None  # of directories made for missing parents
    node_xattrs: bool  # xattrs on symlinks, fifos and devices too
    skip_denied_devices: bool  # a device the kernel refuses to create is left out
    # go-archive's order: an entry's parents are made, and what holds its name removed,
    # before the entry itself is looked at (else: checks first, the way cleared only
    # when the name is taken).
    parents_first: bool
    dir_modes_last: bool  # a directory's mode is set at the end (else: when it is made)

    def name(self, m: tarfile.TarInfo) -> str | None:
        """The entry's path relative to the root ("" for the root), None to skip it."""

    def link_target(self, m: tarfile.TarInfo, rel: str) -> str:
        """A hardlink's target relative to the root."""

    def owner(self, m: tarfile.TarInfo) -> tuple[int, int] | None:
        """The uid and gid to give the entry; None leaves the extractor's."""

    def keep_xattr(self, name: str) -> bool:
        """Whether an xattr the tar carries is set at all."""

    def refusal(self, why: Why, m: tarfile.TarInfo, subject: str = "") -> Exception | None:
        """The error for why, or None where these rules have no such check."""

    def error(self, e: BaseException, m: tarfile.TarInfo | None) -> BaseException | None:
        """What an exception escaping an entry (m) or the stream (None) becomes; None
        lets it through unchanged."""


def _bad(name: str, why: str) -> ArchiveError:
    return ArchiveError(f"invalid tar entry {json.dumps(name)}: {why}")


def clean_name(name: str) -> str:
    """Docker's rule for layer entry names: clean, drop a leading "/", refuse to climb out.

    Returns the path relative to the root; "" is the root itself.
    """
    if "\x00" in name:
        raise _bad(name, "name contains NUL")
    if not name:
        raise _bad(name, "empty name")
    cleaned = posixpath.normpath(name).lstrip("/")
    if cleaned == ".." or cleaned.startswith("../"):
        raise _bad(name, "path escapes the layer root")
    return "" if cleaned == "." else cleaned


# Errors a hostile name or tree shape can provoke from the filesystem: the client's fault.
_INPUT_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EMLINK,
                 errno.E2BIG, errno.ERANGE, errno.EINVAL, errno.ENOENT}


class LayerRules:
    whiteouts: bool = True
    in_root: bool = False
    implicit_owner: tuple[int, int] | None = None
    node_xattrs: bool = True
    skip_denied_devices: bool = True  # root in a user namespace may not create devices
    parents_first: bool = False
    dir_modes_last: bool = True  # a read-only directory must not stop an unprivileged run

    def __init__(self, same_owner: bool) -> None:
        self.same_owner = same_owner

    def name(self, m: tarfile.TarInfo) -> str | None:
        return clean_name(m.name)

    def link_target(self, m: tarfile.TarInfo, rel: str) -> str:
        try:
            target = clean_name(m.linkname)
        except ArchiveError:
            raise _bad(m.name, f"hardlink target {json.dumps(m.linkname)} escapes the layer "
                       "root") from None
        if target in ("", rel):
            raise _bad(m.name, "hardlink to itself or to the root")
        return target

    def owner(self, m: tarfile.TarInfo) -> tuple[int, int] | None:
        return (m.uid, m.gid) if self.same_owner else None

    def keep_xattr(self, name: str) -> bool:
        return not name.startswith(OVERLAY_XATTRS)  # only whiteouts express overlay's own

    def refusal(self, why: Why, m: tarfile.TarInfo, subject: str = "") -> Exception | None:
        if why in (Why.OVERWRITE_DIR, Why.OVERWRITE_NON_DIR):
            return None  # a layer replaces whatever is there
        if why is Why.UNSUPPORTED:
            subject = repr(m.type)
        elif why is Why.LINK_MISSING:
            subject = json.dumps(m.linkname)
        elif why in (Why.PARENT_SYMLINK, Why.PARENT_NOT_DIR):
            subject = json.dumps(subject)
        return _bad(m.name, why.value.format(subject))

    def error(self, e: BaseException, m: tarfile.TarInfo | None) -> BaseException | None:
        if m is None:
            if isinstance(e, tarfile.TarError):
                return ArchiveError(f"invalid layer tar: {eof_wording(e)}")
            return None
        if isinstance(e, OSError):
            return _bad(m.name, e.strerror or str(e)) if e.errno in _INPUT_ERRNOS else None
        if isinstance(e, (ValueError, OverflowError)):  # e.g. an absurd uid or mtime
            return _bad(m.name, str(e))
        return None


def _go_clean(name: str) -> str:
    """filepath.Clean of a name with its leading slashes dropped; "" is "."."""
    stripped = name.lstrip("/")
    return posixpath.normpath(stripped) if stripped else "."


def _climbs(cleaned: str) -> bool:
    return cleaned == ".." or cleaned.startswith("../")


class CopyRules:
    whiteouts: bool = False  # docker cp does not interpret whiteouts
    in_root: bool = True
    implicit_owner: tuple[int, int] | None = (0, 0)
    node_xattrs: bool = False
    skip_denied_devices: bool = False
    parents_first: bool = True
    dir_modes_last: bool = False

    def __init__(self, dest: str, owner: tuple[int, int] | None, strict: bool) -> None:
        self.dest = dest  # as the client named it, for messages
        self.owner_override = owner
        self.strict = strict  # noOverwriteDirNonDir

    def name(self, m: tarfile.TarInfo) -> str | None:
        if "\x00" in m.name:
            raise InternalError("embedded null byte")
        cleaned = _go_clean(m.name)
        if cleaned == ".":
            return None
        if _climbs(cleaned):
            raise InternalError(f"invalid entry name {json.dumps(m.name)}")
        return cleaned

    def link_target(self, m: tarfile.TarInfo, rel: str) -> str:
        if "\x00" in m.linkname:
            raise InternalError("embedded null byte")
        target = _go_clean(m.linkname)
        if target == "." or _climbs(target):
            raise InternalError(f"invalid hardlink target {json.dumps(m.linkname)}")
        return target

    def owner(self, m: tarfile.TarInfo) -> tuple[int, int] | None:
        return self.owner_override or (m.uid, m.gid)

    def keep_xattr(self, name: str) -> bool:
        return True

    def refusal(self, why: Why, m: tarfile.TarInfo, subject: str = "") -> Exception | None:
        if why is Why.OVERWRITE_DIR:
            return InternalError(f"cannot overwrite directory {json.dumps(subject)} with "
                                 f"non-directory {json.dumps(self.dest)}") if self.strict else None
        if why is Why.OVERWRITE_NON_DIR:
            return InternalError(f"cannot overwrite non-directory {json.dumps(subject)} with "
                                 f"directory {json.dumps(self.dest)}") if self.strict else None
        if why is Why.UNSUPPORTED:
            return InternalError(f"unhandled tar header type {ord(m.type)}")
        if why in (Why.ROOT, Why.PARENT_SYMLINK, Why.PARENT_NOT_DIR, Why.WHITEOUT):
            # Not met: "." is skipped, parents resolve in the root, no whiteouts here.
            return InternalError(f"invalid entry {json.dumps(m.name)}")
        return None  # go-archive has no such check: the system call decides

    def error(self, e: BaseException, m: tarfile.TarInfo | None) -> BaseException | None:
        # A body that is no tar, or a tar no file system can hold, is the client's error:
        # 400 (dockerd answers these with a 500), in go-archive's words.
        if isinstance(e, TarLimitError):  # a hostile header, refused unread
            return InvalidParameter(f"archive/tar: {e.detail}")
        if isinstance(e, TarFormatError):
            return InvalidParameter(f"archive/tar: {e.detail}")
        if isinstance(e, tarfile.TarError):
            return InvalidParameter(f"archive/tar: {e}")
        if isinstance(e, ValueError):  # e.g. a NUL in a link target
            return InvalidParameter(str(e))
        if isinstance(e, FileNotFoundError):
            return None  # the caller words it as dockerd does
        if isinstance(e, OSError):
            where = f"{e.filename}: " if e.filename else ""
            return InternalError(f"{where}{e.strerror or e}")
        return None
