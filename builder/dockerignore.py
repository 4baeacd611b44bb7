""".dockerignore: reading the file and matching context paths, as moby/patternmatcher.

Patterns are anchored at the context root and use Go's filepath.Match syntax (`*`,
`?`, `[...]`, backslash escapes) plus `**` for any number of directories; a path is
excluded when the last pattern that matches it, or one of its parent directories,
is not a `!` exception. The walk of the context asks `can_skip_dir()` before
descending into an excluded directory.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from dockerd_py.dockerfile.errors import DockerfileError

_BOM = "\ufeff"
_REGEX_SPECIALS = frozenset(".+()|{}$")


def clean(path: str) -> str:
    """Go's path/filepath.Clean for "/"-separated paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore (moby's ignorefile.ReadAll): `#` lines skipped,
    whitespace trimmed, each pattern cleaned and made relative ("/a" is "a")."""
    patterns: list[str] = []
    for number, line in enumerate(text.split("\n")):
        if number == 0:
            line = line.removeprefix(_BOM)
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip(_GO_SPACE)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip(_GO_SPACE)
        if pattern:
            pattern = clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


_GO_SPACE = "\t\n\v\f\r \x85\xa0"


@dataclass(frozen=True)
class _Pattern:
    text: str        # cleaned, without the "!"
    exclusion: bool
    kind: str        # "exact", "prefix", "suffix", "regexp"
    regex: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]  # **/foo matches foo
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(text: str, exclusion: bool) -> _Pattern:
    """patternmatcher's compile: plain text stays an exact (or prefix/suffix) comparison,
    anything with wildcards becomes a regex."""
    regex = ["^"]
    kind = "exact"
    i = 0
    n = len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i == n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex.append(".*")
                        kind = "regexp"
                else:
                    regex.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                regex.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            regex.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_SPECIALS:
            regex.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                regex.append("\\" + text[i])
                i += 1
                kind = "regexp"
            else:
                regex.append("\\\\")
        elif ch in "[]":
            regex.append(ch)
            kind = "regexp"
        else:
            regex.append(ch)
        first = False
    compiled = None
    if kind == "regexp":
        regex.append(r"\Z")  # Go's $: the very end, never before a final newline
        compiled = _regex("".join(regex))
    return _Pattern(text, exclusion, kind, compiled)


def _regex(source: str) -> re.Pattern[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" for "[[": fine here
            return re.compile(source)
    except re.error:
        raise DockerfileError("syntax error in pattern") from None


def _check_syntax(pattern: str) -> None:
    """Go's filepath.Match(pattern, ".") error: malformed `[...]` classes or a trailing
    backslash are a syntax error."""
    i, n = 0, len(pattern)

    def escaped_char(j: int) -> int:
        """Index after one class character (which may be escaped); -1 when malformed."""
        if j >= n or pattern[j] in "-]":
            return -1
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                return -1
        return j + 1

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise DockerfileError("syntax error in pattern")
            i += 2
            continue
        if ch != "[":
            i += 1
            continue
        i += 1
        if i < n and pattern[i] == "^":
            i += 1
        ranges = 0
        while True:
            if i < n and pattern[i] == "]" and ranges > 0:
                i += 1
                break
            j = escaped_char(i)
            if j < 0:
                raise DockerfileError("syntax error in pattern")
            i = j
            if i < n and pattern[i] == "-":
                j = escaped_char(i + 1)
                if j < 0:
                    raise DockerfileError("syntax error in pattern")
                i = j
            ranges += 1


class Matcher:
    """Decides which context paths a list of .dockerignore patterns excludes.

    The reference (the docker CLI's context walk, moby/go-archive over patternmatcher)
    decides top-down: each directory's per-pattern results are handed to its entries
    (MatchesUsingParentResults), and an excluded directory is skipped whole unless an
    exception pattern's text starts with "<dir>/". `matches` follows that walk for one
    path, so it says what the reference's context would hold, and applying the patterns
    again to a context the CLI already filtered changes nothing.
    """

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip(_GO_SPACE)
            if not text:
                continue
            text = clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerfileError('illegal exclusion pattern: "!"')
                text = text[1:]
            _check_syntax(text)
            self.patterns.append(_compile(text, exclusion))
        # directory → (excluded, per-pattern matches, skipped whole): a walk asks about
        # every entry of a directory, so each directory is decided once
        self._dirs: dict[str, tuple[bool, list[bool], bool]] = {}

    def _step(self, path: str, parent: list[bool] | None) -> tuple[bool, list[bool]]:
        """patternmatcher's MatchesUsingParentResults: (excluded, per-pattern matches)."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = parent[i] if parent is not None else False
            if not hit:
                if pattern.exclusion != matched:
                    continue  # cannot change the outcome (and is recorded as no match)
                hit = pattern.match(path)
                if not hit and parent is None and "/" in path:
                    parts = path.split("/")[:-1]
                    hit = any(pattern.match("/".join(parts[: n + 1])) for n in range(len(parts)))
            info[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, info

    def _skips(self, directory: str) -> bool:
        """The reference's rule for an excluded directory: skipped whole unless an exception
        pattern's text starts with "<directory>/"."""
        prefix = directory + "/"
        return not any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def _directory(self, directory: str) -> tuple[bool, list[bool], bool]:
        """(excluded, per-pattern matches, skipped whole, by itself or with a parent)."""
        known = self._dirs.get(directory)
        if known is not None:
            return known
        parent, _, _ = directory.rpartition("/")
        info: list[bool] | None = None
        if parent:
            _, info, skipped = self._directory(parent)
            if skipped:
                known = (True, info, True)
                self._dirs[directory] = known
                return known
        matched, info = self._step(directory, info)
        known = (matched, info, matched and self._skips(directory))
        self._dirs[directory] = known
        return known

    def _excluded(self, path: str) -> bool:
        parent, _, _ = path.rpartition("/")
        info: list[bool] | None = None
        if parent:
            _, info, skipped = self._directory(parent)
            if skipped:
                return True  # inside a skipped directory
        return self._step(path, info)[0]

    def matches(self, path: str) -> bool:
        """True when `path` (relative to the context root, "/"-separated) is excluded."""
        path = clean(path)
        if path == "." or not self.patterns:
            return False  # the context root itself is never excluded
        return self._excluded(path)

    def can_skip_dir(self, path: str) -> bool:
        """True when the directory is excluded and no `!` pattern re-includes anything below
        it (by the reference's rule above), so the walk need not descend."""
        path = clean(path)
        if path == "." or not self.patterns:
            return False
        return self._excluded(path) and self._skips(path)
