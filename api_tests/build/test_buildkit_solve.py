"""The builder's BuildKit entry point (`BuildService.solve`), the one the gRPC front end
calls, on a daemon's services run in this process (their own data root, no default
bridge): BuildKit's vertex names and stable digests reported to a BuildObserver, cache
hits on a second build, secrets (file and env; in no layer, history or config), ssh agent
sockets, named build contexts (a directory, docker-image://), build-check warnings in
BuildKit's wording, and what it refuses (another platform, host networking without the
entitlement, other frontends)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import socket
import tarfile
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from builder.observer import NullObserver, Vertex, Warning, internal
from builder.request import BuildRequest, NamedContext
from dockerd_py import config as config_mod
from dockerd_py.daemon import Services, build_services, close, start
from dockerd_py.engine.images.import_ import import_image
from dockerd_py.engine.mount import unmount_under
from dockerd_py.errors import InvalidParameter, NotFound


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.vertexes: dict[str, Vertex] = {}
        self.logs = b""
        self.warnings: list[Warning] = []

    async def started(self, vertex: Vertex) -> None:
        self.vertexes[vertex.digest] = vertex
        self.events.append(("started", vertex.name))

    async def cached(self, vertex: Vertex) -> None:
        self.events.append(("cached", vertex.name))

    async def log(self, vertex: Vertex, fd: int, data: bytes) -> None:
        self.logs += data

    async def completed(self, vertex: Vertex, error: BaseException | None,
                        image_id: str | None) -> None:
        self.events.append(("completed" if error is None else "failed", vertex.name))

    async def warning(self, warning: Warning) -> None:
        self.warnings.append(warning)

    def shown(self) -> list[str]:
        """Names of the vertexes a BuildKit client shows, in start order."""
        return [name for kind, name in self.events if kind == "started"
                and not next(v for v in self.vertexes.values() if v.name == name).hidden]


class Secrets:
    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values

    async def get(self, secret_id: str) -> bytes:
        if secret_id not in self.values:
            raise NotFound(f"secret {secret_id} not found")
        return self.values[secret_id]


class Agent:
    def __init__(self, path: str) -> None:
        self.path = path

    async def forward(self, ssh_id: str) -> str:
        if ssh_id != "default":
            raise NotFound(ssh_id)
        return self.path


@pytest.fixture
async def services(busybox_tar: Path) -> AsyncIterator[Services]:
    tmp = tempfile.mkdtemp(prefix="bks-", dir="/tmp")
    cfg = config_mod.build({"data_root": f"{tmp}/root", "exec_root": f"{tmp}/exec",
                            "bridge": "none"}, config_file=f"{tmp}/daemon.json",
                           file_required=False)
    s = build_services(cfg)
    try:
        await start(s)

        async def chunks() -> AsyncIterator[bytes]:
            with open(busybox_tar, "rb") as f:
                while data := f.read(1 << 20):
                    yield data
        await import_image(s.images, chunks(), repo="busybox:latest",
                           changes=['CMD ["sh"]'])
        yield s
    finally:
        await close(s)
        unmount_under(tmp)
        shutil.rmtree(tmp, ignore_errors=True)


async def _solve(s: Services, ctx: Path, dockerfile: str, **kw: Any) -> tuple[Any, Recorder]:
    observer = Recorder()
    request = BuildRequest(dockerfile=dockerfile.encode(), observer=observer, **kw)
    result = await s.builder.solve(request, str(ctx))
    return result, observer


async def test_vertexes_names_digests_and_cache(services: Services, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("hello\n")
    dockerfile = ("FROM busybox AS build\nWORKDIR /src\nCOPY f.txt .\n"
                  "RUN cat f.txt && echo out-$(cat f.txt) > /o\n"
                  "FROM busybox\nENV A=1\nCOPY --from=build /o /o\n")
    first, rec = await _solve(services, tmp_path, dockerfile, tags=("bk/vertexes:1",))
    shown = rec.shown()
    build_steps = ["[build 1/4] FROM docker.io/library/busybox:latest",
                   "[build 2/4] WORKDIR /src", "[build 3/4] COPY f.txt .",
                   "[build 4/4] RUN cat f.txt && echo out-$(cat f.txt) > /o"]
    final_steps = ["[stage-1 1/2] FROM docker.io/library/busybox:latest",
                   "[stage-1 2/2] COPY --from=build /o /o"]
    # the stages run concurrently: each one's steps in order, the two interleaved
    assert [n for n in shown if n.startswith("[build")] == build_steps
    assert [n for n in shown if n.startswith("[stage-1")] == final_steps
    assert sorted(set(shown) - set(build_steps) - set(final_steps)) == [
        "[internal] load metadata for docker.io/library/busybox:latest"]
    by_name = {v.name: v for v in rec.vertexes.values()}
    # a shown vertex follows the last shown one of its stage (ENV has no vertex)
    assert by_name["[build 3/4] COPY f.txt ."].inputs == (
        by_name["[build 2/4] WORKDIR /src"].digest,)
    assert by_name["[stage-1 2/2] COPY --from=build /o /o"].inputs == (
        by_name["[stage-1 1/2] FROM docker.io/library/busybox:latest"].digest,)
    assert b"hello\n" in rec.logs
    image = await services.images.resolve("bk/vertexes:1")
    assert image.id == first.image_id and first.config == image.config
    second, again = await _solve(services, tmp_path, dockerfile)
    assert second.image_id == first.image_id
    assert set(rec.vertexes) == set(again.vertexes)  # the same steps, the same digests
    cached = {name for kind, name in again.events if kind == "cached"}
    assert "[build 4/4] RUN cat f.txt && echo out-$(cat f.txt) > /o" in cached
    assert "[stage-1 2/2] COPY --from=build /o /o" in cached


def _everything_stored(s: Services, image: Any) -> bytes:
    """The image's config and every layer, uncompressed."""
    out = repr(image.config).encode()
    for layer in image.layers:
        data = s.builder.backend.content.read_bytes(layer.blob_digest)
        out += gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    return out


