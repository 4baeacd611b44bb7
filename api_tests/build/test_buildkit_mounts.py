"""BuildKit's RUN flags through `POST /build` (the legacy client): `--mount` of type
cache (persisting across builds, counted by `docker system df`, removed by
`docker builder prune`), bind (the context, a stage; read-only unless rw, and rw
writes thrown away), tmpfs, secret and ssh (absent on this path: BuildKit's errors
when required, left out otherwise); `--network`, `--security`; mount points leave
nothing in the layer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")


def _layer_files(docker: Any, image: str, tmp: Any) -> list[str]:
    """Paths in the image's last layer."""
    import tarfile
    out = tmp / "save.tar"
    docker("save", "-o", str(out), image)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        last = manifest[0]["Layers"][-1]
        inner = tar.extractfile(last)
        assert inner is not None
        with tarfile.open(fileobj=inner) as layer:
            names = layer.getnames()
    out.unlink()
    return names


def test_cache_mount_persists_and_is_pruned(make_context: Callable[..., Any], build: Any,
                                            docker: Any, unique_name: Any) -> None:
    cache_id = unique_name("cache")
    first = make_context({"Dockerfile":
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cache_id},target=/cache,uid=1000,mode=0750 "
        "ls -ln /cache > /before && echo kept > /cache/file && stat -c '%u %a' /cache\n"})
    out = build(first, "--no-cache").stdout
    assert "1000 750" in out
    second = make_context({"Dockerfile":
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cache_id},target=/elsewhere,sharing=locked "
        "cat /elsewhere/file > /seen\n"})
    tag = unique_name("cachemount")
    build(second, "--no-cache", "-t", tag)
    assert run_in(docker, tag, "cat", "/seen").stdout == "kept\n"
    assert "elsewhere" not in run_in(docker, tag, "ls", "/").stdout  # no stub in the layer
    df = json.loads(docker("system", "df", "-v", "--format", "{{json .BuildCache}}").stdout)
    mounts = [c for c in df if c["CacheType"] == "exec.cachemount"]
    assert any(cache_id in c["Description"] for c in mounts), df
    docker("builder", "prune", "-f")
    third = make_context({"Dockerfile":
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cache_id},target=/c test ! -e /c/file\n"})
    build(third, "--no-cache")


def test_bind_mounts(make_context: Callable[..., Any], build: Any, docker: Any,
                     unique_name: Any, tmp_path: Any) -> None:
    ctx = make_context({
        "Dockerfile":
            "FROM busybox AS tools\n"
            "RUN echo from-stage > /tool\n"
            "FROM busybox\n"
            "WORKDIR /work\n"
            "RUN --mount=target=src cat src/data.txt > /copied && "
            "! touch src/new 2>/dev/null\n"
            "RUN --mount=type=bind,source=data.txt,target=/d.txt,rw "
            "echo changed > /d.txt && cat /d.txt > /rw-seen\n"
            "RUN --mount=from=tools,source=/tool,target=/mnt/tool cat /mnt/tool > /tool-seen\n",
        "data.txt": "context data\n"})
    tag = unique_name("bind")
    build(ctx, "-t", tag)
    assert run_in(docker, tag, "cat", "/copied", "/rw-seen", "/tool-seen").stdout == \
        "context data\nchanged\nfrom-stage\n"
    names = _layer_files(docker, tag, tmp_path)
    assert not any("mnt" in n for n in names), names
    assert run_in(docker, tag, "ls", "/work").stdout == ""  # no stub of "src"
    # the context file was never changed by the rw mount: a rebuild is fully cached
    again = build(ctx)
    assert again.stdout.count("Using cache") == 5


def test_bind_mount_content_is_in_the_cache_key(make_context: Callable[..., Any],
                                                build: Any) -> None:
    ctx = make_context({"Dockerfile": "FROM busybox\nRUN --mount=target=/s cat /s/v\n",
                        "v": "one\n"})
    assert "one" in build(ctx).stdout
    (ctx / "v").write_text("two\n")
    out = build(ctx).stdout
    assert "two" in out and "Using cache" not in out


def test_tmpfs_mount(make_context: Callable[..., Any], build: Any, docker: Any,
                     unique_name: Any) -> None:
    ctx = make_context({"Dockerfile":
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/scratch,size=1m "
        "grep ' /scratch ' /proc/mounts > /m && echo x > /scratch/f\n"})
    tag = unique_name("tmpfs")
    build(ctx, "-t", tag, "--no-cache")
    line = run_in(docker, tag, "cat", "/m").stdout
    assert line.startswith("tmpfs /scratch tmpfs") and "size=1024k" in line
    assert run_in(docker, tag, "ls", "-A", "/").stdout.count("scratch") == 0


def test_secret_and_ssh_without_a_source(make_context: Callable[..., Any],
                                         build: Any) -> None:
    optional = make_context({"Dockerfile":
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok test ! -e /run/secrets/tok\n"
        "RUN --mount=type=ssh test -z \"$SSH_AUTH_SOCK\"\n"})
    build(optional, "--no-cache")
    required = make_context({"Dockerfile":
        "FROM busybox\nRUN --mount=type=secret,id=tok,required true\n"})
    r = build(required, check=False)
    assert r.rc != 0 and "secret tok: not found" in r.output
    ssh = make_context({"Dockerfile": "FROM busybox\nRUN --mount=type=ssh,required true\n"})
    r = build(ssh, check=False)
    assert r.rc != 0 and 'no SSH key "default" forwarded from the client' in r.output


def test_mount_flag_errors(make_context: Callable[..., Any], build: Any) -> None:
    for line, message in [
        ("RUN --mount=type=nope,target=/x true", 'unsupported mount type "nope"'),
        ("RUN --mount=type=bind,target=/x,uid=1 true", 'uid not allowed for "bind" type'),
        ("RUN --mount=type=cache,target=/x,sharing=odd true", 'unsupported sharing value'),
        ("RUN --mount=type=secret true", "one of source, target required"),
        ("RUN --network=bridge true", "unsupported network mode"),
    ]:
        r = build(make_context({"Dockerfile": f"FROM busybox\n{line}\n"}), check=False)
        assert r.rc != 0 and message in r.output, (line, r.output)


def test_run_network_and_security(make_context: Callable[..., Any], build: Any) -> None:
    none = make_context({"Dockerfile":
        "FROM busybox\nRUN --network=none ip -o link | grep -v ' lo:' | wc -l > /n && "
        "test \"$(cat /n)\" = 0\n"})
    build(none, "--no-cache")
    host = make_context({"Dockerfile": "FROM busybox\nRUN --network=host true\n"})
    r = build(host, check=False)
    assert r.rc != 0 and "entitlement network.host is not allowed" in r.output
    build(host, "--network", "host")  # a build on the host's network already: allowed
    insecure = make_context({"Dockerfile":
        "FROM busybox\nRUN --security=insecure true\n"})
    r = build(insecure, check=False)
    assert r.rc != 0 and "entitlement security.insecure is not allowed" in r.output
    build(make_context({"Dockerfile": "FROM busybox\nRUN --security=sandbox true\n"}))


def test_cache_mount_seeded_from_a_stage(make_context: Callable[..., Any], build: Any,
                                         unique_name: Any) -> None:
    cache_id = unique_name("seeded")
    ctx = make_context({"Dockerfile":
        "FROM busybox AS seed\n"
        "RUN mkdir -p /s/sub && echo seeded > /s/sub/f\n"
        "FROM busybox\n"
        f"RUN --mount=type=cache,id={cache_id},target=/c,from=seed,source=/s "
        "cat /c/sub/f && echo more > /c/added\n"
        f"RUN --mount=type=cache,id={cache_id},target=/c,sharing=private "
        "cat /c/added\n"})
    out = build(ctx, "--no-cache").stdout
    assert "seeded\n" in out and "more\n" in out


def test_mounts_leave_nothing_behind(make_context: Callable[..., Any], build: Any,
                                     build_leftovers: Any) -> None:
    ctx = make_context({"Dockerfile":
        "FROM busybox\n"
        "RUN --mount=type=tmpfs,target=/t --mount=type=secret,id=x "
        "--mount=target=/ctx,rw --mount=type=cache,target=/c sleep 0\n"
        "RUN --mount=type=cache,target=/c false\n", "f": "x"})
    before = build_leftovers()
    r = build(ctx, "--no-cache", check=False)
    assert r.rc != 0 and "returned a non-zero code: 1" in r.output
    # (cgroups are the host's: other daemons' builds may run meanwhile)
    assert [x for x in build_leftovers() if x not in before and not x.startswith("cgroup")] \
        == []
