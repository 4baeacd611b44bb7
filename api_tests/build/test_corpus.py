"""The Dockerfile corpus (api_tests/build/corpus/) built with the stock CLI on our daemon.

Each case is built once per module and then checked against what Docker's legacy builder
does with the same Dockerfile (its documented semantics, as Docker 20.10 on this machine
shows them; test_reference_builds.py diffs the two daemons directly): the image config,
the history with its empty_layer flags, the file tree (`docker export` of a created
container, times aside), the progress lines, exit codes and error messages, and that the
image runs. Cases the legacy builder cannot build (heredocs, `--chmod`) follow BuildKit's
documented semantics instead.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .corpus import (
    CASES,
    FAILING_STEPS,
    MALFORMED,
    WEB_FILES,
    Entry,
    Run,
    error_params,
    history_view,
    image_tree,
    runtime_config,
    saved_config,
    tree_diff,
)
from .corpus.harness import (
    STEP,
    Built,
    Corpus,
    D,
    F,
    L,
    ensure_busybox,
    layer_count,
    own_history,
    serve_web,
)

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with serve_web() as url:
        yield url


@pytest.fixture(scope="module")
def corpus(docker: Run, daemon: Any, busybox_tar: Path, web: str) -> Iterator[Corpus]:
    ensure_busybox(docker, busybox_tar)
    c = Corpus(docker, daemon.cli_env(), web, "corpus")
    yield c
    c.remove_all()


@pytest.fixture(scope="module")
def base_tree(docker: Run, busybox_tar: Path) -> dict[str, Entry]:
    ensure_busybox(docker, busybox_tar)
    return image_tree(docker, "busybox:latest")


def built(corpus: Corpus, name: str) -> Built:
    b = corpus.build(name)
    assert b.proc.returncode == CASES[name].exit_code, (
        f"docker build {name}: exit {b.proc.returncode}\n--- stdout ---\n{b.proc.stdout}"
        f"--- stderr ---\n{b.proc.stderr}")
    return b


def run_image(docker: Run, image: str, *cmd: str) -> str:
    """The output of the image run once (no network: none of the images needs one)."""
    return str(docker("run", "--rm", "--network", "none", image, *cmd).stdout)


def config_of(docker: Run, image: str) -> dict[str, Any]:
    return saved_config(docker, image)


def changes(docker: Run, base_tree: dict[str, Entry], image: str) -> dict[str, Entry | None]:
    return tree_diff(base_tree, image_tree(docker, image))


# --- every case: progress stream and result -------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_case_builds_with_the_legacy_progress_stream(corpus: Corpus, docker: Run, name: str):
    b = built(corpus, name)
    out = b.proc.stdout
    steps = b.steps
    assert steps, out
    totals = {m for _, m, _ in steps}
    assert len(totals) == 1, f"M changes within one build: {totals}"
    numbers = [n for n, _, _ in steps]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1, numbers
    for line in out.splitlines():
        assert not line.startswith("Step ") or STEP.match(line), line
    if b.ok:
        iid = docker("image", "inspect", "-f", "{{.Id}}", b.tag).stdout.strip()
        assert out.endswith(f"Successfully built {iid[7:19]}\nSuccessfully tagged {b.tag}\n"), out
        assert numbers[-1] == steps[0][1], "a successful build ends with step M/M"
    else:
        assert "Successfully built" not in out


def test_no_build_containers_are_left(corpus: Corpus, docker: Run):
    """RUN steps run in build containers that never show in `docker ps -a`."""
    before = docker("ps", "-aq", "--no-trunc").stdout.split()
    for name in ("failing-run", "metadata"):
        b = corpus.build_with(name, "--no-cache", tag=corpus.tag_for(name + "-nocache"))
        assert " ---> Running in " in b.proc.stdout
    assert docker("ps", "-aq", "--no-trunc").stdout.split() == before


# --- one test per case ------------------------------------------------------------------------

def test_multistage_builds_only_what_the_target_needs(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "multistage")
    assert "unused-stage-ran" not in b.proc.stdout      # not needed by --target final
    assert "after-target-ran" not in b.proc.stdout      # after the target
    assert run_image(docker, b.tag) == "alpha\nbeta\n"
    assert changes(docker, base_tree, b.tag) == {
        "app": D(), "app/base.txt": F(b"base\n"), "app/joined.txt": F(b"alpha\nbeta\n"),
        "app/from-base.txt": F(b"base\n")}
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": [PATH_ENV], "Cmd": ["cat", "/app/joined.txt"]}
    assert layer_count(config) == 3
    assert own_history(config) == [
        ("/bin/sh -c #(nop) COPY dir:* in /app/ ", False, "", ""),
        ("/bin/sh -c #(nop) COPY file:* in /app/from-base.txt ", False, "", ""),
        ('/bin/sh -c #(nop)  CMD ["cat" "/app/joined.txt"]', True, "", "")]


def test_multistage_intermediate_target_and_default_target(corpus: Corpus, docker: Run):
    built(corpus, "multistage")
    tag = corpus.tag_for("multistage-build")
    b = corpus.build_with("multistage", tag=tag, target="build")
    assert b.ok, b.proc.stderr
    assert " ---> Using cache" in b.proc.stdout          # the base stage, built before
    assert "unused-stage-ran" not in b.proc.stdout
    assert run_image(docker, tag, "cat", "/opt/app/joined.txt", "/src/a.txt") == \
        "alpha\nbeta\nalpha\n"
    assert "APP_HOME=/opt/app" in runtime_config(config_of(docker, tag))["Env"]
    # no --target: the last stage is built, and it fails
    b = corpus.build_with("multistage", target=None)
    assert b.proc.returncode == 7
    assert "after-target-ran" in b.proc.stdout
    assert "The command '/bin/sh -c echo after-target-ran && exit 7' returned a non-zero " \
           "code: 7" in b.proc.stderr


def test_args_scope_defaults_and_build_args(corpus: Corpus, docker: Run):
    b = built(corpus, "args")
    assert "[Warning] One or more build-args [NOT_DECLARED] were not consumed\n" in b.proc.stdout
    assert run_image(docker, b.tag) == (
        "global=global-default stage=stage-default over=from-cli none=unset "
        "proxy=http://proxy.example:3128\n"
        "tag=latest stage=gone global=gone proxy=http://proxy.example:3128\n")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": [PATH_ENV], "Cmd": ["cat", "/args.txt"]}
    # args in effect prefix a RUN's history; an undeclared proxy arg stays out of it
    assert own_history(config)[-3:] == [
        ("/bin/sh -c #(nop) COPY file:* in /args.txt ", False, "", ""),
        ('|1 TAG=latest /bin/sh -c echo "tag=$TAG stage=${STAGE_ARG:-gone} '
         'global=${GLOBAL_ONLY:-gone} proxy=${HTTP_PROXY:-none}" >> /args.txt', False, "", ""),
        ('/bin/sh -c #(nop)  CMD ["cat" "/args.txt"]', True, "", "")]


def test_args_first_stage_records_args_in_history(corpus: Corpus, docker: Run):
    tag = corpus.tag_for("args-first")
    b = corpus.build_with("args", tag=tag, target="first")
    assert b.ok, b.proc.stderr
    config = config_of(docker, tag)
    assert runtime_config(config) == {"Env": [PATH_ENV, "FROM_ARG=stage-default"],
                                      "Cmd": ["sh"], "Labels": {"version": "from-cli"}}
    history = own_history(config)
    assert [h[0] for h in history if not h[1]] == [
        "|4 GLOBAL_ONLY=global-default HTTP_PROXY=http://proxy.example:3128 "
        "OVERRIDDEN=from-cli STAGE_ARG=stage-default /bin/sh -c echo \"global=$GLOBAL_ONLY "
        "stage=$STAGE_ARG over=$OVERRIDDEN none=${NO_DEFAULT:-unset} "
        "proxy=${HTTP_PROXY:-none}\" > /args.txt"]
    assert ("/bin/sh -c #(nop)  ARG STAGE_ARG=stage-default", True, "", "") in history
    assert ("/bin/sh -c #(nop)  LABEL version=from-cli", True, "", "") in history


def _cached_steps(stdout: str) -> list[str]:
    """The instructions of the steps answered from the cache."""
    return [block.split("\n", 1)[0].split(" : ", 1)[1]
            for block in stdout.split("\nStep ")[1:] if "\n ---> Using cache\n" in block + "\n"]


def test_changed_build_arg_busts_only_the_steps_using_it(corpus: Corpus):
    built(corpus, "args")
    b = corpus.build_with("args", tag=corpus.tag_for("args-changed"), build_args=(
        ("OVERRIDDEN", f"changed-{os.getpid()}"), ("HTTP_PROXY", "http://proxy.example:3128")))
    assert b.ok, b.proc.stderr
    # ARG steps and what does not read OVERRIDDEN stay cached; the LABEL expanding it and
    # the RUN it is passed to run again, and so does everything after a miss
    assert _cached_steps(b.proc.stdout) == [
        "ARG GLOBAL_ONLY", "ARG STAGE_ARG=stage-default", "ARG OVERRIDDEN=built-in",
        "ARG NO_DEFAULT", "ARG HTTP_PROXY", "ENV FROM_ARG=${STAGE_ARG}", "ARG TAG"]


def test_undeclared_proxy_arg_does_not_bust_the_cache(corpus: Corpus, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nRUN echo {tmp_path.name}-$HTTP_PROXY\n")
    first = corpus.run("build", *corpus.extra, "--build-arg", "HTTP_PROXY=http://a:1", tmp_path)
    assert f"{tmp_path.name}-http://a:1\n" in first.stdout
    again = corpus.run("build", *corpus.extra, "--build-arg", "HTTP_PROXY=http://b:2", tmp_path)
    assert _cached_steps(again.stdout) == [f"RUN echo {tmp_path.name}-$HTTP_PROXY"]


def test_heredocs_follow_buildkit_semantics(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "heredoc")
    assert run_image(docker, b.tag) == "hello from a heredoc\n"
    assert run_image(docker, b.tag, "cat", "/out/tabs.txt", "/out/expanded.txt",
                     "/out/literal.txt", "/out/multi/A", "/out/multi/B", "/out/from-cat.txt",
                     "/out/quoted.txt", "/out/shebang.txt") == (
        "tabs-stripped\ngreeting=hello\ngreeting=${GREETING}\nfirst\nsecond\n"
        "cat-heredoc hello\nquoted $GREETING\nshebang\n")
    diff = changes(docker, base_tree, b.tag)
    assert sorted(diff) == ["out", "out/expanded.txt", "out/from-cat.txt", "out/literal.txt",
                            "out/multi", "out/multi/A", "out/multi/B", "out/quoted.txt",
                            "out/run.txt", "out/shebang.txt", "out/tabs.txt"]
    assert diff["out/expanded.txt"] == F(b"greeting=hello\n")


def test_onbuild_triggers_run_in_the_child(corpus: Corpus, docker: Run, base_tree):
    parent = built(corpus, "onbuild-parent")
    pconfig = config_of(docker, parent.tag)
    assert runtime_config(pconfig) == {
        "Env": [PATH_ENV], "Cmd": ["cat", "/app/listing.txt"], "WorkingDir": "/app",
        "OnBuild": ["COPY payload/ /app/", "RUN ls /app > /app/listing.txt",
                    "ENV TRIGGERED=yes"]}
    assert changes(docker, base_tree, parent.tag) == {"app": D()}   # triggers did not run

    child = built(corpus, "onbuild-child")
    assert "# Executing 3 build triggers\n" in child.proc.stdout
    config = config_of(docker, child.tag)
    assert runtime_config(config) == {   # triggers are not inherited by grandchildren
        "Env": [PATH_ENV, "TRIGGERED=yes"], "Cmd": ["cat", "/app/listing.txt"],
        "WorkingDir": "/app"}
    assert own_history(config)[-4:] == [
        ("/bin/sh -c #(nop) COPY dir:* in /app/ ", False, "", ""),
        ("/bin/sh -c ls /app > /app/listing.txt", False, "", ""),
        ("/bin/sh -c #(nop)  ENV TRIGGERED=yes", True, "", ""),
        ("/bin/sh -c echo child-ran > /app/child.txt", False, "", "")]
    assert run_image(docker, child.tag) == "listing.txt\none.txt\ntwo.txt\n"
    assert changes(docker, base_tree, child.tag) == {
        "app": D(), "app/one.txt": F(b"child\n"), "app/two.txt": F(b"child\n"),
        "app/listing.txt": F(b"listing.txt\none.txt\ntwo.txt\n"),
        "app/child.txt": F(b"child-ran\n")}


DOCKERIGNORE_LISTING = [
    ".", "./.dockerignore", "./Dockerfile", "./d.bak", "./deep", "./deep/er", "./deep/er/tmp",
    "./deep/er/tmp/z", "./docs", "./docs/README.md", "./docs/keep.txt", "./kept.txt", "./logs",
    "./logs/keep.log", "./secret", "./secret/public.txt", "./src", "./src/app",
    "./src/app/main.c", "./src/top-only.txt", "./xy.swp"]


def test_dockerignore_patterns(corpus: Corpus, docker: Run):
    """The CLI filters a directory context (with moby's patternmatcher): **/*.log also at
    the root, ! re-includes (also below an excluded directory), leading / and ./ anchor at
    the root, src/**/tmp at any depth below src only, [a-c] and ? as in filepath.Match;
    .dockerignore and Dockerfile are sent anyway."""
    b = built(corpus, "dockerignore")
    assert run_image(docker, b.tag).splitlines() == DOCKERIGNORE_LISTING


def test_dockerignore_applies_to_a_context_tar_on_stdin(corpus: Corpus, docker: Run,
                                                         tmp_path: Path):
    """A tar on stdin reaches the daemon unfiltered: the daemon applies .dockerignore, as
    BuildKit does (Docker 20.10's legacy builder does not), with the CLI's semantics."""
    ctx_tar = tmp_path / "ctx.tar"
    with tarfile.open(ctx_tar, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(CASES["dockerignore"].context, ".")
    tag = corpus.tag_for("dockerignore-stdin")
    corpus.tags.append(tag)
    docker("build", *corpus.extra, "-t", tag, "-", input=ctx_tar.read_bytes(), timeout=300)
    assert run_image(docker, tag).splitlines() == DOCKERIGNORE_LISTING


def test_copy_edge_cases(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "copy-edges")
    busybox = base_tree["bin/busybox"]
    a1, a2, top, deep = F(b"a1\n"), F(b"a2\n"), F(b"top\n"), F(b"sub\n")
    assert changes(docker, base_tree, b.tag) == {
        "wild": D(), "wild/a1.txt": a1, "wild/a2.txt": a2,            # *.txt, not notmatched.md
        "wildq": D(), "wildq/a1.cfg": F(b"c1\n"),                      # a?.cfg, not a10.cfg
        "copied-dir": D(), "copied-dir/top.txt": top, "copied-dir/sub": D(),
        "copied-dir/sub/deep.txt": deep,
        "copied-dir-slash": D(), "copied-dir-slash/top.txt": top, "copied-dir-slash/sub": D(),
        "copied-dir-slash/sub/deep.txt": deep,
        "newdir": D(), "newdir/a1.txt": a1, "renamed": a1,
        "multi": D(), "multi/a1.txt": a1, "multi/a2.txt": a2,
        "work": D(), "work/rel": D(), "work/rel/a1.txt": a1, "work/a2.txt": a2,
        "owned": D(owner=(1000, 1000)), "owned/ids.txt": F(b"a1\n", owner=(1000, 1000)),
        "owned/dir": D(owner=(65534, 1)), "owned/dir/top.txt": F(b"top\n", owner=(65534, 1)),
        "owned/dir/sub": D(owner=(65534, 1)),
        "owned/dir/sub/deep.txt": F(b"sub\n", owner=(65534, 1)),
        "from-image": D(), "from-image/busybox": busybox,
        "exec.sh": F(b"#!/bin/sh\necho exec-ok\n", 0o755)}
    assert run_image(docker, b.tag) == "exec-ok\n"
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": [PATH_ENV], "Cmd": ["/exec.sh"],
                                      "WorkingDir": "/work"}
    # one layer per COPY, and one for WORKDIR /work, which creates the directory (a WORKDIR
    # that exists already adds none: see test_real_world_app); CMD adds none
    assert layer_count(config) == 1 + 13 + 1
    assert ("/bin/sh -c #(nop) WORKDIR /work", False, "", "") in own_history(config)


def test_copy_chmod_follows_buildkit_semantics(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "copy-chmod")
    data = b"data\n"
    assert changes(docker, base_tree, b.tag) == {
        "modes": D(), "modes/data.txt": F(data, 0o640), "modes/exec.txt": F(data, 0o755),
        "modes/added.txt": F(data, 0o600), "modes/both.txt": F(data, 0o700, (1000, 1000))}


def test_add_unpacks_local_archives_and_downloads_urls(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "add-archives")
    pkg = {"pkg": D(), "pkg/readme.txt": F(b"inside the tar\n"), "pkg/bin": D(0o750),
           "pkg/bin/tool": F(b"#!/bin/sh\necho tool\n", 0o755),
           "pkg/owned.txt": F(b"owned\n", owner=(1000, 1000)), "pkg/link": L("readme.txt")}
    expected: dict[str, Entry | None] = {"extracted": D(), "chowned": D()}
    for sub in ("extracted/plain", "extracted/gz", "extracted/xz", "chowned"):
        expected[sub] = D()
        expected.update({f"{sub}/{k}": v for k, v in pkg.items()})
    remote = F(WEB_FILES["remote.txt"], 0o600)   # downloads get mode 0600
    expected.update({
        "notatar": D(), "notatar/fake.tar": F(b"not really a tar\n"),
        "added": D(), "added/file.txt": F(b"plain file\n"),
        "remote": D(), "remote/remote.txt": remote, "remote-named.txt": remote})
    assert changes(docker, base_tree, b.tag) == expected


def test_run_output_is_streamed_live(corpus: Corpus, tmp_path: Path):
    """The RUN step waits until the test has read its first line: buffered output would
    never arrive, the step would give up after a minute and the build fail."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = tmp_path.name
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nRUN echo ready-{token} && for i in $(seq 300); do "
        f"if nc 127.0.0.1 {port} </dev/null 2>/dev/null; then echo seen-{token}; exit 0; fi; "
        f"sleep 0.2; "
        f"done; exit 1\n")
    argv = ["build", "--no-cache", "--network", "host", str(tmp_path)]
    proc = corpus.popen(*argv)
    assert proc.stdout is not None
    lines = []
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for line in proc.stdout:
            lines.append(line)
            if f"ready-{token}\n" in line:   # after a colour reset if stderr came first
                server.bind(("127.0.0.1", port))
                server.listen(1)
                conn, _ = server.accept()
                conn.close()
                break
        lines += proc.stdout.readlines()
    assert proc.wait(timeout=120) == 0, "".join(lines)
    assert any(f"seen-{token}\n" in line for line in lines)


def test_concurrent_builds_of_one_context(corpus: Corpus, docker: Run, tmp_path: Path):
    """Three builds of the same new context at once: all succeed with the same files."""
    ctx = tmp_path / "ctx"
    shutil.copytree(CASES["multistage"].context, ctx)
    (ctx / "src" / "a.txt").write_text(f"{tmp_path}\n")   # content no earlier build saw
    tags = [corpus.tag_for(f"concurrent-{i}") for i in range(3)]
    corpus.tags += tags
    procs = [corpus.popen("build", *corpus.extra, "--target", "final", "-t", tag, str(ctx))
             for tag in tags]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    trees = [image_tree(docker, tag) for tag in tags]
    assert trees[0] == trees[1] == trees[2]
    assert run_image(docker, tags[0]) == f"{tmp_path}\nbeta\n"


def _processes_with_cmdline(cmdline: bytes) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == cmdline:
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_client_disconnect_stops_the_build(corpus: Corpus, docker: Run, tmp_path: Path):
    """The CLI killed during a RUN: the step's processes go, no container is left."""
    token = f"disconnect-{os.getpid()}-{tmp_path.name}"
    seconds = 3000 + os.getpid() % 5000      # `sleep <seconds>`: a process no one else runs
    sleeper = f"sleep\0{seconds}\0".encode()
    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nRUN echo {token} && sleep {seconds}\n")
    before = docker("ps", "-aq", "--no-trunc").stdout.split()
    proc = corpus.popen("build", *corpus.extra, "--no-cache", str(tmp_path))
    assert proc.stdout is not None
    for line in proc.stdout:
        if f"{token}\n" in line and "RUN" not in line:
            break
    deadline = time.monotonic() + 60
    while not _processes_with_cmdline(sleeper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with_cmdline(sleeper), "the RUN step is not running"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while _processes_with_cmdline(sleeper) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with_cmdline(sleeper), "the RUN step outlived its client"
    assert docker("ps", "-aq", "--no-trunc").stdout.split() == before


def test_run_step_hostname_and_hosts(corpus: Corpus, tmp_path: Path):
    """What a RUN step sees of its host name: on the host's network the host's name and
    /etc/hosts; on none, the build container's short ID (the one "Running in" names)."""
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN echo \"env=$HOSTNAME\"; echo \"name=$(hostname)\"; "
        "echo \"file=$(cat /etc/hostname)\"; cat /etc/hosts\n")
    host = corpus.run("build", "--no-cache", "--network", "host", tmp_path).stdout
    name = socket.gethostname()
    assert f"\nenv={name}\nname={name}\nfile={name}\n" in host
    with open("/etc/hosts") as f:
        assert f"file={name}\n{f.read()}Removing intermediate container " in host
    none = corpus.run("build", "--no-cache", "--network", "none", tmp_path).stdout
    cid = re.search(r" ---> Running in ([0-9a-f]{12})\n", none)
    assert cid, none
    assert f"\nenv={cid[1]}\nname={cid[1]}\nfile={cid[1]}\n127.0.0.1\tlocalhost\n" in none


def test_env_syntaxes_and_expansion(corpus: Corpus, docker: Run):
    b = built(corpus, "env")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "Env": ["PATH=/custom/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "OLD_SYNTAX=value with  spaces", "A=changed", "B=b c", "C=c d", "D=a-x",
                "E=b c", "F=fallback", "G=alt", "H=", "I=$A", "J=$A", "K=a", "L=a"],
        "Cmd": ["sh"], "WorkingDir": "/changed", "Labels": {"from.env": "changed"}}
    assert [h[0] for h in own_history(config)[:3]] == [
        "/bin/sh -c #(nop)  ENV OLD_SYNTAX=value with  spaces",
        "/bin/sh -c #(nop)  ENV A=a B=b c C=c d",
        "/bin/sh -c #(nop)  ENV D=a-x E=b c F=fallback G=alt H= I=$A J=$A K=a"]
    assert run_image(docker, b.tag, "cat", "/env.txt") == (
        "A=changed\nB=b c\nC=c d\nD=a-x\nE=b c\nF=fallback\nG=alt\nH=\nI=$A\nJ=$A\nK=a\nL=a\n"
        "OLD_SYNTAX=value with  spaces\n")


