"""The config directory as libcni reads it, status, and the grammars guarding CNI_ARGS."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockerd_py.engine.cni import CNI, CNINotReady, PodNetwork, PortMapping, confdir
from dockerd_py.engine.cni.confdir import ConfigError
from dockerd_py.errors import InvalidParameter

from .conftest import CNI_BIN

BRIDGE = {"type": "bridge", "bridge": "x0", "ipam": {"type": "host-local"}}


def _write(d: Path, name: str, doc: object) -> None:
    (d / name).write_text(json.dumps(doc))


async def test_status_of_an_empty_or_missing_directory_is_not_ready(tmp_path: Path) -> None:
    for conf_dir in (tmp_path / "missing", tmp_path):
        cni = CNI(conf_dir, [CNI_BIN], tmp_path / "cache")
        with pytest.raises(CNINotReady) as e:
            await cni.status()
        assert e.value.message.startswith("cni config uninitialized")
    (tmp_path / "README").write_text("not a config")
    with pytest.raises(CNINotReady):
        await CNI(tmp_path, [CNI_BIN], tmp_path / "cache").status()


async def test_status_is_ready_once_a_config_appears(tmp_path: Path) -> None:
    cni = CNI(tmp_path, [CNI_BIN], tmp_path / "cache")
    with pytest.raises(CNINotReady):
        await cni.status()
    _write(tmp_path, "10-net.conflist", {"cniVersion": "1.0.0", "name": "n",
                                         "plugins": [BRIDGE, {"type": "portmap"}]})
    await cni.status()


async def test_status_with_an_unusable_first_file(tmp_path: Path) -> None:
    (tmp_path / "00-broken.conf").write_text("{not json")
    _write(tmp_path, "10-net.conflist", {"cniVersion": "1.0.0", "name": "n", "plugins": [BRIDGE]})
    with pytest.raises(CNINotReady, match="00-broken.conf"):
        await CNI(tmp_path, [CNI_BIN], tmp_path / "cache").status()


def test_first_file_in_lexicographic_order_and_conf_wrapped(tmp_path: Path) -> None:
    _write(tmp_path, "20-b.conflist", {"cniVersion": "1.0.0", "name": "b", "plugins": [BRIDGE]})
    _write(tmp_path, "10-a.conf", {"cniVersion": "0.4.0", "name": "a", **BRIDGE})
    _write(tmp_path, "05-ignored.txt", {"name": "x"})
    os.mkdir(tmp_path / "00-dir.conf")
    net = confdir.load(tmp_path)
    assert net is not None
    assert (net.name, net.cni_version, len(net.plugins)) == ("a", "0.4.0", 1)
    assert net.plugins[0]["type"] == "bridge"


@pytest.mark.parametrize("doc, message", [
    ({"name": "n", "plugins": []}, "has no networks"),
    ({"name": "n"}, "no 'plugins' key"),
    ({"name": "bad name", "plugins": [BRIDGE]}, "network name"),
    ({"name": "n", "plugins": [{"type": "../../bin/sh"}]}, "plugin type"),
    ({"name": "n", "cniVersion": "1", "plugins": [BRIDGE]}, "cniVersion"),
])
def test_invalid_lists(tmp_path: Path, doc: object, message: str) -> None:
    _write(tmp_path, "10.conflist", doc)
    with pytest.raises(ConfigError, match=message):
        confdir.load(tmp_path)


def test_conf_holding_a_list_has_no_type(tmp_path: Path) -> None:
    _write(tmp_path, "10.conf", {"name": "n", "plugins": [BRIDGE]})
    with pytest.raises(ConfigError, match="network type not found"):
        confdir.load(tmp_path)


GOOD = PodNetwork(pod_id="ab" * 32, name="PodSandbox-x.y", namespace="default",
                  uid="cri-test-uid-1234", netns_path="/run/netns/x")


@pytest.mark.parametrize("change", [
    {"pod_id": "AB" * 32}, {"pod_id": "x1"}, {"pod_id": ""},
    {"name": "a;K8S_POD_NAME=b"}, {"name": "a=b"}, {"name": "-a"}, {"name": "a" * 254},
    {"namespace": "Default"}, {"namespace": "a" * 64}, {"namespace": "a;b"},
    {"uid": "u;x"}, {"uid": ""},
    {"netns_path": "relative"}, {"netns_path": "/run/../etc"}, {"netns_path": "/a\0b"},
    {"port_mappings": (PortMapping("icmp", 1, 1, ""),)},
    {"port_mappings": (PortMapping("tcp", 70000, 1, ""),)},
    {"port_mappings": (PortMapping("tcp", 80, 8080, "not-an-ip"),)},
])
async def test_hostile_values_never_reach_a_plugin(tmp_path: Path,
                                                   change: dict[str, object]) -> None:
    _write(tmp_path, "10.conflist", {"cniVersion": "1.0.0", "name": "n",
                                     "plugins": [{"type": "no-such-plugin"}]})
    bad = PodNetwork(**{**GOOD.__dict__, **change})
    cni = CNI(tmp_path, [CNI_BIN], tmp_path / "cache")
    with pytest.raises(InvalidParameter):
        await cni.setup(bad)
    with pytest.raises(InvalidParameter):
        await cni.teardown(bad)


def test_pod_cidr_template(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.write_text('{"name": "k8s", "cidr": "{{.PodCIDR}}"}')
    cni = CNI(tmp_path / "net.d", [CNI_BIN], tmp_path / "cache", conf_template=template)
    cni.update_pod_cidr("10.244.1.0/24,fd00:1::/64")
    assert cni.pod_cidr == "10.244.1.0/24,fd00:1::/64"
    written = json.loads((tmp_path / "net.d" / "10-containerd-net.conflist").read_text())
    assert written == {"name": "k8s", "cidr": "10.244.1.0/24"}
    with pytest.raises(InvalidParameter):
        cni.update_pod_cidr("10.244.1.0/33")
    template.write_text('{"ranges": "{{.PodCIDRRanges}}"}')
    with pytest.raises(InvalidParameter, match="only {{.PodCIDR}}"):
        cni.update_pod_cidr("10.245.0.0/16")
    assert json.loads((tmp_path / "net.d" / "10-containerd-net.conflist").read_text()) == written
