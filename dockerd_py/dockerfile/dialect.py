"""The two readings of the Dockerfile language dockerd has, as explicit options.

`docker build` (Docker 20.10's legacy builder) and `docker commit --change` /
`docker import --change` (moby's BuildFromConfig, which reads change lines with
buildkit's newer parser and instruction checks) read the same language with a
few differences. Every difference is one field of `Dialect`; the reader, the
instruction checks and the word lexer consult it, so there is one implementation
of each with the two behaviours side by side.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    heredocs: bool
    """`<<EOF` bodies of RUN/COPY/ADD are read; False: the lines below a `<<EOF` stay
    instructions of their own (no change command takes a heredoc)."""

    max_line: int | None
    """The longest physical line in bytes (Go's bufio scanner limit); None: no limit."""

    json_whole_text: bool
    """The JSON form must be the whole rest of the line (json.Unmarshal); False: its first
    JSON value is enough and text after it is ignored (json.Decoder)."""

    lowercase_flag_errors: bool
    """Flag errors in buildkit's words ("unknown flag: --x"); False: 20.10's ("Unknown
    flag: x")."""

    zero_means_unset: bool
    """HEALTHCHECK --retries=0 and zero durations mean "not given"; False: refused
    ("--retries must be at least 1", "cannot be less than 1ms")."""

    bounded_durations: bool
    """Durations beyond Go's int64 are refused as Go refuses them; False: accepted."""

    pattern_substitutions: bool
    """`${V#p}`, `${V%p}`, `${V/p/r}` expand and a bad modifier is worded as 20.10 words
    it; False: they are refused, and every bad modifier is reported as
    "unsupported modifier (<modifier>) in substitution"."""


BUILD = Dialect(heredocs=True, max_line=64 * 1024 - 1, json_whole_text=False,
                lowercase_flag_errors=False, zero_means_unset=False, bounded_durations=True,
                pattern_substitutions=True)
"""docker build (Docker 20.10's legacy builder)."""

CHANGE = Dialect(heredocs=False, max_line=None, json_whole_text=True,
                 lowercase_flag_errors=True, zero_means_unset=True, bounded_durations=False,
                 pattern_substitutions=False)
"""docker commit --change and docker import --change (moby's BuildFromConfig)."""
