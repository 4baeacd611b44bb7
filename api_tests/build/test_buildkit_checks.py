"""`# check=` through `POST /build`: build checks that fail the build with
`error=true` (BuildKit's "lint violation found for rules: ..."), rules skipped by name or
all of them, the same through the BUILDKIT_DOCKERFILE_CHECK build arg; the legacy output
shows no check warnings (the legacy builder never printed them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("busybox_image")


def test_check_error_and_skip(make_context: Callable[..., Any], build: Any) -> None:
    body = "FROM busybox as Build\nCMD echo hi\n"
    plain = build(make_context({"Dockerfile": body}))
    assert "JSONArgsRecommended" not in plain.output
    failing = make_context({"Dockerfile": "# check=error=true\n" + body})
    r = build(failing, check=False)
    assert r.rc != 0
    assert "lint violation found for rules: FromAsCasing, JSONArgsRecommended, " \
        "StageNameCasing" in r.output
    assert "Step 1/" not in r.output  # nothing ran
    skipped = make_context({"Dockerfile": "# check=skip=JSONArgsRecommended,FromAsCasing,"
                            "StageNameCasing;error=true\n" + body})
    build(skipped)
    build(make_context({"Dockerfile": "# check=skip=all;error=true\n" + body}))
    r = build(failing, "--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=all", check=False)
    assert r.rc == 0 and "were not consumed" not in r.output
