"""`docker build` flags and context forms: -t (several), -f (path, -), context on stdin
(bare Dockerfile or tar), --target with stage skipping, --label, -q, --iidfile, --network,
--shm-size, --ulimit, .dockerignore, multi-stage COPY --from."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")


def test_several_tags_and_iidfile(make_context: Callable[..., Path], build: Any, docker: Any,
                                  unique_name: Any) -> None:
    a, b = unique_name("app"), unique_name("app")
    result = build(make_context({"Dockerfile": "FROM busybox\nRUN echo hi > /hi\n"}),
                   "-t", f"{a}:1", "-t", f"{b}:latest")
    short = result.image_id.removeprefix("sha256:")[:12]
    assert f"Successfully built {short}\n" in result.stdout
    assert f"Successfully tagged {a}:1\n" in result.stdout
    assert f"Successfully tagged {b}:latest\n" in result.stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", f"{a}:1").stdout.strip() == \
        result.image_id


def test_quiet_prints_only_the_id(make_context: Callable[..., Path], build: Any) -> None:
    result = build(make_context({"Dockerfile": "FROM busybox\nRUN echo noisy\n"}), "-q")
    assert result.stdout == result.image_id + "\n"


def test_dockerfile_flag_and_stdin_forms(make_context: Callable[..., Path], build: Any,
                                         docker: Any, unique_name: Any) -> None:
    ctx = make_context({"sub/Build.file": "FROM busybox\nCOPY data /data\n", "data": "d\n"})
    tag = unique_name("f")
    build(ctx, "-f", str(ctx / "sub/Build.file"), "-t", tag)
    assert run_in(docker, tag, "cat", "/data").stdout == "d\n"
    # -f - : the Dockerfile from stdin, the context from the directory
    tag2 = unique_name("f")
    build(ctx, "-f", "-", "-t", tag2, input="FROM busybox\nCOPY data /from-stdin\n")
    assert run_in(docker, tag2, "cat", "/from-stdin").stdout == "d\n"
    # docker build - < Dockerfile: no context at all
    tag3 = unique_name("f")
    build("-", "-t", tag3, input="FROM busybox\nRUN echo bare > /bare\n")
    assert run_in(docker, tag3, "cat", "/bare").stdout == "bare\n"
    # a tar context on stdin
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"tarred\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tag4 = unique_name("f")
    build("-", "-t", tag4, input=buf.getvalue())
    assert run_in(docker, tag4, "cat", "/f").stdout == "tarred\n"


def test_target_builds_only_the_stages_it_needs(make_context: Callable[..., Path],
                                                build: Any, docker: Any,
                                                unique_name: Any) -> None:
    ctx = make_context({"Dockerfile": """FROM busybox AS unused
RUN exit 9
FROM busybox AS dep
RUN echo dep > /dep
FROM busybox AS app
COPY --from=dep /dep /dep
RUN echo app > /app
FROM busybox AS after
RUN exit 9
"""})
    tag = unique_name("target")
    result = build(ctx, "--target", "app", "-t", tag)
    assert "Step 2/" not in result.stdout  # the unused stage never ran
    assert "RUN exit 9" not in result.stdout
    assert "/7 : " in result.stdout  # M counts the stages up to the target
    assert run_in(docker, tag, "cat", "/dep", "/app").stdout == "dep\napp\n"
    missing = build(ctx, "--target", "nope", check=False)
    assert "failed to reach build target nope in Dockerfile" in missing.stderr


def test_independent_stages_and_copy_from_image(make_context: Callable[..., Path],
                                                build: Any, docker: Any,
                                                unique_name: Any) -> None:
    ctx = make_context({"Dockerfile": """FROM busybox AS a
