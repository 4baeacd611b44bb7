"""builder.context.file_digest remembers digests of settled files and never serves a
stale one: any write changes ctime, which the remembered identity includes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from builder import context


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    context._known.clear()


def test_fresh_file_is_read_and_not_remembered(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"fresh")
    assert context.file_digest(str(path)) == _sha(b"fresh")
    assert context._known == {}  # its ctime is too recent to be trusted


def test_settled_file_is_remembered_until_it_changes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"a" * 4096)
    real = time.time_ns
    # read "later": the file counts as settled
    monkeypatch.setattr(time, "time_ns", lambda: real() + 10 * context._SETTLED_NS)
    assert context.file_digest(str(path)) == _sha(b"a" * 4096)
    assert len(context._known) == 1
    assert context.file_digest(str(path)) == _sha(b"a" * 4096)

    # same size, same mtime, other content: only ctime tells, and it does
    before = os.stat(path)
    while os.stat(path).st_ctime_ns == before.st_ctime_ns:
        with open(path, "r+b") as f:
            f.write(b"b" * 4096)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert context.file_digest(str(path)) == _sha(b"b" * 4096)


def test_tree_digest_uses_the_file_digests(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"1")
    first = context.tree_digest(str(tmp_path / "d"))
    (tmp_path / "d" / "x").write_bytes(b"2")
    assert context.tree_digest(str(tmp_path / "d")) != first


def test_image_digests_are_per_image_and_path(tmp_path: Path) -> None:
    context._image_digests.clear()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1")
    first = context.image_tree_digest("sha256:one", str(tmp_path), str(tmp_path / "a"))
    assert first == context.tree_digest(str(tmp_path / "a"))
    (tmp_path / "a" / "x").write_bytes(b"2")  # another image's content at the same place
    assert context.image_tree_digest("sha256:one", str(tmp_path), str(tmp_path / "a")) == first
    assert context.image_tree_digest("sha256:two", str(tmp_path), str(tmp_path / "a")) != first