def test_user_and_workdir(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "user-workdir")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"User": "nobody", "Env": [PATH_ENV], "Cmd": ["id"],
                                      "WorkingDir": "/owned/created-as-user"}
    # each WORKDIR here creates its directory: a layer each, as RUN steps (USER and CMD none)
    assert [h[:2] for h in own_history(config)] == [
        ("/bin/sh -c #(nop) WORKDIR /a/b/c", False),
        ("/bin/sh -c #(nop) WORKDIR /a/b/c/d", False),
        ("/bin/sh -c pwd > /pwd.txt", False),
        ("/bin/sh -c #(nop) WORKDIR /owned", False),
        ("/bin/sh -c chown 1000:1000 /owned", False),
        ("/bin/sh -c #(nop)  USER user", True),
        ("/bin/sh -c id -u > /owned/uid.txt && touch /owned/by-user", False),
        ("/bin/sh -c #(nop)  USER 1000:1000", True),
        ("/bin/sh -c #(nop) WORKDIR /owned/created-as-user", False),
        ("/bin/sh -c #(nop)  USER nobody", True),
        ('/bin/sh -c #(nop)  CMD ["id"]', True)]
    assert layer_count(config) == 8
    assert changes(docker, base_tree, b.tag) == {
        "a": D(), "a/b": D(), "a/b/c": D(), "a/b/c/d": D(), "pwd.txt": F(b"/a/b/c/d\n"),
        "owned": D(owner=(1000, 1000)), "owned/uid.txt": F(b"1000\n", owner=(1000, 1000)),
        "owned/by-user": F(b"", owner=(1000, 1000)),
        "owned/created-as-user": D()}   # the legacy builder creates WORKDIRs as root
    assert run_image(docker, b.tag) == \
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"


