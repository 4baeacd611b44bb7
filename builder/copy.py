"""COPY and ADD: sources from the context, a stage or an image, into the step's rootfs.

Blocking code (runs in a worker thread). Semantics are the reference's:
  * a source directory contributes its contents, not itself;
  * a destination ending in "/" (or an existing directory) receives files under
    their own names; several sources require such a destination;
  * wildcards match per path segment (Go's filepath.Match), no match is an error;
  * everything copied belongs to root (or --chown), keeps its mode (or --chmod)
    and its modification time;
  * ADD extracts local tar archives (plain or compressed) instead of copying them,
    and downloads http(s) URLs (not extracted).

The destination is resolved inside the root filesystem as the reference's
FollowSymlinkInScope does: absolute link targets are taken relative to the
rootfs and ".." stops at its root, so nothing is ever written outside it. An
existing non-directory where a directory must go is replaced, never followed.
"""

from __future__ import annotations

import email.utils
import errno
import fnmatch
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from dockerd_py.dockerfile.chmod import Chmod
from dockerd_py.engine import archive
from dockerd_py.engine.containers.bundle import read_in_root
from dockerd_py.engine.runtime.users import Unreadable, iter_group, iter_passwd
from dockerd_py.errors import InvalidParameter

from .dockerignore import Matcher

_MAX_LINKS = 255
_WILDCARD = set("*?[")


class CopyError(InvalidParameter):
    pass


@dataclass(frozen=True)
class Source:
    host_path: str      # where the bytes are on the host
    name: str           # the base name it is copied under when the destination is a dir
    is_dir: bool
    shown: str          # as written (for messages)


def has_wildcards(path: str) -> bool:
    return any(c in _WILDCARD for c in path)


def resolve_in_root(root: str, path: str) -> str:
    """Host path of `path` inside root, following symlinks in scope (the final component
    too, when it exists)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise CopyError(f"too many links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _match_segments(root: str, segments: list[str], prefix: str = "") -> Iterator[str]:
    if not segments:
        yield prefix
        return
    head, rest = segments[0], segments[1:]
    directory = os.path.join(root, prefix) if prefix else root
    if not has_wildcards(head):
        candidate = posixpath.join(prefix, head) if prefix else head
        if os.path.lexists(os.path.join(root, candidate)):
            yield from _match_segments(root, rest, candidate)
        return
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if fnmatch.fnmatchcase(name, head):
            yield from _match_segments(root, rest, posixpath.join(prefix, name) if prefix else name)


def find_sources(root: str, patterns: list[str], *, in_context: bool, verb: str) -> list[Source]:
    """Each pattern (relative to root) → the sources it names, in order."""
    out: list[Source] = []
    for pattern in patterns:
        if in_context and posixpath.normpath(pattern).split("/")[0] == "..":
            raise CopyError(f"{verb} failed: forbidden path outside the build context: "
                            f"{pattern} ()")
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        if has_wildcards(clean):
            matches = list(_match_segments(root, [s for s in clean.split("/") if s]))
            if not matches:
                raise CopyError(f"{verb} failed: no source files were specified")
            rels = matches
        else:
            rels = [clean]
        for rel in rels:
            host = resolve_in_root(root, rel) if rel else root
            if not os.path.lexists(host):
                if in_context:
                    raise CopyError(f"{verb} failed: file not found in build context or "
                                    f"excluded by .dockerignore: stat {rel}: file does not exist")
                raise CopyError(f"{verb} failed: stat {posixpath.join('/', rel)}: "
                                "file does not exist")
            name = posixpath.basename(rel) if rel else ""
            out.append(Source(host, name, os.path.isdir(host), rel))
    return out


# -- writing into the rootfs -------------------------------------------------------------------


@dataclass(frozen=True)
class Ownership:
    uid: int = 0
    gid: int = 0
    chmod: int | None = None    # --chmod, applied to files and directories copied
    symbolic: Chmod | None = None  # --chmod=u+x etc.: applied to each file's own mode


def make_dirs(root: str, rel_dir: str, owner: Ownership | None) -> str:
    """Create rel_dir (already resolved in scope) below root: every missing part 0755
    root:root (or --chown), an existing non-directory replaced. Returns its host path."""
    current = root
    for part in [p for p in rel_dir.split("/") if p]:
        current = os.path.join(current, part)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            os.chmod(current, 0o755)
            if owner is not None:
                os.lchown(current, owner.uid, owner.gid)
            continue
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(current)
            os.mkdir(current)
            os.chmod(current, 0o755)
    return current


def _remove_existing(path: str, want_dir: bool) -> bool:
    """Make room at path; True if an existing directory is kept to merge into."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if want_dir:
            return True
        shutil.rmtree(path)
        return False
    os.unlink(path)
    return False


