"""The API boundary's types: every JSON request body is checked against the type
the v1.50 spec gives it before a handler sees it.

request_types.json is generated from the spec by contrib/gen-request-types.py
(a unit test checks it is current); `decode` applies one of its body types to
a parsed body and returns the body as the handlers read it, or raises
TypeMismatch worded as dockerd's Go decoder words it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .gojson import Number, SyntaxErr, loads
from .gotypes import Decoder, TypeMismatch, json_kind

__all__ = ["BODY_TYPES", "Number", "SyntaxErr", "TypeMismatch", "decode", "json_kind", "loads"]

_MODEL = json.loads((Path(__file__).parent / "request_types.json").read_text())
_DECODER = Decoder(_MODEL["types"])
BODY_TYPES: frozenset[str] = frozenset(_MODEL["bodies"])


def decode(body_type: str, value: Any) -> Any:
    """value (from gojson.loads) as the body type `body_type` (a key of BODY_TYPES)."""
    try:
        return _DECODER.decode(_MODEL["bodies"][body_type], value)
    except RecursionError:
        raise TypeMismatch("exceeded max depth") from None