def test_metadata_instructions(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "metadata")
    config = config_of(docker, b.tag)
    assert config.get("author") == "Jane Doe <jane@example.com>"
    assert runtime_config(config) == {
        "User": "nobody",
        "ExposedPorts": {"443/tcp": {}, "80/tcp": {}, "8080/udp": {}, "9000/tcp": {},
                         "9001/tcp": {}},
        "Env": [PATH_ENV], "Cmd": ["metadata"],
        "Healthcheck": {"Test": ["CMD-SHELL", "cat /etc/passwd || exit 1"],
                        "Interval": 5_000_000_000, "Timeout": 2_000_000_000,
                        "StartPeriod": 1_000_000_000, "Retries": 3},
        "Volumes": {"/cache": {}, "/data": {}, "/logs": {}},
        "Entrypoint": ["/bin/echo"],
        "Labels": {"multi": "line", "org.example.one": "1", "org.example.two": "two words",
                   "other": "value", "three": "3"},
        "StopSignal": "SIGUSR1", "Shell": ["/bin/sh", "-ec"]}
    jane = "Jane Doe <jane@example.com>"
    assert own_history(config) == [(c, e, jane, "") for c, e in [
        ("/bin/sh -c #(nop)  MAINTAINER Jane Doe <jane@example.com>", True),
        ("/bin/sh -c #(nop)  LABEL org.example.one=1 org.example.two=two words three=3", True),
        ("/bin/sh -c #(nop)  LABEL multi=line other=value", True),
        ("/bin/sh -c #(nop)  EXPOSE 80 8080/udp 9000-9001", True),
        ("/bin/sh -c #(nop)  EXPOSE 443/tcp", True),
        ("/bin/sh -c #(nop)  VOLUME [/data]", True),
        ("/bin/sh -c #(nop)  VOLUME [/logs /cache]", True),
        ("/bin/sh -c echo lost > /data/lost.txt && echo kept > /kept.txt", False),
        ("/bin/sh -c #(nop)  STOPSIGNAL SIGUSR1", True),
        ("/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"cat /etc/passwd || exit 1\"] "
         "\"5s\" \"2s\" \"1s\" '\\x03'}", True),
        ("/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]", True),
        ('/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/echo"]', True),
        ('/bin/sh -ec #(nop)  CMD ["metadata"]', True),
        ("/bin/sh -ec #(nop)  USER nobody", True)]]
    diff = changes(docker, base_tree, b.tag)
    assert diff["kept.txt"] == F(b"kept\n")
    assert "data/lost.txt" not in diff          # writes under a declared VOLUME are discarded
    assert run_image(docker, b.tag) == "metadata\n"


