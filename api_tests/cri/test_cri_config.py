"""The CRI's configuration: off by default, --cri-socket or daemon.json "cri" (not both),
the defaults of the issue, unknown keys and wrong types refused in dockerd's wording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockerd_py import config
from dockerd_py.errors import InvalidParameter


def build(tmp: Path, file: dict[str, object], **flags: object) -> config.Config:
    path = tmp / "daemon.json"
    path.write_text(json.dumps(file))
    return config.build(dict(flags), config_file=str(path), file_required=True)


def test_off_by_default(tmp_path: Path) -> None:
    assert build(tmp_path, {}).cri_options["socket"] == ""


def test_defaults(tmp_path: Path) -> None:
    opts = build(tmp_path, {}, cri_socket="/run/x/cri.sock").cri_options
    assert opts == {"socket": "/run/x/cri.sock", "cni-conf-dir": "/etc/cni/net.d",
                    "cni-bin-dir": "/usr/lib/cni", "sandbox-image": "registry.k8s.io/pause:3.9"}


def test_from_file(tmp_path: Path) -> None:
    opts = build(tmp_path, {"cri": {"socket": "/run/c.sock", "cni-conf-dir": "/c",
                                    "cni-bin-dir": "/b", "sandbox-image": "r/p:1"}}).cri_options
    assert opts == {"socket": "/run/c.sock", "cni-conf-dir": "/c", "cni-bin-dir": "/b",
                    "sandbox-image": "r/p:1"}


def test_flag_and_file_clash(tmp_path: Path) -> None:
    cfg = build(tmp_path, {"cri": {"socket": "/a.sock"}}, cri_socket="/b.sock")
    with pytest.raises(InvalidParameter, match="both as a flag and in the configuration"):
        cfg.cri_options  # noqa: B018


@pytest.mark.parametrize("value", [{"sockett": "/a"}, {"socket": 1}, "x", ["/a"]])
def test_invalid(tmp_path: Path, value: object) -> None:
    with pytest.raises(InvalidParameter, match="invalid value for cri"):
        build(tmp_path, {"cri": value})
