"""A parsed JSON value checked against a request type, the way Go's encoding/json
decodes it into dockerd's structs; the result is the value as the handlers use it.

What Go does and this repeats: struct keys match case-insensitively and come
out spelled as the type spells them, unknown keys are dropped, null is always
accepted (a struct field stays unset: None here; a slice or map element gets
its zero value), a number only goes into an integer if its literal is an
integer in range, a strslice takes a lone string, and the first mismatch in
document order is the error, worded as Go's UnmarshalTypeError: the value's
JSON kind, the innermost struct and the path of keys from the top (embedded
structs included, as Go 1.24 prints it), and the Go type it did not fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .gojson import Number, clean_string

Node = Mapping[str, Any]

_INT_RANGES = {
    "int": (-(1 << 63), (1 << 63) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "time.Duration": (-(1 << 63), (1 << 63) - 1), "int32": (-(1 << 31), (1 << 31) - 1),
    "int16": (-(1 << 15), (1 << 15) - 1), "int8": (-128, 127),
    "uint": (0, (1 << 64) - 1), "uint64": (0, (1 << 64) - 1), "uint32": (0, (1 << 32) - 1),
    "os.FileMode": (0, (1 << 32) - 1), "uint16": (0, (1 << 16) - 1), "uint8": (0, 255),
}
_ZERO: dict[str, Any] = {"str": "", "int": 0, "float": 0.0, "bool": False}


class TypeMismatch(ValueError):
    """Go's UnmarshalTypeError, already worded."""


def json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _literal(value: Any) -> str:
    return value.text if isinstance(value, Number) else repr(value)


class Decoder:
    def __init__(self, types: Mapping[str, Node]) -> None:
        self.types = types
        self._folded: dict[int, dict[str, str]] = {}  # id(fields) -> lowercased -> name

    def decode(self, node: Node, value: Any) -> Any:
        return self._value(node, value, None, ())

    def _resolve(self, node: Node) -> Node:
        while node["k"] == "ref":
            node = self.types[node["to"]]
        return node

    def _fail(self, kind: str, go: str, struct: str | None, path: tuple[str, ...]) -> TypeMismatch:
        if struct is None:
            return TypeMismatch(f"json: cannot unmarshal {kind} into Go value of type {go}")
        return TypeMismatch(f"json: cannot unmarshal {kind} into Go struct field "
                            f"{struct}.{'.'.join(path)} of type {go}")

    def _value(self, node: Node, value: Any, struct: str | None,
               path: tuple[str, ...]) -> Any:
        node = self._resolve(node)
        kind = node["k"]
        if value is None:
            return None
        if kind == "any":
            return self._any(value)
        if kind == "str":
            if not isinstance(value, str):
                raise self._fail(json_kind(value), node["go"], struct, path)
            return clean_string(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise self._fail(json_kind(value), node["go"], struct, path)
            return value
        if kind == "int":
            return self._int(node, value, struct, path)
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self._fail(json_kind(value), node["go"], struct, path)
            result = float(value)
            if not math.isfinite(result):
                raise self._fail(f"number {_literal(value)}", node["go"], struct, path)
            return result
        if kind == "strslice":
            return self._strslice(node, value, struct, path)
        if kind in ("slice", "array"):
            return self._slice(node, value, struct, path)
        if kind == "map":
            return self._map(node, value, struct, path)
        if kind == "struct":
            return self._struct(node, value, struct, path)
        raise AssertionError(f"unknown node kind {kind}")

    def _int(self, node: Node, value: Any, struct: str | None, path: tuple[str, ...]) -> int:
        go = node["go"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._fail(json_kind(value), go, struct, path)
        low, high = _INT_RANGES.get(go, _INT_RANGES["int64"])
        if isinstance(value, float) or not low <= value <= high:
            raise self._fail(f"number {_literal(value)}", go, struct, path)
        return value

    def _strslice(self, node: Node, value: Any, struct: str | None,
                  path: tuple[str, ...]) -> list[str]:
        # strslice.StrSlice.UnmarshalJSON: a list of strings, else one string; the
        # error is that of the second attempt (into a string)
        if isinstance(value, str):
            return [clean_string(value)]
        if isinstance(value, list) and all(isinstance(v, str) or v is None for v in value):
            return [clean_string(v) if v is not None else "" for v in value]
        raise self._fail(json_kind(value), "string", struct, path)

    def _zero(self, node: Node) -> Any:
        return _ZERO.get(self._resolve(node)["k"])

    def _slice(self, node: Node, value: Any, struct: str | None,
               path: tuple[str, ...]) -> list[Any]:
        if not isinstance(value, list):
            raise self._fail(json_kind(value), node["go"], struct, path)
        of = node["of"]
        out = [self._zero(of) if v is None else self._value(of, v, struct, path)
               for v in value]
        if node["k"] == "array":    # a Go array: extra elements dropped, missing ones zero
            out = (out + [self._zero(of)] * node["len"])[:node["len"]]
        return out

    def _map(self, node: Node, value: Any, struct: str | None,
             path: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self._fail(json_kind(value), node["go"], struct, path)
        of = node["of"]
        return {clean_string(k): self._zero(of) if v is None else self._value(of, v, struct, path)
                for k, v in value.items()}

    def _struct(self, node: Node, value: Any, struct: str | None,
                path: tuple[str, ...]) -> dict[str, Any]:
        go = node["go"]
        if not isinstance(value, dict):
            raise self._fail(json_kind(value), go, struct, path)
        fields: Mapping[str, Mapping[str, Any]] = node["fields"]
        folded = self._folded.get(id(fields))
        if folded is None:
            folded = self._folded[id(fields)] = {name.lower(): name for name in fields}
        name_here = go.rpartition(".")[2]
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = key if key in fields else folded.get(key.lower())
            if name is None:
                continue            # unknown fields are ignored, as in Go
            field = fields[name]
            out[name] = self._value(field["t"], item, name_here,
                                    (*path, *field.get("via", ()), name))
        return out

    def _any(self, value: Any) -> Any:
        """interface{}: any JSON, with Go's strings and finite numbers."""
        if isinstance(value, str):
            return clean_string(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise TypeMismatch(f"json: cannot unmarshal number {_literal(value)} into Go "
                               "value of type float64")
        if isinstance(value, list):
            return [self._any(v) for v in value]
        if isinstance(value, dict):
            return {clean_string(k): self._any(v) for k, v in value.items()}
        return value
