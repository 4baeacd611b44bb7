"""Attach/exec/logs stream formats, pure (no I/O).

Without a TTY, dockerd multiplexes a container's streams on one connection with
stdcopy frames: an 8-byte header ``[stream, 0, 0, 0, size as uint32 big-endian]``
followed by ``size`` bytes of payload (moby ``pkg/stdcopy``). With a TTY the bytes
go out raw. Clients choose the decoder from ``Config.Tty``, not from the content type.

Detach keys (``detachKeys=ctrl-p,ctrl-q``) follow moby/term ``ToBytes``; the default
sequence ends a TTY attach without stopping the container.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3

MEDIA_RAW = "application/vnd.docker.raw-stream"
MEDIA_MULTIPLEXED = "application/vnd.docker.multiplexed-stream"

HEADER_SIZE = 8
MAX_FRAME = 0xFFFF_FFFF       # the size field is a uint32
CHUNK = 32 * 1024             # moby copies through 32 KiB buffers: frames are rarely larger

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p, ctrl-q

_HEADER = struct.Struct(">BxxxI")


class StreamFormatError(ValueError):
    """The bytes are not a stdcopy stream."""


def frame(stream: int, data: bytes) -> bytes:
    """One stdcopy frame (an empty payload gives a bare header)."""
    if stream not in (STDIN, STDOUT, STDERR, SYSTEMERR):
        raise ValueError(f"invalid stream {stream}")
    if len(data) > MAX_FRAME:
        raise ValueError(f"frame payload of {len(data)} bytes exceeds the uint32 size field")
    return _HEADER.pack(stream, len(data)) + data


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """data in pieces of at most size bytes; nothing for empty data."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start:start + size])


def frames(stream: int, data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """data as frames of at most size payload bytes each (none for empty data,
    as moby's StdWriter skips empty writes)."""
    for piece in chunks(data, size):
        yield frame(stream, piece)


class FrameDecoder:
    """Incremental stdcopy decoder: feed() bytes as they arrive, get whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held back because their frame is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        out: list[tuple[int, bytes]] = []
        pos = 0
        while len(self._buf) - pos >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(self._buf, pos)
            if stream > SYSTEMERR:
                # the wording of moby's StdCopy
                raise StreamFormatError(f"Unrecognized input header: {stream}")
            end = pos + HEADER_SIZE + size
            if len(self._buf) < end:
                break
            out.append((stream, bytes(self._buf[pos + HEADER_SIZE:end])))
            pos = end
        del self._buf[:pos]
        return out

    def close(self) -> None:
        """End of input: a partial frame left over means the stream was cut."""
        if self._buf:
            raise StreamFormatError(f"stream ended inside a frame ({len(self._buf)} bytes left)")


def decode(data: bytes) -> list[tuple[int, bytes]]:
    """All frames of a complete stream."""
    decoder = FrameDecoder()
    out = decoder.feed(data)
    decoder.close()
    return out


def demux(data: bytes) -> dict[int, bytes]:
    """A complete stream's payloads concatenated per stream number."""
    joined: dict[int, bytes] = {}
    for stream, payload in decode(data):
        joined[stream] = joined.get(stream, b"") + payload
    return joined


_CTRL_NAMES = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
               "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def parse_detach_keys(keys: str) -> bytes:
    """moby/term ToBytes: comma-separated single characters, ``ctrl-@``…``ctrl-_``
    (case-sensitive) or ``DEL``. "" gives b"" (use the default sequence).

    Raises ValueError("Unknown character: '<key>'"); dockerd reports that to clients as
    400 "Invalid detach keys (<keys>) provided" (attach) or "Invalid escape keys
    (<keys>) provided" (exec create).
    """
    if keys == "":
        return b""
    codes = bytearray()
    for key in keys.split(","):
        raw = key.encode()
        if len(raw) == 1:       # Go compares byte lengths: "é" is not one character
            codes += raw
        elif key in _CTRL_NAMES:
            codes.append(_CTRL_NAMES.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(codes)


class EscapeDetector:
    """Finds the detach sequence in stdin, holding back a partial match until the next
    bytes show whether it completes (moby/term escapeProxy). Unlike escapeProxy, a byte
    that breaks a partial match may start a new one ("ctrl-p ctrl-p ctrl-q" detaches)."""

    def __init__(self, keys: bytes = DEFAULT_DETACH_KEYS) -> None:
        self.keys = keys or DEFAULT_DETACH_KEYS
        self._matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to forward, detach seen). Bytes after the sequence are dropped."""
        out = bytearray()
        for byte in data:
            if byte != self.keys[self._matched]:
                out += self.keys[:self._matched]
                self._matched = 0
                if byte != self.keys[0]:
                    out.append(byte)
                    continue
            self._matched += 1
            if self._matched == len(self.keys):
                self._matched = 0
                return bytes(out), True
        return bytes(out), False

    def flush(self) -> bytes:
        """At end of input, a held-back partial match is just data."""
        held, self._matched = self.keys[:self._matched], 0
        return held