def _finish(path: str, st: os.stat_result, owner: Ownership, is_link: bool) -> None:
    os.lchown(path, owner.uid, owner.gid)
    if not is_link:
        mode = owner.chmod if owner.chmod is not None else stat.S_IMODE(st.st_mode)
        if owner.symbolic is not None:
            mode = owner.symbolic.apply(stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))
        os.chmod(path, mode)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


Skip = Callable[[str], bool]  # COPY --exclude: host path of a source entry -> excluded


def _copy_entry(src: str, dst: str, owner: Ownership, *, follow: bool,
                written: set[str], skip: Skip | None = None) -> None:
    st = os.stat(src) if follow else os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        existed = _remove_existing(dst, True)
        if not existed:
            os.mkdir(dst, 0o755)
        for name in sorted(os.listdir(src)):
            child = os.path.join(src, name)
            if skip is not None and skip(child):
                continue
            _copy_entry(child, os.path.join(dst, name), owner, follow=False,
                        written=written, skip=skip)
        _finish(dst, st, owner, False)
        written.add(dst)
        return
    _remove_existing(dst, False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        _finish(dst, st, owner, True)
        written.add(dst)
        return
    if stat.S_ISREG(st.st_mode):
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        # live=False: src was just found regular, in a tree nothing runs in
        with open(fd, "wb") as out, \
                os.fdopen(archive.open_regular(src, live=False), "rb") as inp:
            _copy_data(inp, out)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o600)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(dst, st.st_mode, st.st_rdev)
    else:
        return  # sockets are not copied
    _finish(dst, st, owner, False)
    written.add(dst)


def is_archive(path: str) -> bool:
    """A local file ADD extracts: a tar, maybe compressed (by content, as the reference)."""
    try:
        with os.fdopen(archive.open_regular(path), "rb") as f:  # a FIFO or a device: no tar
            stream = archive.decompressed(cast(BinaryIO, f))
            head = b""
            while len(head) < 512 and (more := stream.read(512 - len(head))):
                head += more
    except (OSError, archive.ArchiveError, EOFError):
        return False
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
        return True
    except tarfile.HeaderError:
        return False


def _excluder(patterns: list[str], base: str) -> Skip | None:
    """COPY --exclude: patterns (.dockerignore's syntax) on paths relative to base."""
    if not patterns:
        return None
    matcher = Matcher(patterns)
    return lambda path: bool(matcher.matches(os.path.relpath(path, base)))


# copy_file_range refuses some pairs of files (across filesystems on older kernels, some
# special filesystems): those are copied through a buffer.
_NO_RANGE_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF,
                  errno.EPERM}


def _copy_data(inp: BinaryIO, out: BinaryIO) -> None:
    """The data of inp (at its start) into out (new, empty): in the kernel when it can
    (no trip of every byte through Python; about 3x faster for large files)."""
    src, dst = inp.fileno(), out.fileno()
    copied = 0
    for kernel_copy in (_range_copy, _send_copy):  # sendfile: also across filesystems
        try:
            while n := kernel_copy(src, dst, copied):
                copied += n
            return
        except OSError as e:
            if e.errno not in _NO_RANGE_COPY:
                raise
    os.lseek(src, copied, os.SEEK_SET)
    os.lseek(dst, copied, os.SEEK_SET)
    shutil.copyfileobj(inp, out, 1 << 20)


def _range_copy(src: int, dst: int, offset: int) -> int:
    return os.copy_file_range(src, dst, 1 << 30, offset, offset)


def _send_copy(src: int, dst: int, offset: int) -> int:
    os.lseek(dst, offset, os.SEEK_SET)
    return os.sendfile(dst, src, offset, 1 << 30)


def copy_into(rootfs: str, sources: list[Source], dest: str, owner: Ownership, *,
              extract_archives: bool, verb: str, never_extract: set[str] | None = None,
              written: set[str] | None = None, exclude: list[str] | None = None) -> None:
    """Copy the sources to dest (absolute, in the rootfs). `written` collects the host
    paths that got their source's times; `exclude`: COPY --exclude patterns."""
    written = set() if written is None else written
    if exclude:
        sources = [s for s in sources if s.is_dir or not _matches_any(exclude, s.name)]
    dest_is_dir = dest.endswith("/") or dest.endswith("/.") or dest in ("/", ".")
    multiple = len(sources) > 1
    if multiple and not dest_is_dir:
        raise CopyError(f"When using {verb} with more than one source file, the destination "
                        "must be a directory and end with a /")
    target = resolve_in_root(rootfs, dest)
    rel_target = os.path.relpath(target, rootfs)
    rel_target = "" if rel_target == "." else rel_target
    if not dest_is_dir and os.path.isdir(target) and not os.path.islink(target):
        dest_is_dir = True
    for src in sources:
        if src.is_dir:
            # parents are root's; the destination directory, if new, the copy's owner
            existed = os.path.isdir(target) and not os.path.islink(target)
            directory = make_dirs(rootfs, rel_target, None)
            if not existed:
                os.lchown(directory, owner.uid, owner.gid)
            skip = _excluder(exclude or [], src.host_path)
            for name in sorted(os.listdir(src.host_path)):
                child = os.path.join(src.host_path, name)
                if skip is not None and skip(child):
                    continue
                _copy_entry(child, os.path.join(directory, name),
                            owner, follow=False, written=written, skip=skip)
            continue
        if extract_archives and src.host_path not in (never_extract or set()) \
                and is_archive(src.host_path):  # --chown never applies to extracted archives
            directory = make_dirs(rootfs, rel_target, None)
            with os.fdopen(archive.open_regular(src.host_path), "rb") as f:
                _extract_archive(f, directory, written)
            continue
        if dest_is_dir:
            directory = make_dirs(rootfs, rel_target, owner)
            _copy_entry(src.host_path, os.path.join(directory, src.name), owner, follow=True,
                        written=written)
        else:
            parent = make_dirs(rootfs, posixpath.dirname(rel_target), owner)
            _copy_entry(src.host_path, os.path.join(parent, posixpath.basename(rel_target)),
                        owner, follow=True, written=written)


