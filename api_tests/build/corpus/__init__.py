"""The Dockerfile corpus: one build context per directory, and how each is built.

`test_corpus.py` builds every case on our daemon and checks it against what Docker's
legacy builder documents (and, on this machine, produces); `test_reference_builds.py`
builds the same cases with Docker 20.10 and compares image configs, history and file
trees. Helpers here read images back through the stock CLI only (`docker save`,
`docker export`), so they work the same against either daemon.

A case's build args may name `{web}` (the base URL of the test's HTTP server on
127.0.0.1) and `{onbuild_parent}` (the tag the onbuild-parent case was built under).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

CORPUS_DIR = Path(__file__).resolve().parent

# the files the HTTP server of the tests serves for ADD <url>
WEB_FILES = {"remote.txt": b"served over http\n"}
WEB_LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"

# the `docker` fixture or a reference daemon's run(): (*args, check=...) -> CompletedProcess
Run = Callable[..., Any]


@dataclass(frozen=True)
class Case:
    name: str
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    exit_code: int = 0              # the CLI's exit status
    legacy: str | None = None       # why Docker's legacy builder cannot build it; None: it can
    needs: tuple[str, ...] = ()     # cases to build first

    @property
    def context(self) -> Path:
        return CORPUS_DIR / self.name

    def argv(self, tag: str | None, values: Mapping[str, str]) -> list[str]:
        """`docker build` arguments after "build", context directory last."""
        argv: list[str] = []
        if tag:
            argv += ["-t", tag]
        for key, value in self.build_args:
            argv += ["--build-arg", f"{key}={value.format(**values)}"]
        if self.target:
            argv += ["--target", self.target]
        return argv + [str(self.context)]


BUILDKIT_ONLY = "BuildKit syntax: Docker 20.10's legacy builder rejects it"

CASES: dict[str, Case] = {c.name: c for c in [
    Case("multistage", target="final"),
    Case("args", build_args=(("OVERRIDDEN", "from-cli"),
                             ("HTTP_PROXY", "http://proxy.example:3128"),
                             ("NOT_DECLARED", "1"))),
    Case("heredoc", legacy=BUILDKIT_ONLY),
    Case("onbuild-parent"),
    Case("onbuild-child", build_args=(("PARENT", "{onbuild_parent}"),),
         needs=("onbuild-parent",)),
    Case("dockerignore"),
    Case("copy-edges"),
    Case("copy-chmod", legacy=BUILDKIT_ONLY),
    Case("add-archives", build_args=(("WEB_URL", "{web}"),)),
    Case("env"),
    Case("user-workdir"),
    Case("metadata"),
    Case("scratch"),
    Case("failing-run", exit_code=4),
    Case("escape"),
    Case("app"),
    Case("continuations"),
    Case("json-forms"),
    Case("stage-inherit"),
    Case("misc-edges"),
    Case("expansion"),
    # CRLF line ends, a byte order mark, an unknown directive (which ends the directives:
    # the escape line after it is a comment), tabs, an empty continuation line
    Case("parser-edges"),
]}

# Dockerfiles that must not build, with the message Docker 20.10's legacy builder gives
# (the CLI prints it on stderr, after "Error response from daemon: " when the daemon
# refuses the request before streaming). A `None` line: the error names no line.
MALFORMED: list[tuple[str, str]] = [
    ("FROM busybox\nRUN true\nFOO bar\n",
     "dockerfile parse error line 3: unknown instruction: FOO"),
    ("FROM busybox\nRUN echo a \\\n  b \\\n  c\nBOGUS x\n",
     "dockerfile parse error line 5: unknown instruction: BOGUS"),
    ("FROM\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
    ("FROM busybox\nHEALTHCHECK --interval=xyz CMD true\n",
     'dockerfile parse error line 2: time: invalid duration "xyz"'),
    ("FROM busybox\nCOPY --bogus=1 present.txt /x\n",
     "dockerfile parse error line 2: Unknown flag: bogus"),
    ("FROM busybox\n\n# comment\nLABEL\n",
     "dockerfile parse error line 4: LABEL requires at least one argument"),
    ("FROM busybox\nWORKDIR\n",
     "dockerfile parse error line 2: WORKDIR requires exactly one argument"),
    ("FROM busybox\nHEALTHCHECK --retries=0 CMD true\n",
     "dockerfile parse error line 2: --retries must be at least 1 (not 0)"),
    ("FROM busybox\nADD\n", "dockerfile parse error line 2: ADD requires at least two arguments, "
                            "but only one was provided. Destination could not be determined"),
    ("FROM busybox\nONBUILD FROM busybox\n",
     "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD ONBUILD RUN true\n",
     "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM busybox\nONBUILD MAINTAINER x\n",
     "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nEXPOSE\n",
     "dockerfile parse error line 2: EXPOSE requires at least one argument"),
    ("FROM busybox\nARG\n", "dockerfile parse error line 2: ARG requires at least one argument"),
    ("FROM busybox\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"),
    ("FROM busybox AS 1bad\n", 'dockerfile parse error line 1: invalid name for build stage: '
                               '"1bad", name can\'t start with a number or contain symbols'),
    ("FROM busybox as\n", "dockerfile parse error line 1: FROM requires either one or three "
                          "arguments"),
    ("FROM busybox\nENV =x\n", "dockerfile parse error line 2: ENV names can not be blank"),
    ("FROM busybox\nSHELL sh -c\n",
     "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
    ("RUN true\nFROM busybox\n", "no build stage in current context"),
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
]

# Dockerfiles that parse but fail at their last step: its header is printed, then the error.
FAILING_STEPS: list[tuple[str, str]] = [
    ("FROM busybox\nCOPY present.txt Dockerfile /notadir\n",
     "When using COPY with more than one source file, the destination must be a directory "
     "and end with a /"),
    ("FROM busybox\nCOPY nope.txt /x\n",
     "COPY failed: file not found in build context or excluded by .dockerignore: "
     "stat nope.txt: file does not exist"),
    ("FROM busybox\nEXPOSE 80/xyz\n", "Invalid proto: xyz"),
    ("FROM busybox\nSTOPSIGNAL BOGUS\n", "Invalid signal: BOGUS"),
    ("FROM busybox\nCOPY --chown=nosuchuser present.txt /x\n",
     "unable to convert uid/gid chown string to host mapping: can't find uid for user "
     "nosuchuser: no such user: nosuchuser"),
    ("FROM busybox\nCOPY ../outside.txt /x\n",
     "COPY failed: forbidden path outside the build context: ../outside.txt ()"),
    ("FROM busybox\nUSER nosuchuser\nRUN true\n",
     "unable to find user nosuchuser: no matching entries in passwd file"),
    # the legacy builder does not expand --from (BuildKit does)
    ("FROM busybox AS source\nRUN true\nFROM busybox\nARG STAGE=source\n"
     "COPY --from=${STAGE} /made /made\n",
     "invalid from flag value ${STAGE}: invalid reference format: repository name must be "
     "lowercase"),
]


def error_params(table: list[tuple[str, str]]) -> list[Any]:
    """The table as pytest params (dockerfile, message), named by the message's start."""
    return [pytest.param(dockerfile, message, id=message[:40]) for dockerfile, message in table]


