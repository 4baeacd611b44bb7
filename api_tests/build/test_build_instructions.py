"""Each Dockerfile instruction through `docker build`: the image config and history it
writes (compared with what dockerd 20.10's legacy builder writes for the same lines),
the files it leaves, and the progress lines the CLI prints."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _history(doc: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(h.get("created_by", ""), bool(h.get("empty_layer"))) for h in doc["history"][1:]]


def test_metadata_instructions_config_and_history(make_context: Callable[..., Any],
                                                  build: Any, image_config: Any,
                                                  unique_name: Any) -> None:
    tag = unique_name("meta")
    ctx = make_context({"Dockerfile": """FROM busybox
ENV A=b C="d e"
ENV F g
LABEL l=1 "x y"=z
EXPOSE 80 53/udp
VOLUME /data
HEALTHCHECK --interval=5s --retries=3 CMD true
STOPSIGNAL SIGTERM
USER 1:2
WORKDIR /srv
MAINTAINER me
ONBUILD RUN echo trig
SHELL ["/bin/sh", "-xc"]
ENTRYPOINT echo x
CMD ["a", "b"]
"""})
    result = build(ctx, "-t", tag)
    assert "Successfully tagged " + tag + ":latest" in result.stdout
    doc = image_config(tag)
    cfg = doc["config"]
    assert cfg["Env"] == [PATH, "A=b", "C=d e", "F=g"]
    assert cfg["Labels"] == {"l": "1", "x y": "z"}
    assert cfg["ExposedPorts"] == {"53/udp": {}, "80/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert cfg["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000,
                                  "Retries": 3}
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["User"] == "1:2"
    assert cfg["WorkingDir"] == "/srv"
    assert cfg["OnBuild"] == ["RUN echo trig"]
    assert cfg["Shell"] == ["/bin/sh", "-xc"]
    assert cfg["Entrypoint"] == ["/bin/sh", "-xc", "echo x"]
    assert cfg["Cmd"] == ["a", "b"]
    assert doc["author"] == "me"
    history = _history(doc)
    # dockerd 20.10 wrote exactly these lines for the same Dockerfile
    assert history[0] == ('/bin/sh -c #(nop)  ENV A=b C=d e', True)
    assert history[2] == ('/bin/sh -c #(nop)  LABEL l=1 x y=z', True)
    assert history[3] == ('/bin/sh -c #(nop)  EXPOSE 53/udp 80', True)
    assert history[4] == ('/bin/sh -c #(nop)  VOLUME [/data]', True)
    assert history[5] == ('/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" '
                          '"0s" \'\\x03\'}', True)
    assert history[8] == ('/bin/sh -c #(nop) WORKDIR /srv', False)  # created the directory
    assert history[11] == ('/bin/sh -xc #(nop)  SHELL [/bin/sh -xc]', True)
    assert history[12] == ('/bin/sh -xc #(nop)  ENTRYPOINT ["/bin/sh" "-xc" "echo x"]', True)
    assert history[13] == ('/bin/sh -xc #(nop)  CMD ["a" "b"]', True)
    assert len(doc["rootfs"]["diff_ids"]) == 2


def test_run_shell_and_exec_form_output_and_layers(make_context: Callable[..., Any],
                                                   build: Any, image_config: Any,
                                                   docker: Any, unique_name: Any) -> None:
    tag = unique_name("run")
    ctx = make_context({"Dockerfile": """FROM busybox
RUN echo to-stdout && echo to-stderr >&2
RUN ["sh", "-c", "echo exec-form > /made"]
RUN true
RUN rm /made
"""})
    result = build(ctx, "-t", tag)
    out = result.stdout
    assert "Step 2/5 : RUN echo to-stdout && echo to-stderr >&2\n ---> Running in " in out
    assert "to-stdout\n" in out
    assert "\x1b[91mto-stderr\n\x1b[0m" in out
    assert out.count("Removing intermediate container ") == 4
    history = _history(image_config(tag))
    assert history == [("/bin/sh -c echo to-stdout && echo to-stderr >&2", True),
                       ("sh -c echo exec-form > /made", False),
                       ("/bin/sh -c true", True),
                       ("/bin/sh -c rm /made", False)]
    probe = run_in(docker, tag, "sh", "-c", "test ! -e /made && echo gone")
    assert probe.stdout == "gone\n"
    # build containers are never containers of the daemon
    assert docker("ps", "-aq", "--filter", f"ancestor={tag}").stdout == ""


def test_copy_semantics(make_context: Callable[..., Any], build: Any, docker: Any,
                        unique_name: Any) -> None:
    tag = unique_name("copy")
    ctx = make_context({
        "Dockerfile": """FROM busybox