def _matches_any(patterns: list[str], name: str) -> bool:
    return bool(Matcher(patterns).matches(name))


def _extract_archive(f: BinaryIO, directory: str, written: set[str]) -> None:
    """Extract a tar into an existing directory through a fresh one (the safe extractor
    needs an empty root), then merge."""
    staging = tempfile.mkdtemp(prefix=".add-", dir=directory)
    try:
        archive.apply_layer(f, staging)
        for name in sorted(os.listdir(staging)):
            src = os.path.join(staging, name)
            dst = os.path.join(directory, name)
            _merge(src, dst, written)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge(src: str, dst: str, written: set[str]) -> None:
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode) and os.path.isdir(dst) and not os.path.islink(dst):
        for name in os.listdir(src):
            _merge(os.path.join(src, name), os.path.join(dst, name), written)
        return
    _remove_existing(dst, False)
    os.rename(src, dst)
    written.add(dst)  # the archive's times, kept
    for dirpath, dirnames, filenames in os.walk(dst):
        written.update(os.path.join(dirpath, n) for n in dirnames + filenames)


# -- ADD <url> -------------------------------------------------------------------------------


def download(url: str, directory: str) -> Source:
    """Fetch an http(s) URL into directory; the file keeps the server's Last-Modified."""
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 (http(s) only)
            if resp.status >= 400:
                raise CopyError(f"failed to GET {url} with status {resp.status}")
            name = _url_name(url, resp.headers.get("Content-Disposition", ""))
            path = os.path.join(directory, name)
            with open(path, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
            os.chmod(path, 0o600)
            modified = resp.headers.get("Last-Modified")
            if modified:
                when = email.utils.parsedate_to_datetime(modified).timestamp()
                os.utime(path, (when, when))
    except CopyError:
        raise
    except Exception as e:  # network errors of every kind are the user's input
        raise CopyError(f"failed to GET {url}: {e}") from None
    return Source(path, name, False, url)


def _url_name(url: str, disposition: str) -> str:
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename" and value.strip('"'):
            return posixpath.basename(value.strip('"')) or "download"
    path = urllib.parse.urlparse(url).path
    return posixpath.basename(path.rstrip("/")) or "download"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def ownership(rootfs: str, chown: str, mode: int | None,
              symbolic: Chmod | None = None) -> Ownership:
    """--chown as the legacy builder reads it: "user" means user:user, names are looked
    up in the image's /etc/passwd and /etc/group (read as container starts read them)."""
    if not chown:
        return Ownership(0, 0, mode, symbolic)
    user, _, group = chown.partition(":")
    group = group or user
    uid = int(user) if user.isascii() and user.isdigit() else _id_of(
        user, "uid", "user", read_in_root(rootfs, "/etc/passwd"),
        lambda text: ((u.name, u.uid) for u in iter_passwd(text)))
    gid = int(group) if group.isascii() and group.isdigit() else _id_of(
        group, "gid", "group", read_in_root(rootfs, "/etc/group"),
        lambda text: ((g.name, g.gid) for g in iter_group(text)))
    return Ownership(uid, gid, mode, symbolic)


def _id_of(name: str, kind: str, what: str, text: str | Unreadable | None,
           entries: Callable[[str], Iterator[tuple[str, int]]]) -> int:
    """The id of the first entry with this name, as the reference looks it up."""
    prefix = f"unable to convert uid/gid chown string to host mapping: can't find {kind} " \
             f"for {what} {name}"
    if isinstance(text, Unreadable):
        raise InvalidParameter(f"{prefix}: {text.reason}")
    for entry_name, number in entries(text or ""):
        if entry_name == name:
            return number
    raise InvalidParameter(f"{prefix}: no such {what}: {name}")
