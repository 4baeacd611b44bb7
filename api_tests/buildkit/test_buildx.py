"""`docker build` through the stock buildx plugin (BuildKit's /grpc and /session) on our
daemon: the docker driver finds our BuildKit endpoints, builds run on our builder, the
progress shows each step (CACHED on a rebuild, the RUN output, the failing command), the
image lands in our store, and a cancelled build leaves nothing behind."""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import DOCKER_CLI
from ..lifetime import die_with_test_run

MULTI = """\
FROM busybox AS base
ARG GREETING=hello
RUN echo "$GREETING from base" > /greeting

FROM base AS extra
RUN echo unused > /unused

FROM busybox AS final
COPY --from=base /greeting /greeting
COPY app.txt /app.txt
RUN cat /greeting /app.txt
CMD ["cat", "/greeting"]
"""


def test_buildx_sees_our_builder(bx: Any) -> None:
    out = bx("buildx", "inspect").stdout
    assert "Driver: docker" in out
    assert "Status:           running" in out
    assert "linux/amd64" in out or "linux/arm64" in out
    bx("buildx", "du")


def test_multistage_build_with_flags(bx: Any, docker: Any, busybox_image: str,
                                     make_context: Callable[..., Path],
                                     unique_name: Callable[..., str], tmp_path: Path) -> None:
    ctx = make_context({"build.Dockerfile": MULTI, "app.txt": "app\n"})
    tag = unique_name("bk") + ":v1"
    iid = tmp_path / "iid"
    meta = tmp_path / "meta.json"
    proc = bx("build", "--progress=plain", "-t", tag, "-f", str(ctx / "build.Dockerfile"),
              "--target", "final", "--build-arg", "GREETING=hi", "--label", "org.x=1",
              "--iidfile", iid, "--metadata-file", meta, ctx)
    out = proc.stderr
    assert "[final 4/4] RUN cat /greeting /app.txt" in out or "RUN cat /greeting /app.txt" in out
    assert "hi from base" in out and "app" in out
    assert "echo unused" not in out          # the stage the target does not need is skipped
    image_id = iid.read_text().strip()
    inspected = json.loads(docker("image", "inspect", tag).stdout)[0]
    assert inspected["Id"] == image_id
    assert inspected["Config"]["Labels"]["org.x"] == "1"
    assert json.loads(meta.read_text())["containerimage.digest"] == image_id
    run = docker("run", "--rm", "--network", "none", tag)
    assert run.stdout == "hi from base\n"


def test_second_build_is_cached(bx: Any, busybox_image: str,
                                make_context: Callable[..., Path],
                                unique_name: Callable[..., str]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo built > /f\nCOPY a /a\n",
                        "a": "a\n"})
    tag = unique_name("bkc")
    first = bx("build", "--progress=plain", "-t", tag, ctx).stderr
    assert "CACHED" not in first
    second = bx("build", "--progress=plain", "-t", tag, ctx).stderr
    assert second.count("CACHED") >= 2, second
    again = bx("build", "--progress=plain", "--no-cache", "-t", tag, ctx).stderr
    assert "CACHED" not in again


