"""Docker image references, parsed and printed exactly as github.com/distribution/reference.

A reference is ``[domain/]path[:tag][@digest]``. Users type *familiar* forms
(``busybox``, ``user/app:1``); the daemon stores *normalized* ones
(``docker.io/library/busybox``) and shows familiar ones again in ``RepoTags``.

    >>> r = parse_normalized("busybox")
    >>> r.string(), with_default_tag(r).familiar()
    ('docker.io/library/busybox', 'busybox:latest')

Pure functions, no I/O. Error messages are distribution's, because clients print them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace

from dockerd_py.errors import InvalidParameter

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255


class InvalidReference(InvalidParameter, ValueError):
    """A string that is not a valid image reference (HTTP 400)."""


# -- grammar (regexp.go); Go's \w and [[:xdigit:]] are ASCII-only ---------------------------
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|\[(?:[a-fA-F0-9:]+)\])"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"

# Always used with fullmatch(): Python's `$` would also accept a trailing newline.
_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII
)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")")
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
# moby's containerd image service: a short ID is 4..64 lowercase hex, optionally "sha256:".
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{4,64}")

# go-digest algorithms moby registers (crypto/sha256 and crypto/sha512), hex lengths.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_RE = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True)
class Reference:
    """A normalized named reference; ``domain`` is never empty after parse_normalized()."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Fully qualified repository, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def familiar_name(self) -> str:
        """Repository as users type it: ``busybox``, ``user/x``, ``localhost:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
        # Only one level is stripped: "library/a/b" stays as is (normalize.go).
        if rest != self.path and "/" not in rest:
            return rest
        return self.path

    def string(self) -> str:
        """Fully qualified form, e.g. ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """Familiar form, e.g. ``busybox:latest`` or ``busybox@sha256:...``."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.string()


@functools.lru_cache(maxsize=4096)  # pure and hot: every listing renders every tag
def parse_normalized(s: str) -> Reference:
    """ParseNormalizedNamed: a familiar or full reference -> normalized Reference."""
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(s)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    return _parse(f"{domain}/{remainder}")


def with_default_tag(r: Reference) -> Reference:
    """TagNameOnly: add ``:latest`` when the reference has neither tag nor digest."""
    if r.tag is None and r.digest is None:
        return replace(r, tag=DEFAULT_TAG)
    return r


def with_tag(r: Reference, tag: str) -> Reference:
    """WithTag: set (or replace) the tag, keeping any digest."""
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference("invalid tag format")
    return replace(r, tag=tag)


def looks_like_image_id(s: str) -> bool:
    """True if ``s`` may name an image by ID: ``[sha256:]<4..64 lowercase hex>``.

    This is moby's containerd image service rule (``truncatedID`` in
    daemon/containerd/image.go); the graphdriver store accepted shorter prefixes,
    we do not. Many such strings are also valid names (``dbcc1``), so callers
    look the name up first and fall back to an ID-prefix search, as moby does.
    """
    return _IMAGE_ID_RE.fullmatch(s) is not None


def familiar_match(pattern: str, r: Reference, *, include_canonical: bool = False) -> bool:
    """The ``reference`` filter of ``GET /images/json`` (FamiliarMatch).

    Matches ``pattern`` with Go's path.Match against the familiar string, then the
    familiar name without tag. moby master also tries the canonical forms
    (``include_canonical``). A malformed pattern matches nothing, as in moby.
    """
    targets = [r.familiar(), r.familiar_name]
    if include_canonical:
        targets += [with_default_tag(r).string(), r.name]
    try:
        return any(path_match(pattern, t) for t in targets)
    except ValueError:
        return False


# -- parsing internals -----------------------------------------------------------------------


def _split_docker_domain(name: str) -> tuple[str, str]:
    """splitDockerDomain: decide whether the first component is a registry host."""
    first, sep, rest = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    # localhost, a dotted host, host:port, or an uppercase first component is a registry.
    if first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse(s: str) -> Reference:
    """reference.Parse for a string that carries a domain."""
    if not s:
        raise InvalidReference("repository name must have at least one component")
    m = _REFERENCE_RE.fullmatch(s)
    if m is None:
        lower = s.lower()
        if lower != s and _REFERENCE_RE.fullmatch(lower):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    name, tag, digest = m.groups()
    nm = _ANCHORED_NAME_RE.fullmatch(name)
    assert nm is not None  # the reference grammar embeds the name grammar
    domain, path = nm.group(1) or "", nm.group(2)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if digest is not None:
        validate_digest(digest)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def validate_digest(d: str) -> None:
    """go-digest Digest.Validate, with moby's registered algorithms."""
    alg, sep, encoded = d.partition(":")
    if not sep or not alg or not encoded:
        raise InvalidReference("invalid checksum digest format")
    size = _DIGEST_HEX_LENGTHS.get(alg)
    if size is None:
        if not _DIGEST_RE.fullmatch(d):
            raise InvalidReference("invalid checksum digest format")
        raise InvalidReference("unsupported digest algorithm")
    if len(encoded) != size:
        raise InvalidReference("invalid checksum digest length")
    if not _HEX_RE.fullmatch(encoded):
        raise InvalidReference("invalid checksum digest format")


# -- Go's path.Match -------------------------------------------------------------------------


def path_match(pattern: str, name: str) -> bool:
    """Go ``path.Match``: ``*`` and ``?`` never match ``/``; ``[...]`` classes; ``\\`` escapes.

    Raises ValueError("syntax error in pattern") for a malformed pattern, like Go
    (which also checks the rest of the pattern before answering False).
    """
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return "/" not in name  # trailing '*' eats the rest unless it has a '/'
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star and (rest := _after_star(chunk, name, last=not pattern)) is not None:
            name = rest
            continue
        while pattern:  # report syntax errors in the unread part, as Go does
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _after_star(chunk: str, name: str, *, last: bool) -> str | None:
    """Let a '*' eat 1.. non-'/' characters until ``chunk`` matches; None if it never does."""
    for i in range(len(name)):
        if name[i] == "/":
            break
        rest = _match_chunk(chunk, name[i + 1 :])
        if rest is not None and not (last and rest):  # the last chunk must end the name
            return rest
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    stripped = pattern.lstrip("*")
    star, pattern = stripped != pattern, stripped
    in_range, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1 if i + 1 < len(pattern) else 0
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            return star, pattern[:i], pattern[i:]
        i += 1
    return star, pattern, ""


def _match_chunk(chunk: str, s: str) -> str | None:
    """Match a star-free chunk at the start of ``s``; the rest of ``s`` or None."""
    failed = False
    while chunk:
        failed = failed or not s
        c = chunk[0]
        if c == "[":
            ch = ""
            if not failed:
                ch, s = s[0], s[1:]
            chunk = chunk[1:]
            negated = chunk[:1] == "^"
            chunk = chunk[1:] if negated else chunk
            matched, n_ranges = False, 0
            while True:
                if chunk[:1] == "]" and n_ranges > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                matched = matched or (not failed and lo <= ch <= hi)
                n_ranges += 1
            failed = failed or matched == negated
        elif c == "?":
            if not failed:
                failed, s = s[0] == "/", s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise ValueError("syntax error in pattern")
            if not failed:
                failed, s = chunk[0] != s[0], s[1:]
            chunk = chunk[1:]
    return None if failed else s


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise ValueError("syntax error in pattern")
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise ValueError("syntax error in pattern")
    ch, rest = chunk[0], chunk[1:]
    if not rest:
        raise ValueError("syntax error in pattern")
    return ch, rest