def test_from_scratch(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "scratch")
    assert "Step 1/6 : FROM scratch\n" in b.proc.stdout
    assert image_tree(docker, b.tag) == {
        "bin": D(), "bin/busybox": base_tree["bin/busybox"],
        "hello.txt": F(b"hello from scratch\n")}
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/busybox"],
                                      "Cmd": ["cat", "/hello.txt"]}
    assert layer_count(config) == 2
    assert history_view(config)[0] == \
        ("/bin/sh -c #(nop) COPY file:* in /bin/busybox ", False, "", "")
    assert run_image(docker, b.tag) == "hello from scratch\n"


def test_failing_run_reports_the_command_and_exit_code(corpus: Corpus, docker: Run):
    before = docker("ps", "-aq", "--no-trunc").stdout.split()
    b = corpus.build_with("failing-run", "--no-cache", tag=corpus.tag_for("failing-run-again"))
    assert b.proc.returncode == 4
    assert "Step 3/4 : RUN echo \"about to fail\" && exit 4\n ---> Running in " in b.proc.stdout
    assert "about to fail\n" in b.proc.stdout
    assert "never-runs" not in b.proc.stdout and "Step 4/4" not in b.proc.stdout
    assert b.proc.stderr.endswith(
        "The command '/bin/sh -c echo \"about to fail\" && exit 4' returned a non-zero "
        "code: 4\n")
    assert docker("image", "inspect", b.tag, check=False).returncode != 0
    assert docker("ps", "-aq", "--no-trunc").stdout.split() == before


