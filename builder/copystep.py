"""COPY and ADD: their sources (the context, a stage, an image, a named context,
URLs, heredocs), flags (--from, --chown, --chmod, --exclude, --parents, --link,
--checksum) and the layer they write (copy.py does the copying)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import tempfile

from dockerd_py.dockerfile import instructions as ins
from dockerd_py.dockerfile.chmod import parse_chmod
from dockerd_py.engine.types import ImageRecord
from dockerd_py.errors import InvalidParameter

from . import copy as copying
from . import gitsource, imageconfig, progress
from .context import file_digest, image_tree_digest, tree_digest
from .layer import StepFS
from .scope import StageScope


async def copy_step(b: StageScope, inst: ins.Copy) -> None:
    is_add = isinstance(inst, ins.Add)
    verb = "ADD" if is_add else "COPY"
    config = b.state.config
    dest = inst.dest
    if not dest.startswith("/"):
        workdir = config.get("WorkingDir") or "/"
        trailing = dest.endswith("/") or dest == "."
        dest = posixpath.join(workdir, dest)
        if trailing and not dest.endswith("/"):
            dest += "/"
    source_flag = inst.flags.get("from", "")
    chown, chmod = inst.flags.get("chown", ""), inst.flags.get("chmod", "")
    mode, symbolic = None, None
    if chmod:
        try:
            parsed = parse_chmod(chmod)
        except ins.DockerfileError as e:
            raise InvalidParameter(e.message) from None
        mode, symbolic = parsed.octal, (parsed if parsed.octal is None else None)
    exclude = [p for p in inst.flags.get("exclude", "").split("\n") if p]
    parents = inst.flags.get("parents") == "true"

    source_image: ImageRecord | None = None
    named = b.build.named_context(b.stage.index, source_flag) if source_flag else None
    from_directory = named is not None and bool(named.directory)
    if source_flag and not from_directory:
        source_image = await b.build.copy_source(b.stage.index, source_flag)

    heredoc_dir = ""
    patterns = list(inst.sources)
    gits = {s: ref for s in patterns if (ref := gitsource.parse_git_ref(s)) is not None}
    if gits and not is_add:
        raise InvalidParameter("source can't be a git ref for COPY")
    urls = [s for s in patterns if is_add and copying.is_url(s) and s not in gits]
    if not source_flag:
        for s in patterns:
            if copying.is_url(s) and not is_add:
                raise InvalidParameter("source can't be a URL for COPY")
    checksum = _checksum(inst, bool(urls or gits))
    keep_git_dir = inst.flags.get("keep-git-dir") == "true"
    inputs: list[str] = [f"chown={chown}", f"chmod={chmod}", f"from={source_flag}"]
    inputs += [f"{k}={v}" for k, v in sorted(inst.flags.items())
               if k in ("exclude", "parents", "link")]
    hashes: list[str] = []
    ctx = b.build.context
    if inst.heredocs:
        heredoc_dir = await asyncio.to_thread(tempfile.mkdtemp, prefix="heredoc-",
                                              dir=b.build.state_dir)
        for index, doc in enumerate(inst.heredocs):
            # stored by position: the delimiter word is the client's and may hold "/" or ".."
            path = os.path.join(heredoc_dir, str(index))
            text = doc.rendered(b.env_for_expansion())
            await asyncio.to_thread(_write_text, path, text)
            digest = hashlib.sha256(text.encode()).hexdigest()
            hashes.append("file:" + digest)
            inputs.append(f"heredoc:{doc.name}:{digest}")
        heredoc_names = {doc.name for doc in inst.heredocs}
        patterns = [p for p in patterns if p.lstrip("<-").strip("'\"") not in heredoc_names
                    and not p.startswith("<<")]
    local = [p for p in patterns if p not in urls and p not in gits]
    try:
        async with contextlib.AsyncExitStack() as stack:
            found: list[copying.Source] = []
            fetched: list[copying.Source] = []
            parent_dirs: dict[str, str] = {}  # --parents: source -> its directories
            if source_image is not None or from_directory or (local and not source_flag):
                root = ctx.dir
                if source_image is not None:  # the very image resolved above
                    root = await stack.enter_async_context(b.build.image_view(source_image))
                    inputs.append(source_image.id)
                elif source_flag:
                    root = await stack.enter_async_context(
                        b.build.source_view(b.stage.index, source_flag))
                    inputs.append(source_flag)
                for pattern in local:  # one at a time: --parents keeps each one's path
                    some = await asyncio.to_thread(copying.find_sources, root, [pattern],
                                                   in_context=not source_flag, verb=verb)
                    found += some
                    for src in some:
                        parent_dirs[src.host_path] = _parents_of(pattern, src.shown) \
                            if parents else ""
                for src in found:
                    if source_image is not None:
                        digest = await asyncio.to_thread(image_tree_digest, source_image.id,
                                                         root, src.host_path)
                    elif source_flag:
                        digest = await asyncio.to_thread(tree_digest, src.host_path)
                    else:
                        digest = await asyncio.to_thread(
                            ctx.digest, os.path.relpath(src.host_path, ctx.dir))
                    hashes.append(("dir:" if src.is_dir else "file:") + digest)
                    inputs.append(f"{src.shown}:{digest}")
            if urls:  # fetched now: their content is part of the key (as the reference)
                downloads = await asyncio.to_thread(tempfile.mkdtemp, prefix="add-",
                                                    dir=b.build.state_dir)
                stack.callback(_rmtree, downloads)
                for url in urls:
                    src = await asyncio.to_thread(copying.download, url, downloads)
                    size = await asyncio.to_thread(os.path.getsize, src.host_path)
                    for message in progress.downloaded(size):
                        await b.observer.status(b.vertex, message)
                    digest = await asyncio.to_thread(file_digest, src.host_path)
                    if checksum:
                        await asyncio.to_thread(_verify, url, src.host_path, checksum)
                    fetched.append(src)
                    hashes.append(digest)
                    inputs.append(f"{url}:{digest}")
            for n, (text, ref) in enumerate(gits.items()):
                checkouts = await asyncio.to_thread(tempfile.mkdtemp, prefix="git-",
                                                    dir=b.build.state_dir)
                stack.callback(_rmtree, checkouts)
                tree, commit = await asyncio.to_thread(
                    gitsource.fetch, ref, os.path.join(checkouts, str(n)),
                    keep_git_dir=keep_git_dir)
                if checksum and not commit.startswith(checksum.lower()):
                    raise InvalidParameter(f"expected checksum to match {checksum}, got "
                                           f"{commit}")
                digest = await asyncio.to_thread(tree_digest, tree)
                fetched.append(copying.Source(tree, "", True, text))
                hashes.append("dir:" + digest)
                inputs.append(f"{text}:{commit}:{digest}:keep-git-dir={keep_git_dir}")
            if len(hashes) == 1:
                shown_hash = hashes[0]
            else:
                shown_hash = "multi:" + hashlib.sha256("\n".join(hashes).encode()).hexdigest()
            # dockerd 20.10 writes the --chown flag glued to the hash, and dest as written
            chown_text = f"--chown={chown}" if chown else ""
            created_by = imageconfig.nop(
                config, f"{verb} {chown_text}{shown_hash} in {inst.dest} ", spaced=False)

            async def write(fs: StepFS) -> None:
                owner = await asyncio.to_thread(copying.ownership, fs.rootfs, chown, mode,
                                                symbolic)
                sources = found + fetched
                if heredoc_dir:
                    sources += [copying.Source(os.path.join(heredoc_dir, str(i)),
                                               posixpath.basename(d.name) or "heredoc",
                                               False, d.name)
                                for i, d in enumerate(inst.heredocs)]
                local_archives = is_add and not source_flag
                written: set[str] = set()
                groups: dict[str, list[copying.Source]] = {}
                for src in sources:  # by destination: one unless --parents
                    sub = parent_dirs.get(src.host_path, "")
                    groups.setdefault(posixpath.join(dest, sub) + "/" if sub else dest,
                                      []).append(src)
                for target, group in groups.items():
                    await asyncio.to_thread(copying.copy_into, fs.rootfs, group, target, owner,
                                            extract_archives=local_archives,
                                            never_extract={s.host_path for s in fetched},
                                            verb=verb, written=written, exclude=exclude)
                fs.keep_times.update(os.path.relpath(p, fs.rootfs) for p in written)

            await b._commit(created_by, config, inputs=inputs, change=write)
    finally:
        if heredoc_dir:
            await asyncio.to_thread(_rmtree, heredoc_dir)


_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")


def _checksum(inst: ins.Copy, remote: bool) -> str:
    """ADD --checksum, checked as BuildKit does: one remote source; a digest for a URL,
    a commit for git."""
    checksum = inst.flags.get("checksum", "")
    if not checksum:
        return ""
    if len(inst.sources) != 1:
        raise InvalidParameter("checksum can't be specified for multiple sources")
    if not remote:
        raise InvalidParameter("checksum requires HTTP(S) or Git sources")
    is_commit = re.fullmatch(r"[0-9a-fA-F]{7,64}", checksum) is not None
    if not _DIGEST.match(checksum) and not is_commit:
        raise InvalidParameter(f"invalid checksum digest format: {checksum}")
    return checksum


def _verify(url: str, path: str, checksum: str) -> None:
    if ":" not in checksum:
        raise InvalidParameter(f"invalid checksum digest format: {checksum}")
    algorithm, expected = checksum.split(":", 1)
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    got = f"{algorithm}:{digest.hexdigest()}"
    if got != checksum:
        raise InvalidParameter(f"digest mismatch for {url}: {got} (expected: {checksum})")


def _parents_of(pattern: str, found: str) -> str:
    """COPY --parents: the directories of a source kept under the destination, relative
    to the context (or to a "/./" pivot in the pattern)."""
    directory = posixpath.dirname(found)
    while pattern.startswith("./"):
        pattern = pattern[2:]
    if "/./" in pattern:
        pivot = posixpath.normpath("/" + pattern.split("/./", 1)[0]).strip("/")
        if pivot and (directory + "/").startswith(pivot + "/"):
            directory = directory[len(pivot) + 1:]
        elif pivot == directory:
            directory = ""
    return directory


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)


def _rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)

