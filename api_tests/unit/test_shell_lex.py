"""dockerd_py.dockerfile.lexer: word expansion as moby's shell/lex.go (ProcessWord/Words).

A table of the reference's documented examples (Dockerfile reference, "Environment
replacement"), the error messages, and property tests: generated words built from
tokens whose meaning is known (literals, escapes, quotes, `$V`, `${V}`, `${V:-w}`,
`${V:+w}`, `${V-w}`, `${V+w}`) expand to what a small model of those tokens says, with
either escape token. test_dockerfile_parser.py checks generated words against Docker
20.10 itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dockerd_py.dockerfile.errors import DockerfileError
from dockerd_py.dockerfile.golang import go_quote
from dockerd_py.dockerfile.lexer import expand, expand_heredoc, expand_words

ENV = {"FOO": "/bar", "abc": "hello", "empty": "", "spaced": "a b  c", "x": "a/b/c.tar.gz"}


@pytest.mark.parametrize(("word", "expected"), [
    # the reference's own examples
    ("${FOO}", "/bar"),
    ("$FOO", "/bar"),
    ("\\$FOO", "$FOO"),
    ("\\${FOO}", "${FOO}"),
    ("${FOO}_bar", "/bar_bar"),
    ("$FOO_bar", ""),                      # the name runs on: FOO_bar is unset
    ("${abc:-word}", "hello"),
    ("${unset:-word}", "word"),
    ("${empty:-word}", "word"),
    ("${empty-word}", ""),                 # without ":" only unset counts
    ("${unset-word}", "word"),
    ("${abc:+word}", "word"),
    ("${unset:+word}", ""),
    ("${empty:+word}", ""),
    ("${empty+word}", "word"),
    ("${unset:-$FOO}", "/bar"),            # the word is expanded too
    ("${unset:-${abc:+x$FOO}}", "x/bar"),
    ("${unset:-a b}", "a b"),
    # ${var#pattern} and friends
    ("${x#*/}", "b/c.tar.gz"),
    ("${x##*/}", "c.tar.gz"),
    ("${x%.*}", "a/b/c.tar"),
    ("${x%%.*}", "a/b/c"),
    ("${x/\\//_}", "a_b/c.tar.gz"),
    ("${x//\\//_}", "a_b_c.tar.gz"),
    ("${x/?/X}", "X/b/c.tar.gz"),
    ("${x#nomatch}", "a/b/c.tar.gz"),
    # quoting
    ("'$FOO'", "$FOO"),
    ('"$FOO"', "/bar"),
    ('"a\\"b"', 'a"b'),
    ('"a\\$b"', "a$b"),
    ('"a\\\\b"', "a\\b"),
    ('"a\\nb"', "a\\nb"),                  # other escapes stay inside double quotes
    ("a\\nb", "anb"),                      # ... and escape anything outside
    ("'a\\b'", "a\\b"),
    ("a'b c'd", "ab cd"),
    ('a"b c"d', "ab cd"),
    ('"' + "'" + '"', "'"),
    ("'\"'", '"'),
    # odd corners kept as the reference
    ("$", "$"),
    ("a$", "a$"),
    ("$/", "$/"),
    ("trailing\\", "trailing"),
    ("$1x", "x"),                          # positional: digits only
    ("$$", ""),                            # special parameter, unset
    ("${FOO}}", "/bar}"),
    ("$unset", ""),
    ("caf\u00e9$FOO", "caf\u00e9/bar"),
    ("$\u00e9t\u00e9", ""),                # letters beyond ASCII make names
])
def test_documented_examples(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


@pytest.mark.parametrize(("word", "message"), [
    ("${unset:?}", 'failed to process "${unset:?}": unset: is not allowed to be unset'),
    ("${unset?}", 'failed to process "${unset?}": unset: is not allowed to be unset'),
    ("${empty:?}", 'failed to process "${empty:?}": empty: is not allowed to be empty'),
    ("${unset:?set it}", 'failed to process "${unset:?set it}": unset: set it'),
    ("${}", 'failed to process "${}": syntax error: bad substitution'),
    ("${:a}", 'failed to process "${:a}": syntax error: bad substitution'),
    ("${{a}", 'failed to process "${{a}": syntax error: bad substitution'),
    ("${", 'failed to process "${": syntax error: missing \'}\''),
    ("${a:-b", 'failed to process "${a:-b": syntax error: missing \'}\''),
    # as Docker 20.10 words these
    ("${a=b}", 'failed to process "${a=b}": missing \':\' in substitution'),
    ("${a", 'failed to process "${a": missing \':\' in substitution'),
    ("${a:=b}", 'failed to process "${a:=b}": unsupported modifier (=) in substitution'),
    ("${a:#b}", 'failed to process "${a:#b}": unsupported modifier (#) in substitution'),
    ("${a:", 'failed to process "${a:": syntax error: missing \'}\''),
    ("${a:=b", 'failed to process "${a:=b": syntax error: missing \'}\''),
    ("'abc", 'failed to process "\'abc": '
             "unexpected end of statement while looking for matching single-quote"),
    ('"abc', 'failed to process "\\"abc": '
             "unexpected end of statement while looking for matching double-quote"),
    ("${x/a", 'failed to process "${x/a": syntax error: missing \'/\' in ${}'),
])
def test_errors(word: str, message: str) -> None:
    with pytest.raises(DockerfileError) as exc:
        expand(word, ENV)
    assert exc.value.message == message


def test_backtick_escape() -> None:
    assert expand("`$FOO", ENV, "`") == "$FOO"
    assert expand("C:\\path\\$abc", ENV, "`") == "C:\\path\\hello"
    assert expand('"a`"b"', ENV, "`") == 'a"b'
    assert expand("a\\b", ENV, "`") == "a\\b"


@pytest.mark.parametrize(("word", "expected"), [
    ("$spaced", ["a", "b", "c"]),
    ('"$spaced"', ["a b  c"]),
    ("80 $FOO", ["80", "/bar"]),
    ('a "" b', ["a", "b"]),
    ("a\\ b c", ["a b", "c"]),
    ("  lead  trail  ", ["lead", "trail"]),
    ("x${spaced}y", ["xa", "b", "cy"]),
    ("a${unset:-b c}d", ["ab", "cd"]),
    ("cat <<  EOF", ["cat", "<<  EOF"]),   # heredoc openers stay one word
    ("", []),
])
def test_expand_words(word: str, expected: list[str]) -> None:
    assert expand_words(word, ENV) == expected


def test_heredoc_content_keeps_quotes() -> None:
    assert expand_heredoc("echo '$abc' \"$abc\" \\$abc\n", ENV) == "echo 'hello' \"hello\" $abc\n"


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n\t\x01\u00e9') == '"a\\"b\\\\c\\n\\t\\x01\u00e9"'


# --- property tests: generated words against a model of their tokens ------------------

NAMES = ["A", "B", "E", "U", "long_name1"]  # U is never set
PLAIN = "abcXYZ019_-./:,=@+%#!~*?"  # characters with no meaning to the lexer


@dataclass(frozen=True)
class Token:
    """One piece of a word: its text for an escape token, and its meaning."""

    kind: str
    text: str = ""
    name: str = ""
    inner: tuple[Token, ...] = ()
    op: str = ""

    def render(self, esc: str) -> str:
        if self.kind == "lit":
            return self.text
        if self.kind == "esc":
            return esc + self.text
        if self.kind == "single":
            return "'" + self.text + "'"
        if self.kind == "double":
            return '"' + "".join(t.render_in_double(esc) for t in self.inner) + '"'
        if self.kind == "var":
            return "${" + self.name + "}"
        if self.kind == "bare":
            return "$" + self.name
        return "${" + self.name + self.op + "".join(t.render(esc) for t in self.inner) + "}"

    def render_in_double(self, esc: str) -> str:
        if self.kind == "esc":  # only " $ and the escape itself are escapes inside "..."
            return esc + self.text
        return self.render(esc)

    def value(self, env: dict[str, str]) -> str:
        if self.kind in ("lit", "esc", "single"):
            return self.text
        if self.kind == "double":
            return "".join(t.value(env) for t in self.inner)
        if self.kind in ("var", "bare"):
            return env.get(self.name, "")
        word = "".join(t.value(env) for t in self.inner)
        is_set = self.name in env
        value = env.get(self.name, "")
        if self.op in (":-", "-"):
            unset = not is_set or (self.op == ":-" and value == "")
            return word if unset else value
        unset = not is_set or (self.op == ":+" and value == "")
        return "" if unset else word

    def chars(self, env: dict[str, str]) -> list[tuple[str, bool]]:
        """(character, may split words): only literal and expanded-variable spaces split."""
        if self.kind == "lit":
            return [(c, True) for c in self.text]
        if self.kind in ("var", "bare", "sub"):
            return [(c, True) for c in self.value(env)]
        return [(c, False) for c in self.value(env)]


literal = st.text(alphabet=PLAIN + " ", min_size=1, max_size=4).map(lambda s: Token("lit", s))
escaped = st.sampled_from(list(PLAIN + " $'\"{}") + ["ESC"]).map(lambda c: Token("esc", c))
single = st.text(alphabet=PLAIN + ' $"{}\\`', max_size=5).map(lambda s: Token("single", s))
variable = st.sampled_from(NAMES).map(lambda n: Token("var", name=n))
in_double = st.one_of(
    st.text(alphabet=PLAIN + " '{}", min_size=1, max_size=4).map(lambda s: Token("lit", s)),
    st.sampled_from(['"', "$", "ESC"]).map(lambda c: Token("esc", c)),
    variable,
)
double = st.lists(in_double, max_size=4).map(lambda ts: Token("double", inner=tuple(ts)))


def _substitution(inner: st.SearchStrategy[Token]) -> st.SearchStrategy[Token]:
    return st.builds(lambda n, op, ts: Token("sub", name=n, op=op, inner=tuple(ts)),
                     st.sampled_from(NAMES), st.sampled_from([":-", ":+", "-", "+"]),
                     st.lists(inner, max_size=3))


leaf = st.one_of(literal, escaped, single, double, variable)
token = st.recursive(leaf, lambda inner: _substitution(inner), max_leaves=8)
env_strategy = st.dictionaries(st.sampled_from(["A", "B", "E", "long_name1"]),
                               st.sampled_from(["", "v", "two words", " pad ", "$A", "'q'"]))


def _fix_escape(tokens: list[Token], esc: str) -> list[Token]:
    """The escape token as an escaped character means itself."""
    def fix(t: Token) -> Token:
        if t.kind == "esc" and t.text == "ESC":
            return Token("esc", esc)
        if t.inner:
            return Token(t.kind, t.text, t.name, tuple(fix(i) for i in t.inner), t.op)
        return t
    return [fix(t) for t in tokens]


@settings(max_examples=400, deadline=None)
@given(st.lists(token, max_size=6), env_strategy, st.sampled_from(["\\", "`"]))
def test_expand_matches_model(tokens: list[Token], env: dict[str, str], esc: str) -> None:
    tokens = _fix_escape(tokens, esc)
    text = "".join(t.render(esc) for t in tokens)
    expected = "".join(t.value(env) for t in tokens)
    assert expand(text, env, esc) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(token, max_size=6), env_strategy)
def test_expand_words_matches_model(tokens: list[Token], env: dict[str, str]) -> None:
    tokens = _fix_escape(tokens, "\\")
    text = "".join(t.render("\\") for t in tokens)
    words: list[str] = []
    current: list[str] = []
    for t in tokens:
        for ch, splits in t.chars(env):
            if splits and ch.isspace():
                if current:
                    words.append("".join(current))
                current = []
            else:
                current.append(ch)
    if current:
        words.append("".join(current))
    assert expand_words(text, env) == words


@given(st.text(max_size=30))
def test_single_quoting_round_trips(s: str) -> None:
    quoted = "'" + s.replace("'", "'\\''") + "'"
    assert expand(quoted, {"A": "x"}) == s
    assert expand_words(quoted, {}) == ([s] if s else [])


@given(st.text(alphabet=PLAIN + " ", max_size=30))
def test_plain_text_is_unchanged(s: str) -> None:
    assert expand(s, ENV) == s
    assert expand_words(s, ENV) == s.split()


@given(st.text(max_size=20), st.sampled_from(["\\", "`"]))
def test_escaping_every_character_gives_it_back(s: str, esc: str) -> None:
    assert expand("".join(esc + c for c in s), ENV, esc) == s
