"""Where the Docker Engine API spec this daemon serves (v1.50) is read from: the project's
shared reference beside the checkout (../shared/reference/), or $DPY_ENGINE_SPEC.
It is not copied into the repository."""

from __future__ import annotations

import os
from pathlib import Path

NAME = "docker-engine-api-v1.50.yaml"
_ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = (_ROOT.parent / "shared" / "reference" / NAME,
               Path("/work/shared/reference") / NAME)


def spec_path() -> Path:
    """The spec's path; AssertionError (a failed test, not a skip) when it is missing."""
    given = os.environ.get("DPY_ENGINE_SPEC")
    for path in ((Path(given),) if given else _CANDIDATES):
        if path.is_file():
            return path
    places = " or ".join(map(str, _CANDIDATES))
    raise AssertionError(f"the Engine API spec {NAME} is not at {places} "
                         "(set DPY_ENGINE_SPEC to its path)")