RUN echo a > /a
FROM busybox AS b
RUN echo b > /b
FROM scratch
COPY --from=a /a /a
COPY --from=1 /b /b
COPY --from=busybox /bin/busybox /bin/sh
"""})
    tag = unique_name("multi")
    result = build(ctx, "-t", tag)
    out = result.stdout
    # stage output comes out in file order even though stages run concurrently
    assert out.index("Step 2/8 : RUN echo a") < out.index("Step 3/8 : FROM busybox AS b") \
        < out.index("Step 5/8 : FROM scratch")
    assert run_in(docker, tag, "/bin/sh", "-c", "read x < /a; read y < /b; echo $x$y"
                  ).stdout == "ab\n"


def test_labels_are_extra_steps(make_context: Callable[..., Path], build: Any,
                                image_config: Any, unique_name: Any) -> None:
    tag = unique_name("label")
    result = build(make_context({"Dockerfile": "FROM busybox\nLABEL a=1\n"}), "-t", tag,
                   "--label", "z=last", "--label", "b=2")
    assert "Step 3/4 : LABEL b=2\n" in result.stdout
    assert "Step 4/4 : LABEL z=last\n" in result.stdout
    assert image_config(tag)["config"]["Labels"] == {"a": "1", "b": "2", "z": "last"}


def test_run_options(make_context: Callable[..., Path], build: Any, docker: Any,
                     unique_name: Any) -> None:
    tag = unique_name("opts")
    ctx = make_context({"Dockerfile": """FROM busybox
RUN ls /sys/class/net > /nets
RUN df -k /dev/shm | tail -1 | awk '{print $2}' > /shm
RUN ulimit -n > /nofile
"""})
    build(ctx, "-t", tag, "--network", "none", "--shm-size", "32m",
          "--ulimit", "nofile=1234:1234")
    out = run_in(docker, tag, "cat", "/nets", "/shm", "/nofile").stdout.split()
    assert out == ["lo", str(32 * 1024), "1234"]
    unsupported = build(ctx, "--network", "container:x", check=False)
    assert unsupported.rc == 1


def test_dockerignore(make_context: Callable[..., Path], build: Any, docker: Any,
                      unique_name: Any) -> None:
    ctx = make_context({
        "Dockerfile": "FROM busybox\nCOPY . /ctx\n",
        ".dockerignore": "*.log\nsecret/**\n!secret/keep\n/top\n**/tmp\n",
        "a.log": "x", "b.txt": "b", "secret/key": "k", "secret/keep": "keep",
        "top": "t", "nested/top": "n", "deep/x/tmp": "t"})
    tag = unique_name("ignore")
    build(ctx, "-t", tag)
    listing = run_in(docker, tag, "find", "/ctx", "-type", "f").stdout.split()
    assert sorted(listing) == ["/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/b.txt",
                               "/ctx/nested/top", "/ctx/secret/keep"]


def test_docker_py_build(dockerpy: Any, make_context: Callable[..., Path], docker: Any,
                         unique_name: Any) -> None:
    """docker-py reads the same stream: the image from the aux ID, the logs as dicts."""
    tag = unique_name("dockerpy")
    ctx = make_context({"Dockerfile": "FROM busybox\nARG WHO\nRUN echo hello $WHO\n"})
    image, logs = dockerpy.images.build(path=str(ctx), tag=tag, buildargs={"WHO": "py"},
                                        network_mode="none", rm=True)
    lines = "".join(entry.get("stream", "") for entry in logs)
    assert "hello py\n" in lines
    assert f"Successfully tagged {tag}:latest" in lines
    assert image.id == docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    docker("rmi", tag)
    with pytest.raises(Exception, match="returned a non-zero code: 3"):
        dockerpy.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 3\n"))


def test_concurrent_builds(make_context: Callable[..., Path], daemon: Any, docker: Any,
                           unique_name: Any) -> None:
    """Two builds at once, sharing their first steps: both succeed, neither sees the
    other's files."""
    procs = []
    tags = [unique_name("conc"), unique_name("conc")]
    for i, tag in enumerate(tags):
        ctx = make_context({"Dockerfile": "FROM busybox\nRUN echo shared > /shared\n"
                                          "COPY mine /mine\nRUN sleep 1; cat /mine\n",
                            "mine": f"{i}\n"})
        procs.append(subprocess.Popen(["docker", "build", "-t", tag, str(ctx)],
                                      env=daemon.cli_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, out + err
        for i, tag in enumerate(tags):
            assert run_in(docker, tag, "cat", "/shared", "/mine").stdout == f"shared\n{i}\n"
    finally:
        docker("rmi", "-f", *tags, check=False)