def _layer_names(s: Services, image: Any) -> list[str]:
    names: list[str] = []
    for layer in image.layers[1:]:  # above busybox
        with tarfile.open(fileobj=io.BytesIO(
                s.builder.backend.content.read_bytes(layer.blob_digest))) as tar:
            names += tar.getnames()
    return names


async def test_secrets_never_stored(services: Services, tmp_path: Path) -> None:
    secret = b"s3cr3t-value-1234"
    dockerfile = (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok md5sum < /run/secrets/tok > /sum && "
        "stat -c %a /run/secrets/tok > /mode\n"
        "RUN --mount=type=secret,id=tok,env=TOKEN,target=/etc/tok,mode=0440 "
        "printf %s \"$TOKEN\" | md5sum > /sum-env && stat -c %a /etc/tok > /mode-env\n"
        "RUN --mount=type=secret,id=missing test ! -e /run/secrets/missing\n")
    result, _ = await _solve(services, tmp_path, dockerfile,
                             secrets=Secrets({"tok": secret}))
    image = await services.images.get(result.image_id)
    assert image is not None
    stored = _everything_stored(services, image)
    assert secret not in stored
    digest = hashlib.md5(secret).hexdigest().encode()  # noqa: S324 (a checksum)
    assert stored.count(digest) == 2  # both steps read it
    assert b"400\n" in stored and b"440\n" in stored
    names = _layer_names(services, image)
    assert not [n for n in names if n.startswith(("run/secrets", "etc/tok"))], names
    with pytest.raises(InvalidParameter, match="secret other: not found"):
        await _solve(services, tmp_path, "FROM busybox\n"
                     "RUN --mount=type=secret,id=other,required true\n",
                     secrets=Secrets({}))