def test_escape_directive(corpus: Corpus, docker: Run):
    b = built(corpus, "escape")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "Env": [PATH_ENV, "WIN=C:\\Windows\\System32", "LIT=$HOME"], "Cmd": ["sh"],
        "Labels": {"path": "C:\\temp"}}
    assert "Step 2/5 : ENV WIN=C:\\Windows\\System32     LIT=`$HOME\n" in b.proc.stdout
    assert run_image(docker, b.tag, "cat", "/win.txt", "/dir/file.txt") == \
        "C:\\Program Files\\app\nC:\\Windows\\System32\n$HOME\nin-dir\n"


def test_real_world_app(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "app")
    assert run_image(docker, b.tag) == \
        "app 1.2.3 serving (env=production, deps=libalpha libbeta )\n"
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "User": "appuser", "ExposedPorts": {"8080/tcp": {}},
        "Env": ["PATH=/opt/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "APP_ENV=production"],
        "Cmd": ["--serve"],
        "Healthcheck": {"Test": ["CMD-SHELL", "app --health || exit 1"],
                        "Interval": 30_000_000_000},
        "WorkingDir": "/opt/app", "Entrypoint": ["app"],
        "Labels": {"org.opencontainers.image.title": "corpus app",
                   "org.opencontainers.image.version": "1.2.3"}}
    diff = changes(docker, base_tree, b.tag)
    assert diff["opt/app/bin/app"].mode == 0o755 and diff["opt/app/bin/app"].uid == 10001
    assert diff["opt/app/deps/libalpha"] == F(b"libalpha\n")
    assert sorted(k for k in diff if not k.startswith("opt/")) == ["etc/group", "etc/passwd",
                                                                   "opt"]
    history = own_history(config)
    assert ("/bin/sh -c #(nop) WORKDIR /opt/app", True, "", "") in history   # existed already
    assert layer_count(config) == 4


