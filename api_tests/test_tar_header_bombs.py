"""Tar metadata bombs on every path that reads a tar (issue 14, item 6).

A tar's metadata headers (PAX extended headers, GNU long names and long links) are read
whole before the member they describe. A few MB of gzip can declare a multi-GB PAX header
followed by enough data to fill it, or chain hundreds of headers just under a per-header
limit: read naively, each is a memory bomb. Every path is fed both shapes through a real
client; the daemon answers with a 4xx (or, for a build step, the in-band error) that
says what was wrong, its peak memory (VmHWM) grows by far less than the bomb's size, and
it keeps answering.
"""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from . import archives as A
from .conftest import Daemon

MB = 1 << 20
HWM_SLACK = 200 * MB          # what a bomb may add to the daemon's peak memory
CHAIN_HEADER = 2 * MB - 1024  # just under the 2 MiB one header may hold
CHAIN_LEVELS = 400            # ~800 MB of headers before the one member they describe
HUGE_DECLARED = 3 << 30       # a PAX header declaring 3 GiB ...
HUGE_PRESENT = 1200 * MB      # ... of which 1.2 GB is there


def _gzip_stream(parts: Iterator[bytes]) -> bytes:
    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    out = io.BytesIO()
    for part in parts:
        out.write(z.compress(part))
    out.write(z.flush())
    return out.getvalue()


def _filler(size: int, unit: bytes = b"a" * MB) -> Iterator[bytes]:
    while size > 0:
        yield unit[:size]
        size -= len(unit)


def _pad(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _pax_record(size: int) -> Iterator[bytes]:
    """One well-formed PAX record of exactly `size` bytes."""
    prefix = f"{size} comment=".encode()
    yield prefix
    yield from _filler(size - len(prefix) - 1)
    yield b"\n"


def _tail() -> Iterator[bytes]:
    info = tarfile.TarInfo("bombed")
    info.size, info.mtime = 1, 0
    yield info.tobuf(format=tarfile.USTAR_FORMAT) + b"x" + _pad(1)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def chained_pax_bomb() -> bytes:
    """CHAIN_LEVELS PAX headers, each just under the one-header limit, then one file."""
    def parts() -> Iterator[bytes]:
        for _ in range(CHAIN_LEVELS):
            yield A.raw_header("././@PaxHeader", CHAIN_HEADER, tarfile.XHDTYPE)
            yield from _pax_record(CHAIN_HEADER)
            yield _pad(CHAIN_HEADER)
        yield from _tail()
    return _gzip_stream(parts())


def huge_pax_bomb() -> bytes:
    """A PAX header declaring HUGE_DECLARED bytes, HUGE_PRESENT of them present."""
    def parts() -> Iterator[bytes]:
        yield A.raw_header("././@PaxHeader", HUGE_DECLARED, tarfile.XHDTYPE)
        yield from _filler(HUGE_PRESENT, b"9" * MB)
    return _gzip_stream(parts())


def long_name_bomb() -> bytes:
    """A GNU long name declaring HUGE_DECLARED bytes, HUGE_PRESENT of them present."""
    def parts() -> Iterator[bytes]:
        yield A.raw_header("././@LongLink", HUGE_DECLARED, tarfile.GNUTYPE_LONGNAME)
        yield from _filler(HUGE_PRESENT)
    return _gzip_stream(parts())


BOMBS: dict[str, Callable[[], bytes]] = {
    "pax-chain": chained_pax_bomb, "pax-huge": huge_pax_bomb, "gnu-longname": long_name_bomb}


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    made = {name: make() for name, make in BOMBS.items()}
    for data in made.values():
        assert len(data) < 8 * MB  # "a few MB of gzip"
    return made


def _hwm(daemon: Daemon) -> int:
    assert daemon.proc is not None
    with open(f"/proc/{daemon.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def api(daemon: Daemon) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=daemon.host, timeout=300)
    yield client
    client.close()


def _refused(e: docker.errors.APIError) -> str:
    assert e.response is not None and 400 <= e.response.status_code < 500, \
        f"{e.response.status_code if e.response is not None else None}: {e.explanation}"
    return str(e.explanation)


def _stream_error(lines: Iterator[Any]) -> str:
    """The error of a progress stream (load, build), or "" when it finished cleanly."""
    for line in lines:
        chunk = line if isinstance(line, dict) else json.loads(line)
        if "error" in chunk:
            return str(chunk["error"])
    return ""


def _load(api: docker.APIClient, data: bytes, _: str) -> str:
    try:
        return _stream_error(api.load_image(data))
    except docker.errors.APIError as e:
        return _refused(e)


def _import(api: docker.APIClient, data: bytes, _: str) -> str:
    try:
        api.import_image_from_data(data)
    except docker.errors.APIError as e:
        return _refused(e)
    return ""


def _put_archive(api: docker.APIClient, data: bytes, image: str) -> str:
    cid = api.create_container(image, "true")["Id"]
    try:
        api.put_archive(cid, "/tmp", data)
    except docker.errors.APIError as e:
        return _refused(e)
    finally:
        api.remove_container(cid, force=True)
    return ""


def _build_context(api: docker.APIClient, data: bytes, _: str) -> str:
    try:
        return _stream_error(api.build(fileobj=io.BytesIO(data), custom_context=True,
                                       encoding="gzip", rm=True, decode=True))
    except docker.errors.APIError as e:
        return _refused(e)


def _build_add(api: docker.APIClient, data: bytes, image: str) -> str:
    context = A.tar_bytes([
        A.reg("Dockerfile", f"FROM {image}\nADD bomb.tar.gz /unpacked/\n".encode()),
        A.reg("bomb.tar.gz", data)])
    try:
        return _stream_error(api.build(fileobj=io.BytesIO(context), custom_context=True,
                                       rm=True, decode=True))
    except docker.errors.APIError as e:
        return _refused(e)


PATHS: dict[str, Callable[[docker.APIClient, bytes, str], str]] = {
    "load": _load, "import": _import, "put-archive": _put_archive,
    "build-context": _build_context, "build-add": _build_add}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
@pytest.mark.parametrize("path", sorted(PATHS))
def test_tar_header_bomb(daemon: Daemon, api: docker.APIClient, bombs: dict[str, bytes],
                         busybox_image: str, path: str, bomb: str) -> None:
    before = _hwm(daemon)
    error = PATHS[path](api, bombs[bomb], busybox_image)
    grown = _hwm(daemon) - before
    assert grown < HWM_SLACK, f"peak memory grew by {grown // MB} MB"
    assert error, "the bomb was accepted"
    assert "Traceback" not in error and "Internal Server Error" not in error, error
    assert "too large" in error, error
    assert api.ping()
    assert not [i for i in api.images(all=True) if "bombed" in json.dumps(i)]


def test_pax_records_checked_before_parsing(api: docker.APIClient) -> None:
    """A PAX header of one long run of digits costs tarfile's record search the square of
    its length (minutes for 256 KiB): it is refused at once, and the daemon keeps
    answering."""
    digits = 256 * 1024

    def parts() -> Iterator[bytes]:
        yield A.raw_header("././@PaxHeader", digits, tarfile.XHDTYPE)
        yield from _filler(digits, b"7" * MB)
        yield _pad(digits)
        yield from _tail()
    with pytest.raises(docker.errors.APIError) as e:
        api.import_image_from_data(_gzip_stream(parts()))
    assert "PAX" in _refused(e.value)
    assert api.ping()