# --- reading images back ----------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One path of an image's file tree, without times."""
    kind: str        # "file", "dir", "symlink", "hardlink", "other"
    mode: int        # permission bits (and setuid/setgid/sticky)
    uid: int
    gid: int
    size: int
    sha256: str      # of a regular file's content
    link: str


_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink"}
# what `docker create` adds to every container, whatever the image
_CONTAINER_ONLY = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "dev", "proc",
                   "sys", "etc/mtab"}


def image_tree(run: Run, image: str) -> dict[str, Entry]:
    """The image's filesystem as `docker export` of a created (never started) container gives it."""
    cid = run("create", image, "/nonexistent-never-started").stdout.strip()
    try:
        with tempfile.TemporaryDirectory(prefix="corpus-export-") as tmp:
            out = Path(tmp) / "fs.tar"
            run("export", "-o", out, cid)
            tree = _read_tree(out.read_bytes())
    finally:
        run("rm", cid, check=False)
    # `docker create` makes /etc for its hosts/hostname/resolv.conf mount points when the
    # image has none (FROM scratch); an /etc left empty by that is the container's, not the image's
    if tree.get("etc", Entry("", 0, 0, 0, 0, "", "")).kind == "dir" and \
            not any(k.startswith("etc/") for k in tree):
        del tree["etc"]
    return tree


