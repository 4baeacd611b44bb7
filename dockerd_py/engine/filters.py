"""The ``filters`` query parameter of list endpoints, with moby's semantics (filters.Args).

Wire forms (``FromJSON``):

* map of sets, sent by the Go CLI and compose: ``{"label": {"a=b": true}}``
* legacy map of lists, sent by docker-py: ``{"label": ["a=b"]}``

Values of one key are OR-ed by the matchers, different keys are AND-ed by the
caller. A value sent as ``false`` in the map-of-sets form is kept, as in moby:
``get()`` and the pattern matchers (match, fuzzy_match, match_labels) see it,
while the exact lookups (exact_match, bool_value) do not.

Pure, no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from dockerd_py.errors import InvalidParameter

_EMPTY: frozenset[str] = frozenset()


class InvalidFilter(InvalidParameter, ValueError):
    """A malformed filters parameter, an unknown key or a bad value (HTTP 400)."""


def _invalid(key: str = "", values: Iterable[str] | None = None) -> InvalidFilter:
    """moby's invalidFilter wording: ``invalid filter 'key=[v1 v2]'``."""
    if not key:
        return InvalidFilter("invalid filter")
    shown = key if values is None else f"{key}=[{' '.join(sorted(values))}]"
    return InvalidFilter(f"invalid filter '{shown}'")


class _Object(list[tuple[str, Any]]):
    """A JSON object kept as its pairs, so duplicate keys can be judged like Go does."""


@dataclass(frozen=True)
class Filters:
    fields: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    # Values sent as `false`: part of `fields`, but absent for exact lookups.
    disabled: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, values: Mapping[str, Iterable[str]]) -> Filters:
        """Build filters in code, e.g. ``Filters.of({"dangling": ["true"]})``."""
        return cls(MappingProxyType({k: frozenset(v) for k, v in values.items()}))

    @classmethod
    def parse(cls, raw: str | None) -> Filters:
        """FromJSON: ``""``/None/``null`` -> empty; either wire form; else ``invalid filter``."""
        if not raw:
            return cls()
        try:
            doc = json.loads(raw, object_pairs_hook=_Object, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise _invalid() from None
        if doc is None:
            return cls()
        if not isinstance(doc, _Object):
            raise _invalid()
        parsed = _from_map_of_bools(doc)
        if parsed is None:
            parsed = _from_map_of_lists(doc)
        if parsed is None:
            raise _invalid()
        fields, disabled = parsed
        return cls(MappingProxyType(fields), MappingProxyType(disabled))

    def validate(self, accepted: Iterable[str]) -> None:
        """Reject keys the endpoint does not know: ``invalid filter 'x'``."""
        known = set(accepted)
        for key in sorted(self.fields):
            if key not in known:
                raise _invalid(key)

    def keys(self) -> list[str]:
        return sorted(self.fields)

    def get(self, key: str) -> frozenset[str]:
        return self.fields.get(key, _EMPTY)

    def contains(self, key: str) -> bool:
        return key in self.fields

    def __bool__(self) -> bool:
        return bool(self.fields)

    def _enabled(self, key: str) -> frozenset[str]:
        return self.get(key) - self.disabled.get(key, _EMPTY)

    def exact_match(self, key: str, value: str) -> bool:
        """True if the key has no values, or ``value`` is one of them."""
        if not self.get(key):
            return True
        return value in self._enabled(key)

    def fuzzy_match(self, key: str, value: str) -> bool:
        """exact_match, or ``value`` starts with one of the key's values (IDs, names)."""
        if self.exact_match(key, value):
            return True
        return any(value.startswith(prefix) for prefix in self.get(key))

    def match(self, key: str, value: str) -> bool:
        """exact_match, or one of the key's values, as a regexp, is found in ``value``.

        Patterns are Python regexps (moby uses Go RE2; the common syntax agrees).
        A pattern that does not compile is skipped, leaving plain equality.
        """
        if self.exact_match(key, value):
            return True
        for pattern in self.get(key):
            try:
                if re.search(pattern, value):
                    return True
            except re.error:
                continue
        return False

    def match_labels(self, labels: Mapping[str, str] | None, key: str = "label") -> bool:
        """MatchKVList: every ``k`` must be present and every ``k=v`` equal (AND)."""
        wanted = self.get(key)
        if not wanted:
            return True
        if not labels:
            return False
        for item in wanted:
            name, has_value, value = item.partition("=")
            if name not in labels or (has_value and labels[name] != value):
                return False
        return True

    def bool_value(self, key: str) -> bool | None:
        """GetBoolOrDefault: None if absent; ``1``/``true`` or ``0``/``false``, else an error."""
        if key not in self.fields:
            return None
        values = self.get(key)
        if not values:
            raise _invalid(key)
        enabled = self._enabled(key)
        is_true = "1" in enabled or "true" in enabled
        is_false = "0" in enabled or "false" in enabled
        if is_true == is_false:
            raise _invalid(key, values)
        return is_true


def _reject_constant(name: str) -> None:
    raise ValueError(f"not JSON: {name}")  # Go rejects NaN/Infinity


_Parsed = tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]


def _from_map_of_bools(doc: _Object) -> _Parsed | None:
    """``{"key": {"value": true}}``; a JSON null stands for Go's zero value."""
    fields: dict[str, frozenset[str]] = {}
    disabled: dict[str, frozenset[str]] = {}
    for key, inner in doc:
        if inner is None:
            fields[key], disabled[key] = _EMPTY, _EMPTY
            continue
        if not isinstance(inner, _Object):
            return None
        flags: dict[str, bool] = {}
        for value, flag in inner:
            if flag is not None and not isinstance(flag, bool):
                return None
            flags[value] = bool(flag)
        fields[key] = frozenset(flags)
        disabled[key] = frozenset(v for v, on in flags.items() if not on)
    return fields, {k: v for k, v in disabled.items() if v}


def _from_map_of_lists(doc: _Object) -> _Parsed | None:
    """``{"key": ["value"]}``; null items decode to "" as in Go."""
    fields: dict[str, frozenset[str]] = {}
    for key, items in doc:
        if items is None:
            fields[key] = _EMPTY
            continue
        if not isinstance(items, list) or isinstance(items, _Object):
            return None
        if any(item is not None and not isinstance(item, str) for item in items):
            return None
        fields[key] = frozenset(item or "" for item in items)
    return fields, {}
