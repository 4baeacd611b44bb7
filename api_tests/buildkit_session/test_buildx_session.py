"""The session services with the real sender: the stock buildx plugin against the daemon.

What the build sees of its context is read in a RUN through a bind mount of the context
(no COPY in between, which would apply its own rules), so the receiver's work is what
is checked: names, types, modes, sizes, mtimes, links, hard links, .dockerignore."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..lifetime import die_with_test_run

MTIME = 1_500_000_000
# busybox stat: name|type|mode|links|size|mtime, and the link target of a symlink
STAT = "stat -c '%n|%F|%a|%h|%s|%Y' "


def _expected(root: Path, excluded: set[str]) -> list[str]:
    kinds = {"d": "directory", "l": "symbolic link", "f": "regular file"}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            if rel in excluded or any(rel.startswith(e + "/") for e in excluded):
                continue
            st = full.lstat()
            kind = "l" if full.is_symlink() else "d" if full.is_dir() else "f"
            size = 0 if kind == "d" else st.st_size
            links = st.st_nlink if kind == "f" else 1
            if kind == "d":
                out.append(f"./{rel}|{kinds[kind]}|{st.st_mode & 0o7777:o}|*|*|{MTIME}")
            else:
                name = "regular empty file" if kind == "f" and not size else kinds[kind]
                out.append(f"./{rel}|{name}|{st.st_mode & 0o7777:o}|{links}|{size}|"
                           f"{MTIME}")
    return sorted(out)


def test_context_tree_reaches_the_build(bx: Any, docker: Any, busybox_image: str,
                                        make_context: Callable[..., Path],
                                        unique_name: Callable[..., str]) -> None:
    big = os.urandom(5 * 1024 * 1024 + 3)
    ctx = make_context({
        "Dockerfile": (
            "FROM busybox\n"
            "RUN --mount=type=bind,target=/ctx cd /ctx && "
            "find . -mindepth 1 ! -name Dockerfile ! -name .dockerignore -exec "
            + STAT + "{} + | sort > /listing && "
            "for l in rel-link abs-link nested/dangling; do echo \"$l -> $(readlink $l)\"; "
            "done > /links && stat -c %i small.txt nested/deep/er/hard | uniq | wc -l > /inodes"
            " && sha256sum nested/big.bin | cut -d' ' -f1 > /big.sha\n"),
        ".dockerignore": "ignored-dir\n*.tmp\n!keep.tmp\nnested/**/secret*\n",
        "small.txt": "hello\n",
        "nested/deep/er/file": "deep\n",
        "nested/big.bin": big,
        "nested/deep/secret.key": "never sent\n",
        "ignored-dir/x": "never sent\n",
        "drop.tmp": "never sent\n",
        "keep.tmp": "kept\n",
        "empty": "",
    })
    os.symlink("small.txt", ctx / "rel-link")
    os.symlink("/etc/passwd", ctx / "abs-link")
    os.symlink("../../nowhere", ctx / "nested/dangling")
    os.link(ctx / "small.txt", ctx / "nested/deep/er/hard")
    os.chmod(ctx / "keep.tmp", 0o640)
    os.chmod(ctx / "nested/deep", 0o750)
    os.chmod(ctx / "empty", 0o4755)
    for dirpath, dirnames, filenames in os.walk(ctx):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
    tag = unique_name("bkctx")
    bx("build", "-t", tag, ctx)
    run = ["run", "--rm", "--network", "none", tag, "cat"]
    listing = sorted(docker(*run, "/listing").stdout.splitlines())
    excluded = {"Dockerfile", ".dockerignore", "ignored-dir", "drop.tmp",
                "nested/deep/secret.key"}
    expected = _expected(ctx, excluded)
    # a directory's link count and size depend on the filesystem: not compared
    assert [_mask_dir(line) for line in listing] == expected
    assert docker(*run, "/links").stdout.splitlines() == [
        "rel-link -> small.txt", "abs-link -> /etc/passwd", "nested/dangling -> ../../nowhere"]
    assert docker(*run, "/inodes").stdout.strip() == "1"  # the hard link is one inode
    assert docker(*run, "/big.sha").stdout.strip() == hashlib.sha256(big).hexdigest()

    # a second build sends what changed; the build sees the new tree exactly
    (ctx / "small.txt").unlink()
    (ctx / "small.txt").write_text("changed\n")
    os.utime(ctx / "small.txt", (MTIME, MTIME))
    os.unlink(ctx / "nested/deep/er/file")
    os.utime(ctx / "nested/deep/er", (MTIME, MTIME))
    os.utime(ctx, (MTIME, MTIME))
    bx("build", "-t", tag, ctx)
    listing = sorted(docker(*run, "/listing").stdout.splitlines())
    assert [_mask_dir(line) for line in listing] == _expected(ctx, excluded)
    assert docker(*run, "/inodes").stdout.strip() == "2"


def _mask_dir(line: str) -> str:
    parts = line.split("|")
    if parts[1] == "directory":
        parts[3] = parts[4] = "*"
    return "|".join(parts)


def test_secrets_from_file_and_env_stay_out_of_the_image(
        bx: Any, docker: Any, busybox_image: str, make_context: Callable[..., Path],
        unique_name: Callable[..., str], tmp_path: Path) -> None:
    file_secret, env_secret = "file-S3CRET-7b1d", "env-S3CRET-93ac"
    secret = tmp_path / "secret.txt"
    secret.write_text(file_secret)
    ctx = make_context({"Dockerfile": (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=fromfile test -s /run/secrets/fromfile && "
        "sha256sum /run/secrets/fromfile | cut -d' ' -f1 > /file.sha\n"
        "RUN --mount=type=secret,id=fromenv,target=/s/env "
        "sha256sum /s/env | cut -d' ' -f1 > /env.sha && ! test -e /run/secrets/fromfile\n"
        "RUN --mount=type=secret,id=missing,required=false test ! -s /run/secrets/missing\n")})
    tag = unique_name("bksecret")
    bx("build", "--secret", f"id=fromfile,src={secret}", "--secret", "id=fromenv,env=BK_TOKEN",
       "-t", tag, ctx, env={"BK_TOKEN": env_secret})
    run = ["run", "--rm", "--network", "none", tag, "cat"]
    assert docker(*run, "/file.sha").stdout.strip() == hashlib.sha256(
        file_secret.encode()).hexdigest()
    assert docker(*run, "/env.sha").stdout.strip() == hashlib.sha256(
        env_secret.encode()).hexdigest()
    saved = tmp_path / "image.tar"
    docker("save", "-o", saved, tag)
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member)
            if data is None:
                continue
            blob = data.read()
            for value in (file_secret, env_secret):
                assert value.encode() not in blob, member.name
    history = docker("history", "--no-trunc", tag).stdout
    inspect = docker("image", "inspect", tag).stdout
    for value in (file_secret, env_secret):
        assert value not in history and value not in inspect
    proc = bx("build", "--no-cache", "--progress=plain", ctx, check=False)
    assert proc.returncode != 0, proc.stderr  # without the secret (optional) the RUN fails


def _agent_client(tmp_path: Path) -> Path:
    """A static program that lists an ssh agent's keys (SSH2_AGENTC_REQUEST_IDENTITIES),
    since busybox has no ssh client: it prints each key's comment."""
    source = tmp_path / "agentls.c"
    source.write_text(r'''
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
static int full(int fd, unsigned char *b, size_t n) {
    while (n) { ssize_t r = read(fd, b, n); if (r <= 0) return -1; b += r; n -= r; }
    return 0;
}
static unsigned u32(unsigned char *p) { return p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
int main(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, getenv("SSH_AUTH_SOCK"), sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return 1; }
    unsigned char req[5] = {0, 0, 0, 1, 11}, hdr[4];
    if (write(fd, req, 5) != 5 || full(fd, hdr, 4)) return 2;
    unsigned n = u32(hdr);
    unsigned char *m = malloc(n);
    if (full(fd, m, n) || m[0] != 12) return 3;
    unsigned keys = u32(m + 1), off = 5;
    for (unsigned k = 0; k < keys; k++) {
        off += 4 + u32(m + off);
        unsigned len = u32(m + off);
        printf("%.*s\n", (int)len, m + off + 4);
        off += 4 + len;
    }
    return 0;
}
''')
    binary = tmp_path / "agentls"
    subprocess.run(["gcc", "-static", "-O1", "-o", str(binary), str(source)], check=True,
                   preexec_fn=die_with_test_run)
    return binary


