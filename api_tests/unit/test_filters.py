"""dockerd_py.engine.filters against moby's filters.Args behaviour (api/types/filters)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerd_py.engine.filters import Filters, InvalidFilter
from dockerd_py.errors import InvalidParameter


@pytest.mark.parametrize("raw", [None, "", "{}", "null"])
def test_parse_empty(raw: str | None) -> None:
    f = Filters.parse(raw)
    assert not f and f.keys() == [] and f == Filters()


def test_parse_both_wire_forms_agree() -> None:
    current = Filters.parse('{"label":{"a=b":true,"c":true},"status":{"running":true}}')
    legacy = Filters.parse('{"label":["a=b","c"],"status":["running"]}')
    assert current == legacy
    assert current.get("label") == {"a=b", "c"}
    assert current.keys() == ["label", "status"]


@pytest.mark.parametrize("raw", [
    "{", "[]", '"x"', "0", "   ", "NaN", '{"a":"x"}', '{"a":{"x":1}}', '{"a":{"x":"true"}}',
    '{"a":[1]}', '{"a":[["x"]]}', '{"a":{"x":true},"b":["y"]}', '{"a":NaN}',
    '{"a":["x"],"a":{"y":true}}',  # Go fails both forms on the first "a", even though
])                                 # a later duplicate would be fine
def test_parse_malformed(raw: str) -> None:
    with pytest.raises(InvalidFilter) as exc:
        Filters.parse(raw)
    assert str(exc.value) == "invalid filter"
    assert isinstance(exc.value, InvalidParameter)


def test_parse_nulls_are_go_zero_values() -> None:
    f = Filters.parse('{"label":null,"name":{"x":null}}')
    assert f.contains("label") and f.get("label") == frozenset()
    assert f.get("name") == {"x"}
    assert not f.exact_match("name", "x")  # null decodes to false
    assert Filters.parse('{"name":["x",null]}').get("name") == {"x", ""}
    assert Filters.parse('{"name":null}').get("name") == frozenset()


def test_parse_duplicate_keys_last_wins() -> None:
    assert Filters.parse('{"a":["x"],"a":["y"]}').get("a") == {"y"}
    assert Filters.parse('{"a":{"x":true},"a":{"y":true}}').get("a") == {"y"}


def test_false_values_count_like_moby() -> None:
    f = Filters.parse('{"name":{"web":false},"dangling":{"true":false,"false":true}}')
    assert f.get("name") == {"web"}  # Get lists it
    assert not f.exact_match("name", "web")  # ExactMatch looks up the bool
    assert not f.exact_match("name", "other")  # ... and the key still filters
    assert f.match("name", "webserver")  # Match's regexp loop sees it
    assert f.fuzzy_match("name", "web-1")
    assert f.bool_value("dangling") is False


def test_validate() -> None:
    f = Filters.parse('{"label":["a"],"bogus":["x"]}')
    with pytest.raises(InvalidFilter, match="^invalid filter 'bogus'$"):
        f.validate({"label", "dangling"})
    f.validate(["label", "bogus"])
    Filters().validate([])


def test_exact_match() -> None:
    f = Filters.of({"status": ["running", "paused"], "empty": []})
    assert f.exact_match("status", "running") and f.exact_match("status", "paused")
    assert not f.exact_match("status", "exited")
    assert f.exact_match("absent", "anything") and f.exact_match("empty", "anything")


def test_fuzzy_match() -> None:
    f = Filters.of({"id": ["abc", "def0"]})
    assert f.fuzzy_match("id", "abcdef") and f.fuzzy_match("id", "def0")
    assert not f.fuzzy_match("id", "xabc")
    assert f.fuzzy_match("other", "x")


@pytest.mark.parametrize(("pattern", "value", "expected"), [
    ("web", "myweb1", True),  # unanchored search, like regexp.MatchString
    ("^web$", "web", True),
    ("^web$", "web1", False),
    ("w.b", "wxb", True),
    ("[", "[", True),  # does not compile: equality only
    ("[", "x[", False),
    ("(?i)WEB", "web", True),
])
def test_match_regexp(pattern: str, value: str, expected: bool) -> None:
    assert Filters.of({"name": [pattern]}).match("name", value) is expected


def test_match_absent_key() -> None:
    assert Filters().match("name", "x")


@pytest.mark.parametrize(("wanted", "labels", "expected"), [
    ([], {}, True),
    (["a"], {}, False),
    (["a"], None, False),
    (["a"], {"a": ""}, True),
    (["a=1"], {"a": "1"}, True),
    (["a=1"], {"a": "2"}, False),
    (["a="], {"a": ""}, True),
    (["a="], {"a": "x"}, False),
    (["a=1", "b"], {"a": "1", "b": "z"}, True),  # all values AND-ed
    (["a=1", "b"], {"a": "1"}, False),
    (["a=b=c"], {"a": "b=c"}, True),  # split at the first '='
])
def test_match_labels(wanted: list[str], labels: dict[str, str] | None, expected: bool) -> None:
    assert Filters.of({"label": wanted}).match_labels(labels) is expected


def test_match_labels_other_key() -> None:
    f = Filters.of({"label!": ["a"]})
    assert f.match_labels({"b": "1"})
    assert not f.match_labels({"b": "1"}, key="label!")


@pytest.mark.parametrize(("values", "expected"), [
    (["true"], True), (["1"], True), (["false"], False), (["0"], False),
    (["true", "1"], True), (["0", "false"], False),
])
def test_bool_value(values: list[str], expected: bool) -> None:
    assert Filters.of({"dangling": values}).bool_value("dangling") is expected


@pytest.mark.parametrize(("values", "message"), [
    (["maybe"], "invalid filter 'dangling=[maybe]'"),
    (["true", "false"], "invalid filter 'dangling=[false true]'"),
    (["TRUE"], "invalid filter 'dangling=[TRUE]'"),
    ([], "invalid filter 'dangling'"),
])
def test_bool_value_invalid(values: list[str], message: str) -> None:
    with pytest.raises(InvalidFilter) as exc:
        Filters.of({"dangling": values}).bool_value("dangling")
    assert str(exc.value) == message


def test_bool_value_absent() -> None:
    assert Filters().bool_value("dangling") is None


_values = st.frozensets(st.text(max_size=6), max_size=4)
_fields = st.dictionaries(st.text(max_size=6), _values, max_size=4)


@given(_fields)
def test_both_wire_forms_roundtrip(fields: dict[str, frozenset[str]]) -> None:
    as_sets = json.dumps({k: {v: True for v in vs} for k, vs in fields.items()})
    as_lists = json.dumps({k: sorted(vs) for k, vs in fields.items()})
    assert Filters.parse(as_sets) == Filters.parse(as_lists) == Filters.of(fields)


@given(st.text(max_size=40))
def test_parse_only_raises_invalid_filter(raw: str) -> None:
    try:
        Filters.parse(raw)
    except InvalidFilter:
        pass


@given(_values, st.text(max_size=8))
def test_matchers_agree_with_definitions(values: frozenset[str], value: str) -> None:
    f = Filters.of({"k": values})
    assert f.exact_match("k", value) is (not values or value in values)
    assert f.fuzzy_match("k", value) is (not values or any(value.startswith(v) for v in values))
    if f.exact_match("k", value):
        assert f.match("k", value)
