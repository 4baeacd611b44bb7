"""Dockerfile text → `Node`s: the reference's line reader (moby's parser.Parse).

Physical lines become logical instruction lines: parser directives (`# escape=`,
`# syntax=`, `# check=`) before anything else, the escape token, line
continuations, comments and empty lines inside continuations, heredoc bodies
(when the dialect reads them). Each logical line is then split by `nodes`.

Errors are DockerfileError with the reader's bare message ("file with no
instructions", "unterminated heredoc", ...) and the line it concerns; the caller
decides how to prefix it (`parser.parse` says "failed to parse <name>: ...").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import heredocs
from .dialect import BUILD, Dialect
from .errors import DockerfileError
from .golang import lstrip
from .instructions import Heredoc
from .nodes import Node, node_from_line

_GO_RE_SPACE = r"[\t\n\f\r ]*"  # Go's \s
_DIRECTIVE = re.compile(rf"^#{_GO_RE_SPACE}([a-zA-Z][a-zA-Z0-9]*){_GO_RE_SPACE}={_GO_RE_SPACE}"
                        rf"(.+?){_GO_RE_SPACE}$", re.DOTALL)
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_HEREDOC_KEYWORDS = ("add", "copy", "run")


@dataclass
class Reading:
    nodes: list[Node]
    directives: dict[str, str] = field(default_factory=dict)  # "syntax", "escape", "check"
    escape: str = "\\"
    # what the reference prints before step 1 (about empty continuation lines)
    warnings: list[str] = field(default_factory=list)


class _Directives:
    """Parser directives: comment lines of the form `# key=value` before anything else."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.done = False
        self.escape = "\\"
        self.continuation = self._continuation_regex("\\")

    @staticmethod
    def _continuation_regex(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(r"([^" + e + r"])" + e + r"[ \t]*$|^" + e + r"[ \t]*$")

    def feed(self, line: str) -> bool:
        """Looks at one line; True when it was a directive."""
        if self.done:
            return False
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.values:
            raise ValueError(f"only one {key} parser directive can be used")
        self.values[key] = value
        if key == "escape":
            if value not in ("`", "\\"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self.continuation = self._continuation_regex(value)
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """(line without its continuation token, True when the logical line ends here)."""
        if self.continuation.search(line):
            return self.continuation.sub(lambda m: m.group(1) or "", line, count=1), False
        return line, True


def _physical_lines(text: str) -> list[str]:
    """Lines with their endings; only "\\n" ends a line, as Go's scanner."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return lstrip(s).startswith("#")


def read(text: str, dialect: Dialect = BUILD, escape: str = "\\") -> Reading:
    """All the instruction lines of `text`. `escape` other than the default acts as an
    escape directive on the first line (the builder reads ONBUILD triggers that way)."""
    directives = _Directives()
    if escape != "\\":
        directives.feed(f"# escape={escape}")
    lines = _physical_lines(text)
    nodes: list[Node] = []
    empty_continuations: list[str] = []
    line_no = 0
    i = 0
    while i < len(lines):
        raw = lines[i]
        i += 1
        token = lstrip(_trim_newline(raw))
        try:
            directives.feed(token)
        except ValueError as exc:
            raise DockerfileError(str(exc), line_no + 1) from None
        line_no += 1
        if dialect.max_line is not None and len(raw.encode()) > dialect.max_line + 1:
            raise DockerfileError(
                f"dockerfile line greater than max allowed size of {dialect.max_line}", line_no)
        if _is_comment(token):
            token = ""
        start = line_no
        logical, end_of_line = directives.trim_continuation(token)
        if end_of_line and not logical:
            continue
        pieces = [logical]
        had_empty = False
        while not end_of_line and i < len(lines):
            raw = lines[i]
            i += 1
            line_no += 1
            token = _trim_newline(raw)
            if _is_comment(token):
                continue
            if not lstrip(token):
                had_empty = True
                continue
            token, end_of_line = directives.trim_continuation(token)
            pieces.append(token)
        logical = "".join(pieces)
        if had_empty:
            empty_continuations.append(logical)
        try:
            node = node_from_line(logical, directives.escape, start, line_no, dialect)
        except ValueError as exc:
            raise DockerfileError(str(exc), start) from None
        if dialect.heredocs:
            i, line_no = _read_heredocs(node, logical, lines, i, line_no)
        nodes.append(node)
    if not nodes:
        raise DockerfileError("file with no instructions", 0)
    warnings = [f"[WARNING]: Empty continuation line found in:\n    {line}"
                for line in empty_continuations]
    if warnings:
        warnings.append(
            "[WARNING]: Empty continuation lines will become errors in a future release.")
    return Reading(nodes, dict(directives.values), directives.escape, warnings)


def _read_heredocs(node: Node, logical: str, lines: list[str], i: int,
                   line_no: int) -> tuple[int, int]:
    """Reads the bodies of the heredocs `logical` opens from lines[i:] into the node;
    (the next line's index, the last line number read)."""
    target = node.heredoc_target()
    if target.keyword.lower() not in _HEREDOC_KEYWORDS or target.json or "<<" not in logical:
        return i, line_no
    docs = []
    try:
        openers = heredocs.openers_in_line(logical)
    except DockerfileError as exc:
        raise DockerfileError(exc.message, node.line) from None
    for doc in openers:
        body: list[str] = []
        terminated = False
        while i < len(lines):
            raw = lines[i]
            i += 1
            line_no += 1
            candidate = _trim_newline(raw)
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                terminated = True
                break
            body.append(raw)
        if not terminated:
            raise DockerfileError("unterminated heredoc", node.line)
        docs.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp))
    target.heredocs = docs
    node.end_line = line_no
    return i, line_no