def test_ssh_default_forwards_the_agent(bx: Any, docker: Any, busybox_image: str,
                                        make_context: Callable[..., Path],
                                        unique_name: Callable[..., str],
                                        tmp_path: Path) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=die_with_test_run)
    try:
        while not sock.exists():
            assert agent.poll() is None, "ssh-agent exited"
            time.sleep(0.05)
        key = tmp_path / "id"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                        "bk-session-test-key", "-f", str(key)], check=True,
                       preexec_fn=die_with_test_run)
        subprocess.run(["ssh-add", str(key)], env={"SSH_AUTH_SOCK": str(sock)},
                       check=True, capture_output=True, preexec_fn=die_with_test_run)
        ctx = make_context({"Dockerfile": (
            "FROM busybox\n"
            "RUN --mount=type=bind,target=/ctx --mount=type=ssh "
            "/ctx/agentls > /keys && ls -l \"$SSH_AUTH_SOCK\" > /sock\n")})
        (ctx / "agentls").write_bytes(_agent_client(tmp_path).read_bytes())
        os.chmod(ctx / "agentls", 0o755)
        tag = unique_name("bkssh")
        bx("build", "--ssh", "default", "-t", tag, ctx, env={"SSH_AUTH_SOCK": str(sock)})
        run = ["run", "--rm", "--network", "none", tag, "cat"]
        assert docker(*run, "/keys").stdout == "bk-session-test-key\n"
        assert docker(*run, "/sock").stdout.startswith("srw-------")
    finally:
        agent.terminate()
        agent.wait()


