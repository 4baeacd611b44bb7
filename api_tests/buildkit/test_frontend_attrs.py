"""The Dockerfile frontend's attributes (what buildx sends in FrontendAttrs), checked
before a build starts: accepted as they mean, refused with the option's name."""

from __future__ import annotations

import pytest

from dockerd_py.buildkit.frontend import parse_attrs
from dockerd_py.errors import InvalidParameter, NotImplementedByDaemon

HOST = "linux/amd64"


def test_what_buildx_sends_for_a_plain_build() -> None:
    req = parse_attrs({"filename": "Dockerfile", "image-resolve-mode": "default",
                       "build-arg:A": "1", "label:org.x": "y", "target": "final",
                       "no-cache": "", "force-network-mode": "host",
                       "add-hosts": "h1=10.0.0.1,h2:10.0.0.2",
                       "sharedkey:localdir:extra": "extra:abc",
                       "context:extra": "local:extra", "platform": HOST,
                       "frontend.caps": "moby.buildkit.frontend.contexts+forward"}, HOST)
    assert req.build_args == {"A": "1"} and req.labels == {"org.x": "y"}
    assert req.target == "final" and req.no_cache and not req.pull
    assert req.network == "host"
    assert req.extra_hosts == ("h1:10.0.0.1", "h2:10.0.0.2")
    assert req.named_contexts == {"extra": "extra"}
    assert parse_attrs({"image-resolve-mode": "pull"}, HOST).pull


@pytest.mark.parametrize("attrs, words", [
    ({"platform": "linux/arm64"}, "building for platform 'linux/arm64' is not supported"),
    ({"no-cache": "stage1"}, "'no-cache'"),
    ({"multi-platform": "true"}, "'multi-platform'"),
    ({"attest:provenance": "mode=min"}, "'attest:provenance'"),
    ({"cgroup-parent": "x"}, "'cgroup-parent'"),
    ({"context:img": "docker-image://busybox"}, "'context:img'"),
    ({"frontend.caps": "moby.buildkit.frontend.unknown"}, "'frontend.caps'"),
])
def test_unsupported_options_are_named(attrs: dict[str, str], words: str) -> None:
    with pytest.raises(NotImplementedByDaemon) as e:
        parse_attrs(attrs, HOST)
    assert words in str(e.value)


@pytest.mark.parametrize("attrs", [
    {"build-arg:bad name": "x"}, {"target": "-x"}, {"force-network-mode": "bridge"},
    {"add-hosts": "h1=not-an-ip;rm -rf"}, {"image-resolve-mode": "sometimes"},
    {"filename": "a\nb"}, {"context:x": "local:../../etc"},
])
def test_hostile_values_are_refused(attrs: dict[str, str]) -> None:
    with pytest.raises(InvalidParameter):
        parse_attrs(attrs, HOST)