async def test_ssh_agent_socket(services: Services, tmp_path: Path) -> None:
    sock_dir = tempfile.mkdtemp(prefix="agent-", dir="/tmp")
    path = os.path.join(sock_dir, "agent.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    try:
        _, rec = await _solve(services, tmp_path, "FROM busybox\n"
                              "RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && "
                              "echo \"sock=$SSH_AUTH_SOCK\"\n", ssh=Agent(path), no_cache=True)
        assert b"sock=/run/buildkit/ssh_agent.0" in rec.logs
        with pytest.raises(InvalidParameter, match='no SSH key "other" forwarded'):
            await _solve(services, tmp_path, "FROM busybox\n"
                         "RUN --mount=type=ssh,id=other,required true\n", ssh=Agent(path))
    finally:
        server.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


async def test_named_contexts(services: Services, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "lib.txt").write_text("from a named context\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    dockerfile = ("FROM base\nCOPY --from=libs lib.txt /lib.txt\n"
                  "RUN --mount=from=libs,target=/l cat /l/lib.txt > /seen\n")
    contexts = {"libs": NamedContext(directory=str(extra)),
                "base": NamedContext(image="busybox:latest")}
    result, rec = await _solve(services, ctx, dockerfile, contexts=contexts,
                               tags=("bk/named:1",))
    assert "[1/3] FROM docker.io/library/busybox:latest" in rec.shown()
    image = await services.images.get(result.image_id)
    assert image is not None
    assert b"from a named context" in _everything_stored(services, image)


async def test_checks_as_warnings(services: Services, tmp_path: Path) -> None:
    dockerfile = "# syntax=docker/dockerfile:1\nFROM busybox as Build\nCMD echo hi\n"
    _, rec = await _solve(services, tmp_path, dockerfile)
    definition = internal("[internal] load build definition from Dockerfile").digest
    shorts = {w.short: w for w in rec.warnings if w.short}
    found = shorts["JSONArgsRecommended: JSON arguments recommended for CMD to prevent "
                   "unintended behavior related to OS signals (line 3)"]
    assert found.vertex == definition and found.line == 3
    assert found.url == "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/"
    assert found.detail == ("JSON arguments recommended for ENTRYPOINT/CMD to prevent "
                            "unintended behavior related to OS signals",)
    assert "FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 2)" in shorts
    _, undefined = await _solve(services, tmp_path, "FROM busybox\nENV NAME=x\n"
                                "ARG DECLARED\nENV B=$NAM C=${DECLARED} D=${UNSETVALUE:-d}\n")
    assert sorted(w.short for w in undefined.warnings if w.rule == "UndefinedVar") == [
        "UndefinedVar: Usage of undefined variable '$NAM' (did you mean $NAME?) (line 4)",
        "UndefinedVar: Usage of undefined variable '$UNSETVALUE' (line 4)"]
    _, empty = await _solve(services, tmp_path, "FROM busybox\nLABEL a=b \\\n\n  c=d\n")
    assert [w.short for w in empty.warnings] == [
        "NoEmptyContinuation: Empty continuation line (line 2)"]
    _, quiet = await _solve(services, tmp_path, "# check=skip=all\n" + dockerfile)
    assert not [w for w in quiet.warnings if w.short]


@pytest.mark.parametrize("kw, dockerfile, message", [
    ({"platform": "linux/s390x"}, "FROM busybox\n", "is not supported: this daemon builds "
     "only for its own platform"),
    ({"network": "host"}, "FROM busybox\n", "entitlement network.host is not allowed"),
    ({}, "FROM --platform=linux/s390x busybox\n", "is not supported: this daemon builds "
     "only for its own platform"),
    ({}, "FROM busybox\nRUN --network=host true\n", "entitlement network.host is not allowed"),
    ({}, "FROM busybox\nRUN --security=insecure true\n",
     "entitlement security.insecure is not allowed"),
    ({}, "# syntax=example.com/frontend:1\nFROM busybox\n", "unsupported frontend"),
    ({"contexts": {"x": NamedContext()}}, "FROM busybox\n", "give a directory or an image"),
])
async def test_refusals(services: Services, tmp_path: Path, kw: dict[str, Any],
                        dockerfile: str, message: str) -> None:
    if "s390x" in os.uname().machine:
        kw = {**kw, "platform": "linux/amd64"} if "platform" in kw else kw
        dockerfile = dockerfile.replace("s390x", "amd64")
    with pytest.raises(InvalidParameter, match=message):
        await _solve(services, tmp_path, dockerfile, **kw)


async def test_platform_args(services: Services, tmp_path: Path) -> None:
    _, rec = await _solve(services, tmp_path, "FROM --platform=$BUILDPLATFORM busybox\n"
                          "ARG TARGETARCH\nARG TARGETPLATFORM\n"
                          "RUN echo \"arch=$TARGETARCH platform=$TARGETPLATFORM\"\n",
                          no_cache=True)
    out = rec.logs.decode()
    assert "arch=" in out and "platform=linux/" in out and "arch= " not in out


async def test_labels_without_steps(services: Services, tmp_path: Path) -> None:
    result, _ = await _solve(services, tmp_path, "FROM busybox\nLABEL a=1\n",
                             labels={"b": "2", "a": "3"})
    assert result.config["config"]["Labels"] == {"a": "3", "b": "2"}
    assert [h.get("created_by", "") for h in result.config["history"]][-1].endswith(
        "LABEL a=1")  # BuildKit adds no history entry for --label
    again, _ = await _solve(services, tmp_path, "FROM busybox\nLABEL a=1\n",
                            labels={"b": "2", "a": "3"})
    assert again.image_id == result.image_id


async def test_host_network_entitled(services: Services, tmp_path: Path) -> None:
    _, rec = await _solve(services, tmp_path, "FROM busybox\n"
                          "RUN --network=host hostname\n", entitlements=frozenset(
                              {"network.host"}), no_cache=True)
    assert rec.logs.decode().strip() == socket.gethostname()