def test_unchanged_rebuild_is_fully_cached(corpus: Corpus, docker: Run):
    first = built(corpus, "app")
    iid = docker("image", "inspect", "-f", "{{.Id}}", first.tag).stdout.strip()
    again = corpus.build_with("app", tag=corpus.tag_for("app-again"))
    assert again.ok, again.proc.stderr
    assert docker("image", "inspect", "-f", "{{.Id}}", again.tag).stdout.strip() == iid
    assert " ---> Running in" not in again.proc.stdout
    assert "self-test ok" not in again.proc.stdout
    # every step after a FROM or a meta ARG is answered from the cache
    blocks = again.proc.stdout.split("\nStep ")[1:]
    for block in blocks:
        head = block.split("\n", 1)[0]
        if " : FROM " in head or head.startswith("1/"):
            continue
        assert "\n ---> Using cache\n" in "\n" + block.split("\n", 1)[1], block


def test_cache_survives_a_daemon_restart(corpus: Corpus, docker: Run, daemon: Any):
    first = built(corpus, "app")
    iid = docker("image", "inspect", "-f", "{{.Id}}", first.tag).stdout.strip()
    daemon.restart()
    again = corpus.build_with("app", tag=corpus.tag_for("app-restarted"))
    assert again.ok, again.proc.stderr
    assert " ---> Running in" not in again.proc.stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", again.tag).stdout.strip() == iid


def test_changing_one_file_reruns_from_the_first_step_reading_it(
        corpus: Corpus, docker: Run, tmp_path: Path):
    ctx = tmp_path / "app"
    shutil.copytree(CASES["app"].context, ctx)
    built(corpus, "app")
    b1 = corpus.run("build", *corpus.extra, "-t", corpus.tag_for("app-edit"), ctx, check=False)
    corpus.tags.append(corpus.tag_for("app-edit"))
    assert b1.returncode == 0, b1.stderr
    assert " ---> Running in" not in b1.stdout      # a copy of the same context: all cached
    main = ctx / "src" / "main.sh"
    main.write_text(main.read_text().replace("serving", "serving!"))
    b2 = corpus.run("build", *corpus.extra, "-t", corpus.tag_for("app-edit"), ctx, check=False)
    assert b2.returncode == 0, b2.stderr
    steps = b2.stdout.split("\nStep ")
    step_of = {s.split(" : ", 1)[1].split("\n", 1)[0]: s for s in steps[1:]}
    assert "Using cache" in step_of["COPY package.manifest ./"]
    assert "Using cache" not in step_of["COPY src/ ./src/"]
    assert " ---> Running in " in step_of["RUN sh build.sh \"$VERSION\" /dist"]
    assert run_image(docker, corpus.tag_for("app-edit")).startswith("app 1.2.3 serving! ")


def test_identical_copy_steps_give_identical_layers(corpus: Corpus, docker: Run):
    """Layer tars are normalised: the same COPY and WORKDIR steps on the same parent give
    the same diff IDs, build after build (Docker 20.10 stamps the directories it creates
    with the build time, so its digests differ; RUN layers keep their real times)."""
    layers = []
    for i in range(2):
        b = corpus.build_with("copy-edges", "--no-cache", tag=corpus.tag_for(f"determinism-{i}"))
        assert b.ok, b.proc.stderr
        layers.append(config_of(docker, b.tag)["rootfs"]["diff_ids"])
    assert layers[0] == layers[1]


def test_continuations_comments_and_lowercase(corpus: Corpus, docker: Run):
    b = built(corpus, "continuations")
    assert [s[2] for s in b.steps] == [
        "from busybox", "run echo one     two     three > /cont.txt",
        "Run echo trailing-space-after-escape     ok >> /cont.txt",
        "LABEL a=1       b=2", "Cmd echo     done"]
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": [PATH_ENV],
                                      "Cmd": ["/bin/sh", "-c", "echo     done"],
                                      "Labels": {"a": "1", "b": "2"}}
    assert run_image(docker, b.tag, "cat", "/cont.txt") == \
        "one two three\ntrailing-space-after-escape ok\n"


def test_json_and_shell_forms(corpus: Corpus, docker: Run):
    b = built(corpus, "json-forms")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {"Env": [PATH_ENV, "J=value"],
                                      "Entrypoint": ["/bin/sh", "-c", "[not, json]"],
                                      "Cmd": ["$J", "two words"]}
    assert [h[0] for h in own_history(config)] == [
        "/bin/sh -c #(nop)  ENV J=value", "sh -c echo json-run > /json.txt",
        '/bin/sh -c echo "$J" >> /json.txt',
        '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh" "-c" "[not, json]"]',
        '/bin/sh -c #(nop)  CMD ["$J" "two words"]']
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", b.tag,
                 "/json.txt").stdout
    assert out == "json-run\nvalue\n"


def test_stage_inherits_config_and_entrypoint_resets_cmd(corpus: Corpus, docker: Run):
    b = built(corpus, "stage-inherit")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "ExposedPorts": {"1234/tcp": {}}, "Env": [PATH_ENV, "FROM_BASE=1"],
        "Entrypoint": ["/bin/echo"], "WorkingDir": "/base", "Labels": {"stage": "derived"}}
    assert run_image(docker, b.tag, "from", "derived") == "from derived\n"
    assert run_image(docker, b.tag, "cat") == "cat\n"
    out = docker("run", "--rm", "--network", "none", "--entrypoint", "cat", b.tag,
                 "/copied-by-index").stdout
    assert out.startswith("root:")


def test_misc_edges(corpus: Corpus, docker: Run, base_tree):
    b = built(corpus, "misc-edges")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "ExposedPorts": {"1000/udp": {}},
        "Env": [PATH_ENV, "X=a=b", 'Y=quote"inside', "Z=1-x"],
        "Cmd": ["/bin/sh", "-ec", "echo shell-form"],     # shell form runs in SHELL
        "WorkingDir": "/relative", "Labels": {"empty": "", "with space": 'c"d'},
        "StopSignal": "9", "Healthcheck": {"Test": ["NONE"]}, "Shell": ["/bin/sh", "-ec"]}
    assert [h[0] for h in own_history(config)][:5] == [
        "/bin/sh -c #(nop)  ARG A=1", "/bin/sh -c #(nop)  ARG B=1-x",
        '/bin/sh -c #(nop)  ENV X=a=b Y=quote"inside Z=1-x',
        '/bin/sh -c #(nop)  LABEL with space=c"d empty=',
        "|2 A=1 B=1-x /bin/sh -c mkdir /existing && rm /bin/ls && rm -rf /home && mkdir /home "
        "&& echo new > /home/fresh"]
    a, spaced, utf = F(b"a\n"), F(b"spaced\n"), F(b"utf\n")
    assert changes(docker, base_tree, b.tag) == {
        "bin/ls": None, "home/user": None, "home/fresh": F(b"new\n"),
        "existing": D(), "existing/a.txt": a,
        "ctx": D(), "ctx/a.txt": a, "ctx/d": D(), "ctx/d/in.txt": F(b"inside\n"),
        "ctx/dlink": L("d"), "ctx/link.txt": L("a.txt"),   # no Dockerfile, no .dockerignore
        "ctx/with space.txt": spaced, "ctx/ünïcödé.txt": utf,
        "viasymlink.txt": a, "relative": D(),
        "spaced dir": D(), "spaced dir/with space.txt": spaced, "spaced dir/ünïcödé.txt": utf}


