"""BuildKit inline cache records and cache options: their grammar, pure functions only."""

from __future__ import annotations

import base64
import json

import pytest

from dockerd_py.buildkit import inlinecache
from dockerd_py.buildkit.cacheopts import cache_options
from dockerd_py.engine.images.buildcache import Entry
from dockerd_py.engine.timestamps import parse_time
from dockerd_py.engine.types import ImageRecord, Layer
from dockerd_py.errors import InvalidParameter, NotImplementedByDaemon
from dockerd_py.protos.buildkit.control import control_pb2 as pb

K1, K2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _image(image_id: str, layers: int, created: str) -> ImageRecord:
    return ImageRecord(id=image_id, config={"created": created},
                       layers=tuple(Layer(f"d{i}", f"c{i}", f"b{i}", "m", 1, 1)
                                    for i in range(layers)),
                       size=0, created=created, added_seq=0)


def _config(records: object) -> bytes:
    raw = base64.b64encode(json.dumps(records).encode()).decode()
    return json.dumps({inlinecache.CACHE_KEY: raw}).encode()


T0, T1, T2 = ("2026-12-06T10:00:00Z", "2026-12-06T10:00:01Z", "2026-12-06T10:00:02Z")
K0 = "sha256:" + "0" * 64


def test_chain_records_follow_the_parents_bottom_first() -> None:
    base, a, b = (_image("sha256:base", 1, T0), _image("sha256:a", 1, T1),
                  _image("sha256:b", 2, T2))
    entries = [Entry(K2, "sha256:b", "sha256:a", "RUN x", T2, T2, 0),
               Entry(K1, "sha256:a", "sha256:base", "ENV", T1, T1, 0),
               # an older build's step that made this build's base image: not this build's
               Entry(K0, "sha256:base", "", "RUN y", T0, T0, 0)]
    since = parse_time(T1)
    records = inlinecache.chain_records(b, entries, {i.id: i for i in (base, a, b)}, since)
    assert records == [
        {"digest": K1, "layers": [{"layer": 0, "createdAt": T1}]},
        {"digest": K2, "layers": [{"layer": 1, "createdAt": T2}],
         "inputs": [[{"link": 0}]]}]
    assert inlinecache.parse(_config(records)) == {K1, K2}
    everything = inlinecache.chain_records(b, entries, {i.id: i for i in (base, a, b)}, 0.0)
    assert [r["digest"] for r in everything] == [K0, K1, K2]


def test_parse_takes_only_digests_and_refuses_garbage() -> None:
    assert inlinecache.parse(b'{"config": {}}') == set()
    assert inlinecache.parse(_config([{"digest": K1}, {"digest": "../x"}, 3])) == {K1}
    for bad in (json.dumps({inlinecache.CACHE_KEY: "%%%"}).encode(),
                json.dumps({inlinecache.CACHE_KEY: 5}).encode(), _config({"a": 1})):
        with pytest.raises(ValueError):
            inlinecache.parse(bad)


def test_cache_options() -> None:
    opts = cache_options(pb.CacheOptions(
        Exports=[pb.CacheOptionsEntry(Type="inline")],
        Imports=[pb.CacheOptionsEntry(Type="registry", Attrs={"ref": "localhost:5000/a:b"}),
                 pb.CacheOptionsEntry(Type="registry", Attrs={"ref": "localhost:5000/a:b"})]))
    assert opts.inline and opts.imports == ("localhost:5000/a:b",)
    refused = [pb.CacheOptions(Exports=[pb.CacheOptionsEntry(Type="registry")]),
               pb.CacheOptions(Exports=[pb.CacheOptionsEntry(Type="inline",
                                                             Attrs={"mode": "max"})]),
               pb.CacheOptions(Imports=[pb.CacheOptionsEntry(Type="local")]),
               pb.CacheOptions(Imports=[pb.CacheOptionsEntry(
                   Type="registry", Attrs={"ref": "a", "oci-mediatypes": "true"})])]
    for options in refused:
        with pytest.raises(NotImplementedByDaemon):
            cache_options(options)
    for ref in ("", "-x", "a b", "x/UPPER"):
        with pytest.raises(InvalidParameter):
            cache_options(pb.CacheOptions(Imports=[pb.CacheOptionsEntry(
                Type="registry", Attrs={"ref": ref})]))
