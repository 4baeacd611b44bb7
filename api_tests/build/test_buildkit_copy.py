"""BuildKit's COPY and ADD flags through `POST /build` (the legacy client): --chmod with
octal and symbolic modes, --exclude, --parents, --link; ADD --checksum of a URL (verified,
a clear error on a mismatch) and ADD of a git repository (a local bare repo over file://,
a ref and a subdirectory, --keep-git-dir, --checksum as the commit)."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..lifetime import die_with_test_run
from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")


@pytest.fixture
def http_files(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A web server on the loopback serving a directory: (base URL, directory)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def _git(*args: str, cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid", "GIT_AUTHOR_DATE": "2020-01-02T03:04:05Z",
           "GIT_COMMITTER_DATE": "2020-01-02T03:04:05Z"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True, preexec_fn=die_with_test_run).stdout


def test_chmod_octal_and_symbolic(make_context: Callable[..., Any], build: Any, docker: Any,
                                  unique_name: Any) -> None:
    ctx = make_context({"Dockerfile":
        "FROM busybox\n"
        "COPY --chmod=0640 f /m/octal\n"
        "COPY --chmod=u+x,g-r f /m/plus\n"
        "COPY --chmod=a=r,u+w f /m/equals\n"
        "COPY --chmod=go-rwx,+X d /m/d/\n"
        "ADD --chmod=u=g f /m/added\n",
        "f": "x\n", "d/run.sh": "#!/bin/sh\n", "d/data": "y\n"})
    (ctx / "f").chmod(0o664)
    (ctx / "d" / "run.sh").chmod(0o755)
    (ctx / "d" / "data").chmod(0o644)
    tag = unique_name("chmod")
    build(ctx, "-t", tag)
    out = run_in(docker, tag, "stat", "-c", "%n %a", "/m/octal", "/m/plus", "/m/equals",
                 "/m/d/run.sh", "/m/d/data", "/m/added").stdout
    assert out.split("\n")[:-1] == ["/m/octal 640", "/m/plus 724", "/m/equals 644",
                                    "/m/d/run.sh 711", "/m/d/data 600", "/m/added 664"]
    bad = build(make_context({"Dockerfile": "FROM busybox\nCOPY --chmod=8 f /f\n", "f": ""}),
                check=False)
    assert bad.rc != 0 and "invalid chmod parameter: '8'. it should be octal string and " \
        "between 0 and 07777" in bad.output
    bad = build(make_context({"Dockerfile": "FROM busybox\nCOPY --chmod=u*x f /f\n", "f": ""}),
                check=False)
    assert bad.rc != 0 and "invalid syntax" in bad.output


def test_exclude_parents_and_link(make_context: Callable[..., Any], build: Any, docker: Any,
                                  unique_name: Any) -> None:
    ctx = make_context({"Dockerfile":
        "FROM busybox\n"
        "COPY --exclude=**/*.tmp --exclude=cache src /ex/\n"
        "COPY --exclude=*.tmp src /top-only/\n"
        "COPY --parents a/b/one.txt a/c/two.txt /par/\n"
        "COPY --parents ./a/./b/one.txt /pivot/\n"
        "COPY --link a/b/one.txt /linked.txt\n",
        "src/keep.txt": "k", "src/drop.tmp": "d", "src/cache/x": "c", "src/sub/also.tmp": "d",
        "src/sub/keep2": "k", "a/b/one.txt": "1", "a/c/two.txt": "2"})
    tag = unique_name("copyflags")
    build(ctx, "-t", tag)
    listing = run_in(docker, tag, "find", "/ex", "/par", "/pivot", "/linked.txt").stdout
    # patterns match as in .dockerignore: "*.tmp" at the top only
    top = run_in(docker, tag, "find", "/top-only", "-name", "*.tmp").stdout
    assert top.split() == ["/top-only/sub/also.tmp"]
    assert sorted(listing.split()) == sorted([
        "/ex", "/ex/keep.txt", "/ex/sub", "/ex/sub/keep2",
        "/par", "/par/a", "/par/a/b", "/par/a/b/one.txt", "/par/a/c", "/par/a/c/two.txt",
        "/pivot", "/pivot/b", "/pivot/b/one.txt", "/linked.txt"])


def test_add_checksum(make_context: Callable[..., Any], build: Any, docker: Any,
                      unique_name: Any, http_files: tuple[str, Path]) -> None:
    base, root = http_files
    (root / "data.bin").write_bytes(b"payload\n")
    good = "sha256:" + hashlib.sha256(b"payload\n").hexdigest()
    bad = "sha256:" + hashlib.sha256(b"other").hexdigest()
    tag = unique_name("checksum")
    ok = make_context({"Dockerfile": f"FROM busybox\nADD --checksum={good} {base}/data.bin /d\n"})
    build(ok, "-t", tag)
    assert run_in(docker, tag, "cat", "/d").stdout == "payload\n"
    wrong = make_context({"Dockerfile":
                          f"FROM busybox\nADD --checksum={bad} {base}/data.bin /d\n"})
    r = build(wrong, check=False)
    assert r.rc != 0 and f"digest mismatch for {base}/data.bin: {good} (expected: {bad})" \
        in r.output
    local = make_context({"Dockerfile": f"FROM busybox\nADD --checksum={good} f /f\n", "f": ""})
    r = build(local, check=False)
    assert r.rc != 0 and "checksum requires HTTP(S) or Git sources" in r.output


def test_add_git_repository(make_context: Callable[..., Any], build: Any, docker: Any,
                            unique_name: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", ".", cwd=work)
    (work / "README").write_text("top\n")
    (work / "sub").mkdir()
    (work / "sub" / "inner.txt").write_text("inner\n")
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "v1", cwd=work)
    first = _git("rev-parse", "HEAD", cwd=work).strip()
    (work / "README").write_text("changed\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    bare = tmp_path / "repo.git"
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    url = f"file://{bare}"
    tag = unique_name("git")
    ctx = make_context({"Dockerfile":
        "FROM busybox\n"
        f"ADD {url} /head/\n"
        f"ADD {url}#v1 /tagged/\n"
        f"ADD {url}#main:sub /subdir/\n"
        f"ADD --keep-git-dir {url}#v1 /withgit/\n"
        f"ADD --checksum={first} {url}#v1 /checked/\n"})
    build(ctx, "-t", tag)
    out = run_in(docker, tag, "cat", "/head/README", "/tagged/README", "/subdir/inner.txt"
                 ).stdout
    assert out == "changed\ntop\ninner\n"
    assert run_in(docker, tag, "ls", "-A", "/head").stdout.split() == ["README", "sub"]
    assert run_in(docker, tag, "test", "-d", "/withgit/.git").returncode == 0
    assert run_in(docker, tag, "stat", "-c", "%Y", "/tagged/README").stdout.strip() == \
        "1577934245"  # the commit's time: the layer does not depend on the fetch
    wrong = make_context({"Dockerfile": f"FROM busybox\nADD --checksum=0123456 {url} /x/\n"})
    r = build(wrong, check=False)
    assert r.rc != 0 and "expected checksum to match 0123456" in r.output
    copy = make_context({"Dockerfile": f"FROM busybox\nCOPY {url} /x/\n"})
    r = build(copy, check=False)
    assert r.rc != 0 and "source can't be a git ref for COPY" in r.output
