"""Variable expansion and word splitting of Dockerfile words, as moby's `shell/lex.go`.

`expand()` is ProcessWord: one word in, one string out, quotes removed and `$V`,
`${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`, `${V+x}`, `${V:?msg}`, `${V?msg}`,
`${V#pat}`, `${V##pat}`, `${V%pat}`, `${V%%pat}`, `${V/pat/rep}`, `${V//pat/rep}`
replaced. `expand_words()` is ProcessWords: the same, then split on unquoted
whitespace (EXPOSE, heredoc detection). Unset variables expand to "".

Not a POSIX shell: no command substitution, no field splitting inside ProcessWord,
a backslash escapes any character outside quotes and only `"`, `$` and itself inside
double quotes; single quotes cannot be escaped.

`Lexer(pattern_substitutions=False)` is the lexer of `--change` lines (see
`dialect.Dialect.pattern_substitutions`): no `#`, `%`, `/` operators, and buildkit's
wording of a bad modifier. Errors are DockerfileError("failed to process <word>: ...").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from .errors import DockerfileError
from .golang import SPACE, go_quote

_SPACE = frozenset(SPACE)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_EOF = ""


class _LexError(Exception):
    pass


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


class _Words:
    """Splits the expanded text into words; quoted text never splits (wordsStruct)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.buf = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in _SPACE:
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class Lexer:
    """moby's shell.Lex; the flags but the last exist for the reader's heredoc detection."""

    def __init__(self, escape: str = "\\", *, skip_unset: bool = False, raw_quotes: bool = False,
                 raw_escapes: bool = False, skip_process_quotes: bool = False,
                 pattern_substitutions: bool = True) -> None:
        self.escape = escape
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset = skip_unset
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.pattern_substitutions = pattern_substitutions

    def word(self, text: str, env: Mapping[str, str]) -> str:
        return self.process(text, env)[0]

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        return self.process(text, env)[1]

    def process(self, text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
        state = _State(self, text, env)
        try:
            return state.stop_on(_EOF, self.raw_escapes)
        except _LexError as exc:
            raise DockerfileError(f"failed to process {go_quote(text)}: {exc}") from None


class _State:
    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lex = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes

    # text/scanner's Peek and Next, "" at the end
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        """Reads up to `stop` (consumed) or the end: (text, words)."""
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lex.escape
        while self.peek() != _EOF:
            ch = self.peek()
            if stop != _EOF and ch == stop:
                self.next()
                return "".join(result), words.result()
            special = None
            if ch == "$":
                special = self.dollar
            elif ch == "<":
                special = self.possible_heredoc
            elif ch == "'" and not self.lex.skip_process_quotes:
                special = self.single_quote
            elif ch == '"' and not self.lex.skip_process_quotes:
                special = self.double_quote
            if special is not None:
                piece = special()
                result.append(piece)
                if ch == "$":
                    words.add_string(piece)
                else:
                    words.add_raw_string(piece)
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    result.append(ch)
                ch = self.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            result.append(ch)
        if stop != _EOF:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        escape = self.lex.escape
        while True:
            peeked = self.peek()
            if peeked == _EOF:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote")
            if peeked == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peeked == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self.peek()
                if after == _EOF:
                    continue  # an escape at the very end is dropped
                if after in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space = []
        while self.peek() in ("\t", "\r", " "):
            space.append(self.next())
        return "<<" + "".join(space)

    def name(self) -> str:
        """A variable name: letters, digits, _; or digits only; or one special parameter."""
        out: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not out and _is_digit(ch):
                while self.peek() != _EOF and _is_digit(self.peek()):
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset:
                return "$" + name
            return value
        self.next()
        if self.peek() == _EOF:
            raise _LexError("syntax error: missing '}'")
        if self.peek() in ("{", "}", ":"):
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset:
                return "${" + name + "}"
            return value
        modifier = ch
        null_is_unset = ch == ":"
        patterns = self.lex.pattern_substitutions
        if null_is_unset:
            ch = self.next()
            modifier += ch
            shown = (ch or "\ufffd") if patterns else ":" + (ch or "\ufffd")
            if not patterns and ch in ("#", "%", "/"):
                raise _LexError(f"unsupported modifier ({shown}) in substitution")
            if ch not in ("+", "-", "?"):
                self.word_until_brace(False)  # a missing "}" is reported first
                raise _LexError(f"unsupported modifier ({shown}) in substitution")
        elif not patterns and ch not in ("+", "-", "?"):
            raise _LexError(f"unsupported modifier ({ch or chr(0xFFFD)}) in substitution")
        elif ch not in ("+", "-", "?", "#", "%", "/"):
            # Docker 20.10's words; ${V-x}, ${V+x}, ${V#p}, ${V%p}, ${V/p/r} are newer
            raise _LexError("missing ':' in substitution")
        if ch == "/":
            return self.replace(name)
        pattern_op = ch in ("#", "%")
        word = self.word_until_brace(pattern_op)
        value, found = self.lookup(name)
        if self.lex.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        if ch == "-":
            return word if not found or (null_is_unset and value == "") else value
        if ch == "+":
            return "" if not found or (null_is_unset and value == "") else word
        if ch == "?":
            if not found:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(ch)  # "%%" and "##": the longest match
        if greedy:
            word = word[1:]
        return _trim_suffix(word, value, greedy) if ch == "%" else \
            _trim_prefix(word, value, greedy)

    def word_until_brace(self, raw_escapes: bool) -> str:
        try:
            return self.stop_on("}", raw_escapes)[0]
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise

    def replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern = self.stop_on("/", True)[0]
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        replacement = self.word_until_brace(True)
        value, found = self.lookup(name)
        if self.lex.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if replace_all:
            return _go_replace_all(regex, value, replacement)
        match = regex.search(value)
        if match is None:
            return value
        return value[:match.start()] + replacement + value[match.end():]


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, backslash escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue  # the escape only kept `}` and `/` from ending the ${}
            if following not in ("*", "?", "\\"):
                shown = following if following else "\ufffd"
                raise _LexError(f"invalid pattern ({pattern}) in substitution: "
                                f"invalid escape '\\{shown}'")
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverses a pattern keeping each escape before the character it escapes."""
    tokens: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # the shortest rightmost match is the shortest leftmost match of the reversed strings
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_TEMPLATE_REF = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _go_replace_all(regex: re.Pattern[str], value: str, template: str) -> str:
    """Go's Regexp.ReplaceAllString: an empty match right after a match is not replaced;
    in the template `$$` is a dollar, `$0`/`${0}` the match, other `$name` (the pattern
    has no groups) nothing."""
    def expanded(match: re.Match[str]) -> str:
        def ref(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name = m.group(1) or m.group(2)
            return match.group(0) if name.isdigit() and int(name) == 0 else ""
        return _TEMPLATE_REF.sub(ref, template)

    out: list[str] = []
    last_end = 0
    search = 0
    while search <= len(value):
        match = regex.search(value, search)
        if match is None:
            break
        start, end = match.span()
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(expanded(match))
        last_end = end
        search = search + 1 if search + 1 > end else end
    out.append(value[last_end:])
    return "".join(out)


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """moby's ProcessWord: one word, quotes removed, variables replaced."""
    return Lexer(escape).word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """moby's ProcessWords: expanded, then split on whitespace outside quotes."""
    return Lexer(escape).words(word, env)


def expand_heredoc(content: str, env: Mapping[str, str]) -> str:
    """COPY/ADD heredoc content: variables expanded, quotes left as they are, backslash
    escapes (whatever the escape directive says)."""
    return Lexer("\\", skip_process_quotes=True).word(content, env)
