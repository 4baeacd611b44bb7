"""FROM an image that is not here pulls it (Debian's docker-registry on 127.0.0.1);
--pull fetches a newer image behind the same tag, without it the local one is used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..registry.fixtures import Registry
from .conftest import run_in

pytestmark = pytest.mark.usefixtures("busybox_image")


def _push_base(build: Any, docker: Any, make_context: Callable[..., Path], remote: str,
               marker: str) -> str:
    """Build an image with /marker, push it as remote, leave no local name for it."""
    result = build(make_context({"Dockerfile": f"FROM busybox\nRUN echo {marker} > /marker\n"}))
    docker("tag", result.image_id, remote)
    docker("push", remote)
    docker("rmi", remote)
    return str(result.image_id)


def test_from_pulls_and_pull_flag_refreshes(
        plain_registry: Registry, build: Any, docker: Any,  # noqa: F811
        make_context: Callable[..., Path], unique_name: Any) -> None:
    remote = f"{plain_registry.host}/build/{unique_name('base')}:v1"
    one = _push_base(build, docker, make_context, remote, "one")
    child = unique_name("child")
    ctx = make_context({"Dockerfile": f"FROM {remote}\nRUN cat /marker > /seen\n"})
    first = build(ctx, "-t", child)
    assert "Pulling from build/" in first.stdout
    assert run_in(docker, child, "cat", "/seen").stdout == "one\n"

    _push_base(build, docker, make_context, remote, "two")  # newer image, same tag
    docker("tag", one, remote)  # the local name still means the first one
    cached = build(ctx, "-t", child)
    assert "Pulling from" not in cached.stdout
    assert run_in(docker, child, "cat", "/seen").stdout == "one\n"
    pulled = build(ctx, "-t", child, "--pull")
    assert "Pulling from build/" in pulled.stdout
    assert run_in(docker, child, "cat", "/seen").stdout == "two\n"
    docker("rmi", remote, check=False)
