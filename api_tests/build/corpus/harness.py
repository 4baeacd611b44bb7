"""Building corpus cases through the stock CLI on one daemon (ours or the reference).

`Corpus` builds each case at most once (a module shares the results) and removes every
tag it made; `serve_web()` is the HTTP server on 127.0.0.1 the ADD <url> case downloads
from; F/D/L build the expected `Entry` of a file, directory or symlink.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...conftest import DOCKER_CLI
from . import CASES, WEB_FILES, WEB_LAST_MODIFIED, Entry, Run, history_view

# a step line may follow the colour reset closing the red warnings printed before step 1
STEP = re.compile(r"^(?:\x1b\[0m)?Step (\d+)/(\d+) : (.*)$", re.M)


class _WebHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = WEB_FILES.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", WEB_LAST_MODIFIED)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass   # not on the test's stderr


@contextmanager
def serve_web() -> Iterator[str]:
    """Base URL of an HTTP server on 127.0.0.1 serving WEB_FILES, for its duration."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Built:
    tag: str
    proc: subprocess.CompletedProcess[str]

    @property
    def ok(self) -> bool:
        return self.proc.returncode == 0

    @property
    def steps(self) -> list[tuple[int, int, str]]:
        """(N, M, instruction) of every "Step N/M : instruction" line."""
        return [(int(n), int(m), text) for n, m, text in STEP.findall(self.proc.stdout)]


class Corpus:
    """Builds corpus cases on one daemon, each at most once, under tags removed at the end."""

    def __init__(self, run: Run, env: dict[str, str], web: str, prefix: str,
                 *extra: str) -> None:
        self.run = run
        self.env = env      # the CLI's environment for this daemon (DOCKER_HOST, ...)
        self.web = web
        self.prefix = prefix
        self.extra = extra  # flags every build gets (the reference needs --network host)
        self.built: dict[str, Built] = {}
        self.tags: list[str] = []

    def tag_for(self, name: str) -> str:
        return f"{self.prefix}-{name}:corpus"

    def build(self, name: str) -> Built:
        if name not in self.built:
            self.built[name] = self.build_with(name, tag=self.tag_for(name))
        return self.built[name]

    def build_with(self, name: str, *flags: str, tag: str | None = None,
                   **overrides: Any) -> Built:
        """Builds a case (fields of its Case replaced by `overrides`), every time; the
        cases it needs only when not built yet."""
        case = replace(CASES[name], **overrides)
        for need in case.needs:
            assert self.build(need).ok, f"{need} (needed by {name}) did not build"
        values = {"web": self.web, "onbuild_parent": self.tag_for("onbuild-parent")}
        argv = ["build", *self.extra, *flags, *case.argv(tag, values)]
        if tag:
            self.tags.append(tag)
        return Built(tag or "", self.run(*argv, check=False, timeout=300))

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """A CLI process on this corpus's daemon, stdout readable line by line."""
        return subprocess.Popen([DOCKER_CLI, *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

    def remove_all(self) -> None:
        if self.tags:
            self.run("rmi", "-f", *self.tags, check=False)


def ensure_busybox(run: Run, busybox_tar: Path) -> None:
    """busybox:latest imported from the session's tarball: the same image ID everywhere."""
    if run("image", "inspect", "busybox:latest", check=False).returncode != 0:
        run("import", "-c", 'CMD ["sh"]', busybox_tar, "busybox:latest")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def F(content: bytes, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> Entry:  # noqa: N802
    return Entry("file", mode, owner[0], owner[1], len(content), sha(content), "")


def D(mode: int = 0o755, owner: tuple[int, int] = (0, 0)) -> Entry:  # noqa: N802
    return Entry("dir", mode, owner[0], owner[1], 0, "", "")


def L(target: str) -> Entry:  # noqa: N802
    return Entry("symlink", 0o777, 0, 0, 0, "", target)


def layer_count(config: dict[str, Any]) -> int:
    return len(config["rootfs"]["diff_ids"])


def own_history(config: dict[str, Any]) -> list[tuple[str, bool, str, str]]:
    """History entries a build on busybox added (the busybox import is the first entry)."""
    return history_view(config)[1:]
