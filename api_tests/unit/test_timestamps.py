"""The daemon's one RFC 3339 parser (engine/timestamps) and the API's timestamp forms."""

from __future__ import annotations

import pytest

from dockerd_py.engine.timestamps import parse_time, parse_timestamp, rfc3339_nanos, to_nanos
from dockerd_py.errors import InvalidParameter

NS = 1_000_000_000


@pytest.mark.parametrize(("text", "nanos"), [
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01T00:00:01.5Z", NS + 500_000_000),
    ("2026-11-29T01:53:45.594602368Z", 1795917225 * NS + 594602368),
    ("2026-11-29T01:53:45.594602368z", 1795917225 * NS + 594602368),
    ("2026-11-29T02:53:45.594602368+01:00", 1795917225 * NS + 594602368),
    ("2026-11-28T20:53:45.594602368-05:00", 1795917225 * NS + 594602368),
    ("2000-01-01T00:00:00-00:30", 946686600 * NS),
    ("2000-01-01T00:00:00.000000001Z", 946684800 * NS + 1),
    ("2000-01-01T00:00:00.1234567891234Z", 946684800 * NS + 123456789),  # cut, as Go does
    ("0001-01-01T00:00:00Z", -62135596800 * NS),  # Go's zero time, in unset records
])
def test_rfc3339_nanos(text: str, nanos: int) -> None:
    assert rfc3339_nanos(text) == nanos
    assert parse_time(text) == nanos / NS
    assert to_nanos(text) == nanos  # exact: no float on the way


@pytest.mark.parametrize("text", [
    "", "garbage", "2026-11-29", "2026-11-29T01:53:45", "2026-11-29T01:53Z",
    "2026-11-29T01:53:45.Z", "2026-11-29T01:53:45+0100", "2026-13-29T01:53:45Z",
    "1700000000",
])
def test_not_rfc3339(text: str) -> None:
    with pytest.raises(ValueError):
        rfc3339_nanos(text)
    assert parse_time(text) == 0.0  # recorded times may be missing: "no time", not an error


def test_api_forms_beyond_rfc3339() -> None:
    now = 1_800_000_000.0
    assert parse_timestamp("10m", now) == now - 600
    assert parse_timestamp("1h30m", now) == now - 5400
    assert parse_timestamp("1700000000.5", now) == 1700000000.5
    assert to_nanos("1700000000.000000001") == 1700000000 * NS + 1
    assert parse_timestamp("2026-11-29T02:53:45.5+01:00") == 1795917225.5
    assert parse_timestamp("2026-11-29T01:53Z") == 1795917180.0  # no seconds: dockerd's too
    with pytest.raises(InvalidParameter, match='failed to parse value as time or duration: "x-"'):
        parse_timestamp("x-")