def test_failing_run_reports_the_exit_code(bx: Any, busybox_image: str,
                                           make_context: Callable[..., Path],
                                           leftovers: Callable[[], list[str]]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo before; exit 3\n"})
    proc = bx("build", "--progress=plain", ctx, check=False)
    assert proc.returncode == 1
    assert "ERROR: failed to build: failed to solve: executor failed running " \
           "[/bin/sh -c echo before; exit 3]: exit code: 3" in proc.stderr
    assert "before" in proc.stderr
    assert leftovers() == []


def test_refused_options_say_why(bx: Any, busybox_image: str,
                                 make_context: Callable[..., Path]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\n"})
    other = "linux/arm64" if os.uname().machine == "x86_64" else "linux/amd64"
    proc = bx("build", "--platform", other, ctx, check=False)
    assert proc.returncode != 0
    assert f"building for platform '{other}' is not supported" in proc.stderr
    proc = bx("build", "--output", "type=oci,dest=/dev/null", ctx, check=False)
    assert proc.returncode != 0
    assert "not supported" in proc.stderr


def test_interrupted_build_leaves_nothing(bx: Any, buildx_env: dict[str, str],
                                          busybox_image: str,
                                          make_context: Callable[..., Path],
                                          leftovers: Callable[[], list[str]]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo started; sleep 300\n"})
    proc = subprocess.Popen([DOCKER_CLI, "build", "--progress=plain", str(ctx)],
                            env=buildx_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=die_with_test_run)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "started" in line and "echo started" not in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, "".join(seen) + rest
    # the daemon tears the step down after the client is gone: wait for it
    for _ in range(200):
        if not leftovers():
            break
        time.sleep(0.1)
    assert leftovers() == []


def test_prune_and_du_count_the_same_cache(bx: Any, docker: Any, busybox_image: str,
                                           make_context: Callable[..., Path]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo prune-me > /p\n"})
    bx("build", ctx)
    du = bx("buildx", "du", "--verbose").stdout
    df = json.loads(docker("system", "df", "-v", "--format", "{{json .}}").stdout)
    assert df["BuildCache"], df
    for record in df["BuildCache"]:
        assert record["ID"].rstrip("*") in du  # the CLI marks a record in use with a "*"
    bx("buildx", "prune", "-af")
    df = json.loads(docker("system", "df", "-v", "--format", "{{json .}}").stdout)
    assert not df["BuildCache"]


def test_progress_tty(buildx_env: dict[str, str], busybox_image: str,
                      make_context: Callable[..., Path]) -> None:
    """The interactive display, on a terminal: every step with its time, then FINISHED."""
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo on-a-tty\n"})
    master, slave = pty.openpty()
    proc = subprocess.Popen([DOCKER_CLI, "build", "--progress=tty", "--no-cache", str(ctx)],
                            env=buildx_env, stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, preexec_fn=die_with_test_run)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0, out.decode(errors="replace")
    text = out.decode(errors="replace")
    assert "[2/2] RUN echo on-a-tty" in text
    assert "FINISHED" in text
    assert "exporting to image" in text


@pytest.mark.parametrize("progress", ["plain", "rawjson", "quiet"])
def test_progress_modes(bx: Any, busybox_image: str, make_context: Callable[..., Path],
                        progress: str) -> None:
    ctx = make_context({"Dockerfile": f"FROM busybox\nRUN echo mode-{progress}\n"})
    proc = bx("build", f"--progress={progress}", "--no-cache", ctx)
    if progress in ("plain", "rawjson"):
        assert f"mode-{progress}" in proc.stderr
    if progress == "quiet":
        assert proc.stdout.startswith("sha256:")


def test_push_to_the_test_registry(bx: Any, docker: Any, busybox_image: str,
                                   plain_registry: Any, make_context: Callable[..., Path],
                                   unique_name: Callable[..., str]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo pushed > /p\n"})
    ref = f"{plain_registry.host}/{unique_name('bkpush')}:v1"
    bx("build", "--push", "-t", ref, ctx)
    docker("rmi", ref)
    docker("pull", ref)
    assert docker("run", "--rm", "--network", "none", ref, "cat", "/p").stdout == "pushed\n"
    docker("rmi", ref)


def test_secret_reaches_run_and_no_layer(bx: Any, docker: Any, busybox_image: str,
                                         make_context: Callable[..., Path],
                                         unique_name: Callable[..., str],
                                         tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-value")
    ctx = make_context({"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len\n"
        "RUN --mount=type=secret,id=env_tok,env=TOKEN echo \"${#TOKEN}\" > /envlen\n")})
    tag = unique_name("bksec")
    bx("build", "--secret", f"id=tok,src={secret}", "--secret", "id=env_tok,env=MY_TOKEN",
       "-t", tag, ctx, env={"MY_TOKEN": "abcd"})
    assert docker("run", "--rm", "--network", "none", tag, "cat", "/len").stdout.strip() == "12"
    assert docker("run", "--rm", "--network", "none", tag, "cat",
                  "/envlen").stdout.strip() == "4"
    saved = tmp_path / "img.tar"
    docker("save", "-o", saved, tag)
    assert b"s3cr3t-value" not in saved.read_bytes()
    assert "s3cr3t" not in docker("history", "--no-trunc", tag).stdout


def test_named_build_context(bx: Any, docker: Any, busybox_image: str,
                             make_context: Callable[..., Path],
                             unique_name: Callable[..., str]) -> None:
    extra = make_context({"data.txt": "from the named context\n"}, name="extra")
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY --from=extra data.txt /data.txt\n"})
    tag = unique_name("bkctx")
    bx("build", "--build-context", f"extra={extra}", "-t", tag, ctx)
    out = docker("run", "--rm", "--network", "none", tag, "cat", "/data.txt").stdout
    assert out == "from the named context\n"


def test_output_local_and_tar(bx: Any, busybox_image: str,
                              make_context: Callable[..., Path], tmp_path: Path,
                              leftovers: Callable[[], list[str]]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN mkdir -p /out && echo x > /out/f\n"})
    dest = tmp_path / "local"
    bx("build", "--output", f"type=local,dest={dest}", ctx)
    assert (dest / "out" / "f").read_text() == "x\n"
    assert (dest / "bin" / "busybox").exists()
    tarball = tmp_path / "out.tar"
    bx("build", "--output", f"type=tar,dest={tarball}", ctx)
    with tarfile.open(tarball) as tar:
        assert "out/f" in tar.getnames()
    assert leftovers() == []


def test_network_hosts_and_platform(bx: Any, docker: Any, busybox_image: str,
                                    make_context: Callable[..., Path],
                                    unique_name: Callable[..., str]) -> None:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    ctx = make_context({"Dockerfile": (
        "FROM busybox\n"
        "RUN grep -q 'buildhost' /etc/hosts && echo host-ok > /h\n"
        "RUN ip -o link | grep -v ' lo:' | wc -l > /links\n")})
    tag = unique_name("bknet")
    bx("build", "--add-host", "buildhost:10.1.2.3", "--network", "none",
       "--platform", f"linux/{arch}", "-t", tag, ctx)
    run = ["run", "--rm", "--network", "none", tag]
    assert docker(*run, "cat", "/h").stdout == "host-ok\n"
    assert docker(*run, "cat", "/links").stdout.strip() == "0"   # --network none: lo only


def test_build_checks_are_warnings(bx: Any, busybox_image: str,
                                   make_context: Callable[..., Path]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox as base\nCMD echo hi\n"})
    out = bx("build", "--progress=plain", ctx).stderr
    assert re.search(r"^#1 WARN: JSONArgsRecommended: JSON arguments recommended for CMD",
                     out, re.M), out
    assert "2 warnings found" in out


def test_other_frontends_are_refused(bx: Any, busybox_image: str,
                                     make_context: Callable[..., Path]) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\n"})
    proc = bx("build", "--build-arg", "BUILDKIT_SYNTAX=example.com/frontend:1", ctx,
              check=False)
    assert proc.returncode != 0
    assert "frontend 'gateway.v0' is not supported; only dockerfile.v0" in proc.stderr


def test_ssh_agent_forwarding(bx: Any, docker: Any, busybox_image: str,
                              make_context: Callable[..., Path],
                              unique_name: Callable[..., str], tmp_path: Path) -> None:
    """`--ssh default=SOCK`: a RUN with an ssh mount gets a socket forwarded to the
    client's agent in SSH_AUTH_SOCK (busybox has no client that could speak to it)."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=die_with_test_run)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        key = tmp_path / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        subprocess.run(["ssh-add", str(key)], env={"SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True)
        ctx = make_context({"Dockerfile": (
            "FROM busybox\n"
            "RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo forwarded > /ssh\n")})
        tag = unique_name("bkssh")
        bx("build", "--ssh", f"default={sock}", "-t", tag, ctx)
        out = docker("run", "--rm", "--network", "none", tag, "cat", "/ssh").stdout
        assert out == "forwarded\n"
        proc = bx("build", "--no-cache", ctx, check=False)    # no --ssh: refused
        assert proc.returncode != 0
    finally:
        agent.terminate()
        agent.wait()


def test_cache_mount_persists_and_is_pruned(bx: Any, docker: Any, busybox_image: str,
                                            make_context: Callable[..., Path],
                                            unique_name: Callable[..., str]) -> None:
    ctx = make_context({"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=cache,id=bkcount,target=/c "
        "echo x >> /c/runs && wc -l < /c/runs > /count\n")})
    tag = unique_name("bkcache")

    def count() -> str:
        bx("build", "--no-cache", "-t", tag, ctx)
        return str(docker("run", "--rm", "--network", "none", tag, "cat", "/count")
                   .stdout.strip())
    first = count()
    assert int(count()) == int(first) + 1
    bx("buildx", "prune", "-af")
    assert count() == "1"


def test_ping_advertises_buildkit(daemon: Any) -> None:
    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(daemon.sock)
    conn = Conn("localhost")
    conn.request("GET", "/_ping")
    assert conn.getresponse().getheader("Builder-Version") == "2"
    conn.close()
