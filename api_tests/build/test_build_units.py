"""Pure parts of the dispatcher, without a daemon: stage planning, Go-style formatting of
history text and progress, the cache key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder import progress
from builder.cache import step_key
from builder.plan import make_plan
from dockerd_py.dockerfile.errors import DockerfileError
from dockerd_py.dockerfile.parser import parse
from dockerd_py.engine.containers.health import go_duration_ns

MULTI = """FROM busybox AS a
RUN true
FROM busybox AS b
COPY --from=a /x /x
FROM b AS c
RUN true
FROM busybox AS d
COPY --from=0 /y /y
"""


def test_plan_builds_only_what_the_target_reaches() -> None:
    df = parse(MULTI)
    plan = make_plan(df)
    assert plan.target == 3 and plan.needed == [0, 3]
    plan = make_plan(df, "c")
    assert plan.needed == [0, 1, 2]
    assert plan.deps[2] == {1} and plan.deps[1] == {0}
    assert len(plan.stages) == 3  # cut after the target
    with pytest.raises(DockerfileError, match="failed to reach build target nope"):
        make_plan(df, "nope")


def test_plan_rejects_forward_references() -> None:
    df = parse("FROM busybox\nCOPY --from=1 /a /a\nFROM busybox\n")
    with pytest.raises(DockerfileError, match="refers to current or future build stage"):
        make_plan(df)


@pytest.mark.parametrize("ns,text", [
    (0, "0s"), (5_000_000_000, "5s"), (1_500_000_000, "1.5s"), (90 * 10**9, "1m30s"),
    (3600 * 10**9, "1h0m0s"), (250_000_000, "250ms"), (1500, "1.5µs"), (7, "7ns")])
def test_go_duration_strings(ns: int, text: str) -> None:
    assert go_duration_ns(ns) == text


@pytest.mark.parametrize("size,text", [(7, "7B"), (1000, "1kB"), (1536, "1.536kB"),
                                       (52_428_800, "52.43MB")])
def test_human_sizes(size: int, text: str) -> None:
    assert progress.human_size(size) == text


def test_download_progress_line() -> None:
    status, newline = progress.downloaded(7)
    assert status["progress"] == "[" + "=" * 50 + ">]       7B/7B"
    assert newline == {"stream": "\n"}


@given(st.text(), st.text(), st.dictionaries(st.text(), st.text()))
def test_cache_keys_differ_with_any_input(parent: str, created_by: str,
                                          config: dict[str, str]) -> None:
    key = step_key(parent, created_by, config)
    assert key.startswith("sha256:") and len(key) == 71
    assert step_key(parent, created_by, config) == key
    assert step_key(parent + "x", created_by, config) != key
    assert step_key(parent, created_by + "x", config) != key
    assert step_key(parent, created_by, config, ["input"]) != key
