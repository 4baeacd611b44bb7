"""ADD of a git repository: `ADD https://host/repo.git#ref:subdir /dst`.

What counts as a git source follows BuildKit's dfgitutil: `git://`, `ssh://`,
`git@host:path`, http(s) URLs whose path ends in `.git`, and `file://` (a
repository on the daemon's host: what an offline test can reach). The
fragment names a ref (branch, tag or commit) and a subdirectory. The
checkout is shallow where the ref allows it; `--keep-git-dir` keeps `.git`;
every file's time is the commit's, so the layer does not depend on when it
was fetched. `--checksum` is the commit the ref must resolve to.

git runs with no config of the host's, no prompts, and only the transports
named above (no `ext::`), the URL always after `--`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass

from dockerd_py.errors import InvalidParameter

_SCP = re.compile(r"^[A-Za-z0-9_.-]+@[A-Za-z0-9.-]+:[^\s]+$")
_REF = re.compile(r"^[A-Za-z0-9._/+-]*$")
_TIMEOUT = 600


@dataclass(frozen=True)
class GitRef:
    remote: str
    ref: str = ""
    subdir: str = ""


def parse_git_ref(text: str) -> GitRef | None:
    """The git source `text` names, or None when it is not a git source."""
    remote, _, fragment = text.partition("#")
    lower = remote.lower()
    if lower.startswith(("git://", "ssh://", "file://")) or _SCP.match(remote):
        pass
    elif lower.startswith(("http://", "https://")):
        if not urllib.parse.urlparse(remote).path.endswith(".git"):
            return None
    else:
        return None
    ref, _, subdir = fragment.partition(":")
    if not _REF.match(ref) or ref.startswith("-") or ".." in ref.split("/"):
        raise InvalidParameter(f"invalid git ref {ref!r} in {text}")
    subdir = subdir.strip("/")
    if ".." in subdir.split("/"):
        raise InvalidParameter(f"invalid git subdirectory {subdir!r} in {text}")
    return GitRef(remote, ref, subdir)


def _git(*args: str, cwd: str | None = None) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "GIT_PROTOCOL_FROM_USER": "0",
           "GIT_ALLOW_PROTOCOL": "file:git:ssh:http:https", "LC_ALL": "C"}
    proc = subprocess.run(["git", "-c", "protocol.ext.allow=never", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    if proc.returncode != 0:
        raise InvalidParameter(f"failed to fetch git source: git {args[0]}: "
                               f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def fetch(ref: GitRef, directory: str, *, keep_git_dir: bool) -> tuple[str, str]:
    """Check the source out into directory (new); returns (the tree to copy, the
    commit) (blocking)."""
    os.makedirs(directory)
    _git("init", "-q", directory)
    _git("remote", "add", "origin", "--", ref.remote, cwd=directory)
    wanted = ref.ref or "HEAD"
    try:
        _git("fetch", "-q", "--depth=1", "--no-tags", "origin", "--", wanted, cwd=directory)
    except InvalidParameter:  # a commit id some servers do not hand out by itself
        _git("fetch", "-q", "--tags", "origin", cwd=directory)
        wanted = _git("rev-parse", "--verify", "-q", f"{wanted}^{{commit}}",
                      cwd=directory).strip()
    else:
        wanted = "FETCH_HEAD"
    _git("checkout", "-q", "--detach", wanted, cwd=directory)
    commit = _git("rev-parse", "HEAD", cwd=directory).strip()
    when = int(_git("log", "-1", "--format=%ct", "HEAD", cwd=directory).strip() or 0)
    if not keep_git_dir:
        shutil.rmtree(os.path.join(directory, ".git"))
    tree = os.path.join(directory, ref.subdir) if ref.subdir else directory
    real = os.path.realpath(tree)
    if not (real + "/").startswith(os.path.realpath(directory) + "/") or not os.path.isdir(real):
        raise InvalidParameter(f"git source {ref.remote}: no directory {ref.subdir}")
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (when, when), follow_symlinks=False)
    os.utime(directory, (when, when))
    return tree, commit