def test_variable_expansion_in_instructions_and_flags(corpus: Corpus, docker: Run,
                                                      base_tree):
    b = built(corpus, "expansion")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "User": "nobody", "ExposedPorts": {"8080/tcp": {}},
        "Env": [PATH_ENV, "DIR=/data", "USERNAME=nobody", "SIG=SIGTERM", "PORT=8080",
                "MULTI=one two"],
        "Cmd": ["echo", "${DIR}"],                 # exec form: never expanded
        "Volumes": {"/data/vol": {}}, "WorkingDir": "/data/work",
        "Labels": {"alt": "set", "braces": "/data", "default": "fallback", "dir": "/data",
                   "escaped": "$DIR"},
        "StopSignal": "SIGTERM"}
    assert [h[0] for h in own_history(config)][-9:-5] == [
        "/bin/sh -c #(nop) COPY file:* in /data/made ",
        "/bin/sh -c #(nop) COPY --chown=1000:1000file:* in /data/ ",
        "/bin/sh -c #(nop)  VOLUME [/data/vol]", "/bin/sh -c #(nop)  EXPOSE 8080/tcp"]
    assert changes(docker, base_tree, b.tag) == {
        "data": D(), "data/made": F(b"from-source\n"),
        "data/owned.txt": F(b"owned\n", owner=(1000, 1000)),
        "data/work": D()}          # a VOLUME alone makes no directory; WORKDIR does


def test_copy_cache_keys_content_and_mode_not_mtime(corpus: Corpus, docker: Run,
                                                    tmp_path: Path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY f.txt /f.txt\nRUN cat /f.txt\n")
    data = tmp_path / "f.txt"
    data.write_text(f"{tmp_path}\n")   # content no other test has
    tag = corpus.tag_for("cache-keys")
    corpus.tags.append(tag)

    def cached_steps() -> int:
        r = corpus.run("build", *corpus.extra, "-t", tag, tmp_path)
        return int(r.stdout.count(" ---> Using cache\n"))

    assert cached_steps() == 0
    os.utime(data, (1e9, 1e9))
    assert cached_steps() == 2            # mtime alone: still cached
    data.chmod(0o600)
    assert cached_steps() == 0            # the mode is part of the key
    data.unlink()
    data.write_text(f"{tmp_path}\n")
    data.chmod(0o600)
    assert cached_steps() == 2            # same content and metadata: cached again
    data.write_text(f"{tmp_path} changed\n")
    assert cached_steps() == 0


def test_exec_form_run_failure(corpus: Corpus, tmp_path: Path):
    (tmp_path / "Dockerfile").write_text('FROM busybox\nRUN ["sh", "-c", "exit 3"]\n')
    r = corpus.run("build", *corpus.extra, tmp_path, check=False)
    assert r.returncode == 3
    assert r.stderr.rstrip("\n").endswith(
        "The command 'sh -c exit 3' returned a non-zero code: 3"), r.stderr


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dockerfile,message", error_params(MALFORMED))
def test_malformed_dockerfile(corpus: Corpus, tmp_path: Path, dockerfile: str, message: str):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "present.txt").write_text("present\n")
    r = corpus.run("build", *corpus.extra, tmp_path, check=False)
    assert r.returncode == 1, r.stdout
    assert "Step " not in r.stdout
    assert r.stderr.rstrip("\n").endswith(f"Error response from daemon: {message}"), r.stderr


@pytest.mark.parametrize("dockerfile,message", error_params(FAILING_STEPS))
def test_failing_step(corpus: Corpus, tmp_path: Path, dockerfile: str, message: str):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    (tmp_path / "present.txt").write_text("present\n")
    r = corpus.run("build", *corpus.extra, tmp_path, check=False)
    assert r.returncode == 1, r.stdout
    lines = dockerfile.strip().splitlines()
    assert f"Step {len(lines)}/{len(lines)} : {lines[-1]}\n" in r.stdout
    assert r.stderr.rstrip("\n").endswith(message), r.stderr


def test_failed_builds_leave_no_containers(corpus: Corpus, docker: Run, tmp_path: Path):
    """As BuildKit: the legacy builder keeps a failed RUN's container (without --force-rm)."""
    (tmp_path / "present.txt").write_text("present\n")
    before = docker("ps", "-aq", "--no-trunc").stdout.split()
    for dockerfile, _ in FAILING_STEPS:
        (tmp_path / "Dockerfile").write_text(dockerfile)
        assert corpus.run("build", *corpus.extra, tmp_path, check=False).returncode == 1
    assert docker("ps", "-aq", "--no-trunc").stdout.split() == before


# --- the ways the CLI sends a context ---------------------------------------------------------

def test_dockerfile_on_stdin_without_context(corpus: Corpus, docker: Run):
    """`docker build - < Dockerfile`: the body is a bare Dockerfile, not a tar."""
    tag = corpus.tag_for("stdin-env")
    corpus.tags.append(tag)
    dockerfile = (CASES["env"].context / "Dockerfile").read_bytes()
    r = docker("build", *corpus.extra, "-t", tag, "-", input=dockerfile, timeout=300)
    assert "Successfully tagged " + tag in r.stdout
    ref = built(corpus, "env")
    assert runtime_config(config_of(docker, tag)) == runtime_config(config_of(docker, ref.tag))


def test_dockerfile_from_stdin_with_a_context_dir(corpus: Corpus, docker: Run, base_tree):
    tag = corpus.tag_for("stdin-f")
    corpus.tags.append(tag)
    dockerfile = b"FROM busybox\nCOPY hello.txt /from-stdin-dockerfile.txt\n"
    docker("build", *corpus.extra, "-t", tag, "-f", "-", CASES["scratch"].context,
           input=dockerfile, timeout=300)
    assert changes(docker, base_tree, tag) == {
        "from-stdin-dockerfile.txt": F(b"hello from scratch\n")}