COPY a.txt /single
COPY a.txt /dir/
COPY src /tree
COPY *.md /docs/
COPY src/sub/ ./rel/
COPY --chown=1:2 a.txt /owned
COPY --chmod=750 a.txt /moded
WORKDIR /w
COPY a.txt .
""",
        "a.txt": "A\n", "one.md": "1\n", "two.md": "2\n",
        "src/top": "t\n", "src/sub/deep": "d\n"})
    build(ctx, "-t", tag)
    script = ("cat /single /dir/a.txt /tree/top /tree/sub/deep /docs/one.md /docs/two.md "
              "/rel/deep /w/a.txt; stat -c '%u:%g %a' /owned /moded /single /tree/top; "
              "test ! -e /tree/src && echo contents-only")
    out = run_in(docker, tag, "sh", "-c", script).stdout
    assert out == ("A\nA\nt\nd\n1\n2\nd\nA\n1:2 644\n0:0 750\n0:0 644\n0:0 644\n"
                   "contents-only\n")


def test_copy_errors(make_context: Callable[..., Any], build: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY a.txt b.txt /notdir\n",
                        "a.txt": "a", "b.txt": "b"})
    result = build(ctx, check=False)
    assert result.rc == 1
    assert ("When using COPY with more than one source file, the destination must be a "
            "directory and end with a /") in result.stderr
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY *.nothing /x/\n"})
    result = build(ctx, check=False)
    assert "COPY failed: no source files were specified" in result.stderr
    ctx = make_context({"Dockerfile": "FROM busybox\nCOPY ../outside /x\n"})
    result = build(ctx, check=False)
    assert result.rc == 1


def test_add_extracts_local_tars_and_keeps_other_files(make_context: Callable[..., Any],
                                                       build: Any, docker: Any,
                                                       unique_name: Any) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"inside\n"
        info = tarfile.TarInfo("pkg/file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tag = unique_name("add")
    ctx = make_context({"Dockerfile": "FROM busybox\nADD bundle.tgz /opt/\nADD plain.txt /p\n",
                        "bundle.tgz": buf.getvalue(), "plain.txt": "plain\n"})
    build(ctx, "-t", tag)
    out = run_in(docker, tag, "cat", "/opt/pkg/file", "/p").stdout
    assert out == "inside\nplain\n"


def test_workdir_creates_directories_and_run_uses_them(make_context: Callable[..., Any],
                                                        build: Any, docker: Any,
                                                        unique_name: Any) -> None:
    tag = unique_name("wd")
    ctx = make_context({"Dockerfile": "FROM busybox\nWORKDIR /a/b\nWORKDIR c\nRUN pwd > here\n"})
    result = build(ctx, "-t", tag)
    assert run_in(docker, tag, "cat", "/a/b/c/here").stdout == "/a/b/c\n"
    assert "Step 3/4 : WORKDIR c" in result.stdout


def test_heredocs(make_context: Callable[..., Any], build: Any, docker: Any,
                  unique_name: Any) -> None:
    tag = unique_name("heredoc")
    ctx = make_context({"Dockerfile": """FROM busybox
RUN <<EOF
echo one > /one
echo two > /two
EOF
COPY <<EOT /greeting
hello from a heredoc
EOT
RUN cat <<EOF > /three
three
EOF
"""})
    build(ctx, "-t", tag)
    out = run_in(docker, tag, "cat", "/one", "/two", "/greeting", "/three").stdout
    assert out == "one\ntwo\nhello from a heredoc\nthree\n"


def test_onbuild_triggers_run_in_the_child(make_context: Callable[..., Any], build: Any,
                                           docker: Any, image_config: Any,
                                           unique_name: Any) -> None:
    parent, child = unique_name("onb-parent"), unique_name("onb-child")
    build(make_context({"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /t\n"}),
          "-t", parent)
    result = build(make_context({"Dockerfile": f"FROM {parent}\nRUN cat /t\n"}), "-t", child)
    assert "# Executing 1 build trigger\n" in result.stdout
    assert run_in(docker, child, "cat", "/t").stdout == "triggered\n"
    assert image_config(child)["config"]["OnBuild"] is None


def test_arg_scope_and_build_args(make_context: Callable[..., Any], build: Any, docker: Any,
                                  image_config: Any, unique_name: Any) -> None:
    tag = unique_name("args")
    ctx = make_context({"Dockerfile": """ARG BASE=busybox
ARG META=meta-default
FROM $BASE
ARG META
ARG V=default
ARG UNSET
ENV FROM_ENV=$V
RUN echo "meta=$META v=$V unset=[$UNSET]" > /args
"""})
    result = build(ctx, "-t", tag, "--build-arg", "V=given", "--build-arg", "NOTUSED=1")
    assert "Step 1/8 : ARG BASE=busybox" in result.stdout
    assert "[Warning] One or more build-args [NOTUSED] were not consumed" in result.stdout
    assert run_in(docker, tag, "cat", "/args").stdout == \
        "meta=meta-default v=given unset=[]\n"
    doc = image_config(tag)
    assert "FROM_ENV=given" in doc["config"]["Env"]
    run_line = doc["history"][-1]["created_by"]
    assert run_line == '|2 META=meta-default V=given /bin/sh -c echo "meta=$META v=$V ' \
        'unset=[$UNSET]" > /args'
