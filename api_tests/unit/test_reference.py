"""dockerd_py.engine.reference against distribution/reference's own test tables."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerd_py.engine.reference import (
    InvalidReference,
    Reference,
    familiar_match,
    looks_like_image_id,
    parse_normalized,
    path_match,
    with_default_tag,
    with_tag,
)
from dockerd_py.errors import InvalidParameter

HEX64 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
DIGEST = "sha256:" + HEX64

# normalize_test.go: TestValidateReferenceName + TestValidateRemoteName
VALID_NAMES = [
    "docker/docker", "library/debian", "debian", "localhost/library/debian",
    "localhost/debian", "LOCALDOMAIN/library/debian", "LOCALDOMAIN/debian",
    "docker.io/docker/docker", "docker.io/library/debian", "docker.io/debian",
    "index.docker.io/docker/docker", "index.docker.io/library/debian", "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker", "127.0.0.1:5000/library/debian", "127.0.0.1:5000/debian",
    "192.168.0.1", "192.168.0.1:80", "192.168.0.1:8/debian", "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker", "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "Docker/docker", "DOCKER/docker",
    "docker-rules/docker", "docker---rules/docker", "doc/docker", "d/docker", "jess/t",
    "dock__er/docker",
]
INVALID_NAMES = [
    "https://github.com/docker/docker", "docker/Docker", "-docker", "-docker/docker",
    "-docker.io/docker/docker", "docker///docker", "docker.io/docker/Docker",
    "docker.io/docker///docker", "[fc00::1]", "[fc00::1]:5000", "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian", "[2001:db8:3:4::192.0.2.33]:5000/debian",
    "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    "docker-/docker", "-docker-/docker", "____/____", "_docker/_docker", "dock..er/docker",
    "dock_.er/docker", "dock-.er/docker", "docker/", "", ":justtag", "@" + DIGEST,
    "aa/asdf$$^/aa", "[2001:db8::1]", "[2001:db8::1]:5000", "[2001:db8::1]:tag",
    "[fe80::1%@invalidzone]:5000/repo", "busybox\n", "busybox:" + "t" * 129,
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4 + "/docker",
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names(name: str) -> None:
    parse_normalized(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidReference):
        parse_normalized(name)


# TestParseRepositoryInfo: (path, familiar name, full name, other spellings, domain)
REPOSITORY_INFO = [
    ("fooo", "localhost/fooo", "localhost/fooo", [], "localhost"),
    ("fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", [], "localhost"),
    ("fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", [], "LOCALDOMAIN"),
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", ["index.docker.io/fooo/bar"], "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", ["library/ubuntu"], "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", [], "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", [], "docker.io"),
    ("private/moonbase", "127.0.0.1:8000/private/moonbase", "127.0.0.1:8000/private/moonbase",
     [], "127.0.0.1:8000"),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", [], "example.com"),
    ("privatebasee", "example.com:8000/privatebasee", "example.com:8000/privatebasee", [],
     "example.com:8000"),
    ("library/ubuntu-12.04-base", "ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base",
     ["index.docker.io/library/ubuntu-12.04-base"], "docker.io"),
    ("library/foo", "foo", "docker.io/library/foo", ["docker.io/foo"], "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", [], "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", [], "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", [], "Foo"),
    ("bar", "FOO/bar", "FOO/bar", [], "FOO"),
]


@pytest.mark.parametrize(("path", "familiar", "full", "others", "domain"), REPOSITORY_INFO)
def test_repository_info(path: str, familiar: str, full: str, others: list[str],
                         domain: str) -> None:
    for spelling in [familiar, full, *others]:
        r = parse_normalized(spelling)
        assert (r.domain, r.path) == (domain, path)
        assert r.familiar_name == familiar
        assert r.name == full == r.string()
        assert (r.tag, r.digest) == (None, None)


@pytest.mark.parametrize(("text", "domain", "path"), [
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
    ("dbcc1", "docker.io", "library/dbcc1"),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo"),
    ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com"),
])
def test_split_domain(text: str, domain: str, path: str) -> None:
    r = parse_normalized(text)
    assert (r.domain, r.path) == (domain, path)


@pytest.mark.parametrize(("text", "full", "tag", "digest"), [
    ("busybox:latest", "docker.io/library/busybox:latest", "latest", None),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "Uppercase", None),
    ("test.com:5000", "docker.io/library/test.com:5000", "5000", None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000/repo:5050", "5050", None),
    ("b.gcr.io/test.example.com/my-app:test.example.com",
     "b.gcr.io/test.example.com/my-app:test.example.com", "test.example.com", None),
    ("test:5000/repo@" + DIGEST, "test:5000/repo@" + DIGEST, None, DIGEST),
    ("xn--7o8h.com/myimage:xn--7o8h.com@" + DIGEST,
     "xn--7o8h.com/myimage:xn--7o8h.com@" + DIGEST, "xn--7o8h.com", DIGEST),
    ("[2001:db8::1]:5000/repo:tag@" + DIGEST, "[2001:db8::1]:5000/repo:tag@" + DIGEST, "tag",
     DIGEST),
    ("validname@sha512:" + "f" * 128, "docker.io/library/validname@sha512:" + "f" * 128, None,
     "sha512:" + "f" * 128),  # moby links crypto/sha512, so go-digest accepts it
    ("example.com/" + "a" * 255 + ":tag", "example.com/" + "a" * 255 + ":tag", "tag", None),
])
def test_tags_and_digests(text: str, full: str, tag: str | None, digest: str | None) -> None:
    r = parse_normalized(text)
    assert r.string() == full
    assert (r.tag, r.digest) == (tag, digest)


def test_tag_and_digest_familiar() -> None:
    short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
    r = parse_normalized(short)
    assert r.string() == "docker.io/library/" + short
    assert r.familiar() == short
    assert str(r) == r.string()


@pytest.mark.parametrize(("text", "message"), [
    ("Uppercase:tag",
     "invalid reference format: repository name (library/Uppercase) must be lowercase"),
    ("library/Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag",
     "invalid reference format: repository name (Uppercase/lowercase) must be lowercase"),
    ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
     "invalid repository name (1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a),"
     " cannot specify 64-byte hexadecimal strings"),
    (":justtag", "invalid reference format"),
    ("domain/" + "a" * 256 + ":tag", "repository name must not be more than 255 characters"),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    ("repo@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("validname@invaliddigest:" + HEX64, "unsupported digest algorithm"),
    ("a.b/Foo@sha256:" + HEX64, "invalid reference format: repository name (Foo@sha256) "
     "must be lowercase"),
])
def test_error_messages(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as exc:
        parse_normalized(text)
    assert str(exc.value) == message
    assert isinstance(exc.value, InvalidParameter) and isinstance(exc.value, ValueError)


@pytest.mark.parametrize(("text", "expected"), [  # TestParseDockerRef, without tag+digest
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    ("busybox@sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582",
     "docker.io/library/busybox@sha256:"
     "e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
    ("localhost:5000/x:1", "localhost:5000/x:1"),
])
def test_with_default_tag(text: str, expected: str) -> None:
    assert with_default_tag(parse_normalized(text)).string() == expected


def test_with_tag() -> None:
    r = parse_normalized("busybox@" + DIGEST)
    assert with_tag(r, "1.36").familiar() == "busybox:1.36@" + DIGEST
    for bad in ["-foo", "", "a" * 129, "a/b", "ü"]:
        with pytest.raises(InvalidReference, match="^invalid tag format$"):
            with_tag(r, bad)


def test_familiar_forms() -> None:
    assert parse_normalized("docker.io/library/busybox:1").familiar() == "busybox:1"
    assert parse_normalized("user/x:2").familiar() == "user/x:2"
    assert parse_normalized("localhost:5000/x").familiar() == "localhost:5000/x"
    assert Reference("docker.io", "library/a/b").familiar_name == "library/a/b"


@pytest.mark.parametrize(("text", "expected"), [
    ("sha256:" + HEX64, True), (HEX64, True), ("ffff", True), ("sha256:ffff", True),
    ("fff", False), ("sha256:fff", False), ("FFFF", False), ("f" * 65, False),
    ("busybox", False), ("sha512:ffff", False), ("", False), ("ffff\n", False),
])
def test_looks_like_image_id(text: str, expected: bool) -> None:
    assert looks_like_image_id(text) is expected


@pytest.mark.parametrize(("text", "pattern", "expected"), [  # TestMatch
    ("foo", "foo/**/ba[rz]", False),
    ("foo/any/bat", "foo/**/ba[rz]", False),
    ("foo/a/bar", "foo/**/ba[rz]", True),
    ("foo/b/baz", "foo/**/ba[rz]", True),
    ("foo/c/baz:tag", "foo/**/ba[rz]", True),
    ("foo/c/baz:tag", "foo/*/baz:tag", True),
    ("foo/c/baz:tag", "foo/c/baz:tag", True),
    ("example.com/foo/c/baz:tag", "*/foo/c/baz", True),
    ("example.com/foo/c/baz:tag", "example.com/foo/c/baz", True),
    ("busybox:latest", "busy*", True),
    ("busybox:latest", "busybox:lat*", True),
    ("busybox:latest", "docker.io/library/busybox", False),
    ("foo", "[-x]", False),  # bad pattern: no match, as moby's image filter
])
def test_familiar_match(text: str, pattern: str, expected: bool) -> None:
    assert familiar_match(pattern, parse_normalized(text)) is expected


def test_familiar_match_canonical() -> None:
    r = parse_normalized("busybox:latest")
    assert familiar_match("docker.io/library/busybox", r, include_canonical=True)
    assert familiar_match("docker.io/*/busybox:latest", r, include_canonical=True)


# Go src/path/match_test.go; None = ErrBadPattern
GO_MATCH_TESTS = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True), ("a\\*b", "a*b", True), ("a\\*b", "ab", False),
    ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True),
    ("[x\\-]", "x", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False), ("[\\-x]", "x", True),
    ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("[]a]", "]", None), ("[-]", "-", None),
    ("[x-]", "x", None), ("[x-]", "-", None), ("[x-]", "z", None), ("[-x]", "x", None),
    ("[-x]", "-", None), ("[-x]", "a", None), ("\\", "a", None), ("[a-b-c]", "a", None),
    ("[", "a", None), ("[^", "a", None), ("[^bc", "a", None), ("a[", "a", None),
    ("a[", "ab", None), ("a[", "x", None), ("a/b[", "x", None), ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), GO_MATCH_TESTS)
def test_go_path_match(pattern: str, name: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="syntax error in pattern"):
            path_match(pattern, name)
    else:
        assert path_match(pattern, name) is expected


# -- properties ------------------------------------------------------------------------------

_component = st.from_regex(r"[a-z0-9]{1,5}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,5}){0,2}",
                           fullmatch=True)
_path = st.lists(_component, min_size=1, max_size=3).map("/".join)
_domain = st.sampled_from(["", "docker.io/", "index.docker.io/", "localhost/", "a.b:5000/",
                           "localhost:5000/", "[::1]:5000/", "Reg.Example/"])
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_digest = st.from_regex(r"[a-f0-9]{64}", fullmatch=True).map("sha256:".__add__)


@given(_domain, _path, st.none() | _tag, st.none() | _digest)
def test_roundtrip(domain: str, path: str, tag: str | None, digest: str | None) -> None:
    text = domain + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if re.fullmatch(r"[a-f0-9]{64}", text):
        return
    r = parse_normalized(text)
    assert (r.tag, r.digest) == (tag, digest)
    assert parse_normalized(r.string()) == r
    first = r.familiar_name.partition("/")[0]
    if r.domain != "docker.io" or ("." not in first and first != "localhost"):
        # like Go's FamiliarString, "docker.io/a.b/c" prints as "a.b/c", which names a registry
        assert parse_normalized(r.familiar()) == r
    assert r.string().startswith(r.name) and r.familiar().startswith(r.familiar_name)


@given(st.text(max_size=80))
def test_never_crashes(text: str) -> None:
    try:
        r = parse_normalized(text)
    except InvalidReference:
        return
    assert parse_normalized(r.string()) == r


def _glob_oracle(pattern: str, name: str) -> bool:
    rx = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name, re.DOTALL) is not None


@given(st.text("ab/*?", max_size=8), st.text("ab/", max_size=8))
def test_path_match_matches_oracle(pattern: str, name: str) -> None:
    assert path_match(pattern, name) is _glob_oracle(pattern, name)
