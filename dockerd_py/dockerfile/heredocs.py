"""Heredoc openers in an instruction line: `<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF`.

The reader uses them to know which bodies to read below a RUN/COPY/ADD line, and
the instruction checks to tell COPY/ADD's inline files from their sources.
"""

from __future__ import annotations

import re

from .errors import DockerfileError
from .instructions import Heredoc
from .lexer import Lexer

_HEREDOC_WORD = re.compile(r"(\d*)<<(-?)\s*([^<]*)", re.DOTALL | re.ASCII)  # fullmatch


def opener(word: str) -> Heredoc | None:
    """A heredoc opener → Heredoc without content; None when `word` is not one.
    DockerfileError when its delimiter does not lex (an unterminated quote)."""
    match = _HEREDOC_WORD.fullmatch(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    plain = Lexer("\\", skip_unset=True).words(rest, {})
    if len(plain) != 1:
        return None
    raw = Lexer("\\", skip_unset=True, raw_quotes=True).words(rest, {})
    quotes = plain[0].count("'") + plain[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=plain[0], content="", expand=quotes == raw_quotes,
                   chomp=match.group(2) == "-")


def opener_or_none(word: str) -> Heredoc | None:
    try:
        return opener(word)
    except DockerfileError:
        return None


def openers_in_line(line: str) -> list[Heredoc]:
    """The openers of a logical line, in order; DockerfileError as `opener`."""
    lexer = Lexer("\\", skip_unset=True, raw_quotes=True, raw_escapes=True)
    try:
        words = lexer.words(line, {})
    except DockerfileError:
        return []
    docs = []
    for word in words:
        doc = opener(word)
        if doc is not None:
            docs.append(doc)
    return docs