def test_throughput_of_a_200mb_context(bx: Any, busybox_image: str,
                                       make_context: Callable[..., Path]) -> None:
    """Measured, not asserted (printed with -s): the "load build context" step of a
    cold build of a 200 MB context (10 x 19 MiB-files of random data, 2000 small files)."""
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN --mount=type=bind,target=/c "
                        "du -sk /c | cut -f1 > /kb\n"})
    block = os.urandom(1 << 20)
    for d in range(10):
        (ctx / f"d{d}").mkdir()
        for f in range(19):
            (ctx / f"d{d}/f{f}").write_bytes(block)
    (ctx / "huge").write_bytes(block * 10)
    for i in range(2000):
        (ctx / f"small{i}").write_text(str(i))
    total = sum(p.stat().st_size for p in ctx.rglob("*") if p.is_file())
    for run in ("cold", "unchanged"):
        out = bx("build", "--progress=plain", ctx).stderr
        step = re.search(r"^#(\d+) \[internal\] load build context$", out, re.M)
        assert step, out
        took = re.search(rf"^#{step.group(1)} DONE ([0-9.]+)s$", out, re.M)
        assert took, out
        seconds = float(took.group(1))
        print(f"\n{run}: {total / 1e6:.0f} MB context loaded in {seconds:.2f} s"
              + (f" = {total / 1e6 / seconds:.0f} MB/s" if run == "cold" else ""))


def test_output_local_is_received_by_buildx(bx: Any, busybox_image: str,
                                            make_context: Callable[..., Path],
                                            tmp_path: Path) -> None:
    """The daemon as fsutil's sender (send_directory), buildx's fsutil as the receiver:
    files, modes, symlinks, hard links and FIFOs arrive as the build made them."""
    ctx = make_context({"Dockerfile": (
        "FROM busybox\n"
        "RUN mkdir -p /out/d && printf data > /out/d/f && chmod 640 /out/d/f && "
        "ln /out/d/f /out/hard && ln -s d/f /out/link && ln -s /etc/shadow /out/abs && "
        "mkfifo /out/fifo && dd if=/dev/zero of=/out/big bs=1M count=3 2>/dev/null && "
        "touch -d @1500000000 /out/d/f\n")})
    dest = tmp_path / "local"
    bx("build", "--output", f"type=local,dest={dest}", ctx)
    out = dest / "out"
    assert (out / "d/f").read_bytes() == b"data"
    assert (out / "d/f").stat().st_mode & 0o7777 == 0o640
    assert (out / "d/f").stat().st_mtime == 1_500_000_000
    assert (out / "hard").stat().st_ino == (out / "d/f").stat().st_ino
    assert os.readlink(out / "link") == "d/f" and os.readlink(out / "abs") == "/etc/shadow"
    assert stat.S_ISFIFO((out / "fifo").lstat().st_mode)
    assert (out / "big").read_bytes() == bytes(3 << 20)
    assert (dest / "bin/busybox").stat().st_size > 0