def test_context_tar_on_stdin_and_dockerfile_path(corpus: Corpus, docker: Run, tmp_path: Path):
    ref = built(corpus, "copy-edges")
    ctx_tar = tmp_path / "ctx.tar"
    root = CASES["copy-edges"].context
    # GNU format: the CLI does not recognise a tar opening with a PAX header as an archive
    with tarfile.open(ctx_tar, "w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            arcname = str(path.relative_to(root))   # the Dockerfile under another name
            tar.add(path, "build/Containerfile" if arcname == "Dockerfile" else arcname,
                    recursive=False)
    tag = corpus.tag_for("stdin-tar")
    corpus.tags.append(tag)
    docker("build", *corpus.extra, "-t", tag, "-f", "build/Containerfile", "-",
           input=ctx_tar.read_bytes(), timeout=300)
    assert image_tree(docker, tag) == image_tree(docker, ref.tag)
    assert runtime_config(config_of(docker, tag)) == runtime_config(config_of(docker, ref.tag))


def test_quiet_iidfile_labels_and_several_tags(corpus: Corpus, docker: Run, tmp_path: Path):
    t1, t2 = corpus.tag_for("flags-one"), corpus.tag_for("flags-two")
    corpus.tags += [t1, t2]
    iidfile = tmp_path / "iid"
    r = docker("build", *corpus.extra, "-q", "--iidfile", iidfile, "--label", "x=y",
               "--label", "from.env=cli", "-t", t1, "-t", t2, "--compress",
               "--platform", "linux/amd64", "--rm=false", "--force-rm",
               CASES["env"].context, timeout=300)
    iid = docker("image", "inspect", "-f", "{{.Id}}", t1).stdout.strip()
    assert r.stdout == iid + "\n"
    assert iidfile.read_text() == iid + "\n"   # with -q the CLI writes what it printed
    assert docker("image", "inspect", "-f", "{{.Id}}", t2).stdout.strip() == iid
    config = config_of(docker, t1)
    assert runtime_config(config)["Labels"] == {"from.env": "cli", "x": "y"}
    # the CLI's labels are applied after the last step, as LABEL entries (one per label in
    # Docker 20.10, in no set order) that add no layer
    history = own_history(config)
    last_run = max(i for i, h in enumerate(history) if h[0].startswith("/bin/sh -c env "))
    added = history[last_run + 1:]
    assert added and all(e and c.startswith("/bin/sh -c #(nop)  LABEL ") for c, e, _, _ in added)
    words = sorted(w for c, _, _, _ in added for w in c.split("LABEL ", 1)[1].split())
    assert words == ["from.env=cli", "x=y"]


def test_docker_py_builds_and_gets_the_image(dockerpy: Any, corpus: Corpus, docker: Run):
    tag = corpus.tag_for("dockerpy")
    corpus.tags.append(tag)
    image, logs = dockerpy.images.build(path=str(CASES["stage-inherit"].context), tag=tag,
                                        network_mode="host")
    assert image.id == docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    assert tag in image.tags
    assert any("Successfully built" in chunk.get("stream", "") for chunk in logs)


def test_build_output_is_valid_json_stream(daemon, corpus: Corpus):
    """Each message of the raw stream is one JSON object (what docker-py iterates over)."""
    import docker as docker_sdk

    client = docker_sdk.APIClient(base_url=daemon.host)
    try:
        messages = list(client.build(path=str(CASES["json-forms"].context), decode=True,
                                     rm=True, network_mode="host"))
    finally:
        client.close()
    assert all(isinstance(m, dict) for m in messages)
    streams = "".join(m.get("stream", "") for m in messages)
    assert "Step 1/6 : FROM busybox\n" in streams
    aux = [m["aux"]["ID"] for m in messages if "aux" in m]
    assert len(aux) == 1 and aux[0].startswith("sha256:")
    assert streams.endswith(f"Successfully built {aux[0][7:19]}\n")



def test_parser_edges(corpus: Corpus, docker: Run):
    b = built(corpus, "parser-edges")
    out = b.proc.stdout
    assert [s[2] for s in b.steps] == [
        "FROM busybox", "RUN\techo indented > /i.txt", "ENV A=1     B=2", "CMD ['single']",
        "LABEL x=y   z=w", "RUN echo last"]
    assert "[WARNING]: Empty continuation line found in:\n    LABEL x=y   z=w\n" in out
    assert out.index("[WARNING]") < out.index("Step 1/6")
    config = config_of(docker, b.tag)
    assert runtime_config(config) == {
        "Env": [PATH_ENV, "A=1", "B=2"], "Cmd": ["/bin/sh", "-c", "['single']"],  # not JSON
        "Labels": {"x": "y", "z": "w"}}
    assert run_image(docker, b.tag, "cat", "/i.txt") == "indented\n"


def test_independent_stages_run_concurrently(corpus: Corpus, docker: Run, tmp_path: Path):
    """One stage listens on a port until the other connects to it: built one after the
    other, the listener would give up after a minute and the build fail (BuildKit runs
    independent stages at once; Docker 20.10's legacy builder does not)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS listener\n"
        # in a loop, so nc is not the container's init (which ignores timeout's SIGTERM)
        # and a stray connection from elsewhere on the host is not taken for the talker
        f"RUN for i in 1 2 3; do timeout 60 nc -l -p {port} > /received; "
        f"grep -q {tmp_path.name} /received && exit 0; done; exit 1\n"
        "FROM busybox AS talker\n"
        f"RUN for i in $(seq 300); do if echo {tmp_path.name} | nc 127.0.0.1 {port} "
        "2>/dev/null; then exit 0; fi; sleep 0.2; done; exit 1\n"
        "FROM busybox\n"
        "COPY --from=listener /received /received\n"
        "COPY --from=talker /bin/busybox /talker-done\n")
    tag = corpus.tag_for("concurrent-stages")
    corpus.tags.append(tag)
    corpus.run("build", "--network", "host", "-t", tag, tmp_path, timeout=300)
    assert run_image(docker, tag, "cat", "/received") == f"{tmp_path.name}\n"