def _read_tree(data: bytes) -> dict[str, Entry]:
    """Hard links become files like their target, with `link` naming every path of the
    group (which of them a tar stores as the file and which as links is arbitrary)."""
    tree: dict[str, Entry] = {}
    groups: dict[str, set[str]] = {}   # path -> the paths it is hard-linked with
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            name = m.name.strip("/").removeprefix("./")
            if not name or name in _CONTAINER_ONLY or name.split("/")[0] in ("dev", "proc", "sys"):
                continue
            digest = ""
            if m.isreg():
                f = tar.extractfile(m)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
            if m.islnk():
                target = m.linkname.strip("/").removeprefix("./")
                group = groups.setdefault(target, {target}) | {name}
                for path in group:
                    groups[path] = group
                tree[name] = tree.get(target, Entry("other", 0, 0, 0, 0, "", ""))
                continue
            tree[name] = Entry(_KINDS.get(m.type, "other"), m.mode & 0o7777, m.uid, m.gid,
                               m.size if m.isreg() else 0, digest, m.linkname)
    for path, group in groups.items():
        if path in tree:
            tree[path] = replace(tree[path], link="hardlinks:" + ",".join(sorted(group)))
    return tree


def tree_diff(base: Mapping[str, Entry], image: Mapping[str, Entry]) -> dict[str, Entry | None]:
    """What a build changed over its base: changed or added paths, and removed ones as None."""
    changed: dict[str, Entry | None] = {k: v for k, v in image.items() if base.get(k) != v}
    changed.update({k: None for k in base if k not in image})
    return changed


def saved_config(run: Run, image: str) -> dict[str, Any]:
    """The image's config blob (runtime config, history, rootfs) from `docker save`."""
    with tempfile.TemporaryDirectory(prefix="corpus-save-") as tmp:
        out = Path(tmp) / "image.tar"
        run("save", "-o", out, image)
        with tarfile.open(out) as tar:
            manifest_file = tar.extractfile("manifest.json")
            assert manifest_file is not None
            manifest = json.load(manifest_file)
            config_file = tar.extractfile(manifest[0]["Config"])
            assert config_file is not None
            config: dict[str, Any] = json.load(config_file)
            return config


# "COPY file:<hex> in /x", "COPY --chown=udir:<hex> in", "ADD <hex> in /x" (a URL, 20.10)
_CONTENT_HASH = re.compile(r"((?:file|dir|multi|url):)?[0-9a-f]{64}(?= in )")


def history_view(config: Mapping[str, Any]) -> list[tuple[str, bool, str, str]]:
    """(created_by, empty_layer, author, comment) per history entry; the content hashes of
    COPY/ADD ("file:<sha256>", "dir:...", ...) become "file:*" and so on: each builder hashes
    its own way, but the prefix and the rest of the line are the reference's."""
    return [(_CONTENT_HASH.sub(r"\1*", h.get("created_by", "")), bool(h.get("empty_layer")),
             h.get("author", ""), h.get("comment", "")) for h in config.get("history", [])]


# runtime config fields an image carries (Hostname and Image are per-build noise)
RUNTIME_KEYS = ("User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
                "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell")


def runtime_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The image config's `config` reduced to what a user sets; empty values dropped, since
    Docker writes `null`, `""` or `[]` for them interchangeably across versions."""
    rc = config.get("config") or {}
    return {k: rc[k] for k in RUNTIME_KEYS if rc.get(k) not in (None, "", [], {}, False)}
