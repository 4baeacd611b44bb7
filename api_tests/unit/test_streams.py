"""stdcopy framing, detach-key parsing and escape detection (dockerd_py.api.streams)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockerd_py.api.streams import (
    CHUNK,
    DEFAULT_DETACH_KEYS,
    STDERR,
    STDIN,
    STDOUT,
    SYSTEMERR,
    EscapeDetector,
    FrameDecoder,
    StreamFormatError,
    chunks,
    decode,
    demux,
    frame,
    frames,
    parse_detach_keys,
)


def test_frame_header_layout() -> None:
    assert frame(STDOUT, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert frame(SYSTEMERR, b"x" * 0x01020304)[:8] == b"\x03\x00\x00\x00\x01\x02\x03\x04"


def test_frame_rejects_unknown_stream() -> None:
    with pytest.raises(ValueError):
        frame(4, b"x")


def test_empty_payloads_round_trip() -> None:
    data = frame(STDOUT, b"") + frame(STDERR, b"") + frame(STDOUT, b"a")
    assert decode(data) == [(STDOUT, b""), (STDERR, b""), (STDOUT, b"a")]
    assert list(frames(STDOUT, b"")) == []          # as moby's StdWriter: no empty writes


def test_large_payload_single_frame_and_chunked() -> None:
    big = bytes(range(256)) * 1024 + b"tail"        # > 256 KiB
    assert decode(frame(STDOUT, big)) == [(STDOUT, big)]
    pieces = list(frames(STDERR, big))
    assert len(pieces) == -(-len(big) // CHUNK)
    assert all(len(p) <= CHUNK + 8 for p in pieces)
    assert demux(b"".join(pieces)) == {STDERR: big}
    assert b"".join(chunks(big, 1000)) == big


def test_interleaved_streams() -> None:
    parts = [(STDOUT, b"out1\n"), (STDERR, b"err1\n"), (STDOUT, b"out2\n"),
             (STDIN, b"in"), (SYSTEMERR, b"boom"), (STDERR, b"err2\n")]
    data = b"".join(frame(s, p) for s, p in parts)
    assert decode(data) == parts
    assert demux(data) == {STDOUT: b"out1\nout2\n", STDERR: b"err1\nerr2\n",
                           STDIN: b"in", SYSTEMERR: b"boom"}


def test_incremental_byte_by_byte() -> None:
    parts = [(STDOUT, b"x" * 70000), (STDERR, b""), (STDOUT, b"y")]
    data = b"".join(frame(s, p) for s, p in parts)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(data), 7):
        got += decoder.feed(data[i:i + 7])
    decoder.close()
    assert got == parts
    assert decoder.pending == 0


@given(st.lists(st.tuples(st.sampled_from([STDIN, STDOUT, STDERR, SYSTEMERR]),
                          st.binary(max_size=300)), max_size=12),
       st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40))
def test_round_trip_any_split(parts: list[tuple[int, bytes]], cuts: list[int]) -> None:
    data = b"".join(frame(s, p) for s, p in parts)
    decoder = FrameDecoder()
    got, pos, i = [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        got += decoder.feed(data[pos:pos + step])
        pos, i = pos + step, i + 1
    decoder.close()
    assert got == parts


def test_truncated_and_garbage_streams() -> None:
    with pytest.raises(StreamFormatError, match="inside a frame"):
        decode(frame(STDOUT, b"hello")[:-1])
    with pytest.raises(StreamFormatError, match="inside a frame"):
        decode(b"\x01\x00\x00")
    with pytest.raises(StreamFormatError, match="Unrecognized input header: 72"):
        decode(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("keys, expected", [
    ("ctrl-p,ctrl-q", b"\x10\x11"),
    ("a,b", b"ab"),
    ("ctrl-@", b"\x00"),
    ("ctrl-a,ctrl-z", b"\x01\x1a"),
    ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x1b\x1c\x1d\x1e\x1f"),
    ("DEL", b"\x7f"),
    ("ctrl-x,x,,", None),
    (",", None),
    ("", b""),
])
def test_parse_detach_keys(keys: str, expected: bytes | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match=r"^Unknown character: ''$"):
            parse_detach_keys(keys)
    else:
        assert parse_detach_keys(keys) == expected


@pytest.mark.parametrize("keys, bad", [
    ("ctrl-P", "ctrl-P"),        # names are case-sensitive, as in moby/term
    ("ctrl-p,ctrl-", "ctrl-"),
    ("ab", "ab"),
    ("é", "é"),                  # two bytes in UTF-8: not one character for Go
    ("ctrl-1", "ctrl-1"),
    ("del", "del"),
])
def test_parse_detach_keys_invalid(keys: str, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_detach_keys(keys)
    assert str(info.value) == f"Unknown character: '{bad}'"


def test_escape_detector_default_and_split() -> None:
    det = EscapeDetector(b"")
    assert det.keys == DEFAULT_DETACH_KEYS
    assert det.feed(b"ls\x10") == (b"ls", False)     # partial match held back
    assert det.feed(b"\x11rest") == (b"", True)       # completed: the rest is dropped


def test_escape_detector_broken_partial_is_forwarded() -> None:
    det = EscapeDetector(b"\x10\x11")
    assert det.feed(b"a\x10") == (b"a", False)
    assert det.feed(b"b") == (b"\x10b", False)
    assert det.feed(b"\x10\x10\x11") == (b"\x10", True)   # a breaking byte may start a match
    det = EscapeDetector(b"xyz")
    assert det.feed(b"xy") == (b"", False)
    assert det.flush() == b"xy"
    assert det.feed(b"abc") == (b"abc", False)
