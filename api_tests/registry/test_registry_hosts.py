"""registry-hosts: per-registry mirrors, tried in order before the registry itself.

The registry's host name is in the reserved `.invalid` domain (RFC 6761): it never
resolves, so an image can only come from a mirror; the mirror is a real docker-registry
on 127.0.0.1 holding the image under the same repository path.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockerd_py.config import build
from dockerd_py.distribution.endpoints import RegistrySettings, endpoints
from dockerd_py.errors import InvalidParameter

from ..lifetime import die_with_test_run
from .fixtures import Registry

Docker = Callable[..., Any]


def dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (the port was just free)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def _mirrored(docker: Docker, busybox_image: str, plain_registry: Registry, repo: str) -> str:
    """Put busybox on the mirror as <repo>:latest; the image id expected after a pull."""
    docker("tag", busybox_image, f"{plain_registry.host}/{repo}:latest")
    docker("push", f"{plain_registry.host}/{repo}:latest")
    docker("rmi", f"{plain_registry.host}/{repo}:latest")
    return str(json.loads(docker("image", "inspect", busybox_image).stdout)[0]["Id"])


def test_pull_through_the_mirror_of_an_unresolvable_registry(
        docker: Docker, plain_registry: Registry, registry_daemon_config: Callable[..., None],
        busybox_image: str, unique_name: Callable[..., str]) -> None:
    host = f"{unique_name('nowhere')}.invalid"
    repo = f"team/{unique_name('app')}"
    image_id = _mirrored(docker, busybox_image, plain_registry, repo)
    ref = f"{host}/{repo}"

    # Without a mirror the name does not resolve.
    plain = docker("pull", ref, check=False, timeout=90)
    assert plain.returncode == 1
    assert host in plain.stderr

    registry_daemon_config({"registry-hosts": {host: {"mirrors": [plain_registry.url]}}})
    pull = docker("pull", ref)
    assert f"Status: Downloaded newer image for {ref}:latest" in pull.stdout
    assert pull.stdout.rstrip().endswith(f"{ref}:latest")
    image = json.loads(docker("image", "inspect", ref).stdout)[0]
    assert image["Id"] == image_id
    assert any(d.startswith(f"{ref}@sha256:") for d in image["RepoDigests"])
    docker("rmi", ref)


def test_a_dead_mirror_falls_through_to_the_next(
        docker: Docker, plain_registry: Registry, registry_daemon_config: Callable[..., None],
        busybox_image: str, unique_name: Callable[..., str]) -> None:
    host = f"{unique_name('nowhere')}.invalid"
    repo = unique_name("app")
    image_id = _mirrored(docker, busybox_image, plain_registry, repo)
    ref = f"{host}/{repo}:latest"
    dead = dead_url()
    registry_daemon_config({"registry-hosts": {host: {"mirrors": [dead, plain_registry.url]}}})
    docker("pull", ref)
    assert json.loads(docker("image", "inspect", ref).stdout)[0]["Id"] == image_id
    docker("rmi", ref)

    # Every mirror dead: the registry itself is the last one tried, and its error is told.
    registry_daemon_config({"registry-hosts": {host: {"mirrors": [dead]}}})
    failed = docker("pull", ref, check=False, timeout=90)
    assert failed.returncode == 1
    assert f"https://{host}/v2/" in failed.stderr


def test_a_mirror_without_the_image_falls_through_to_the_registry(
        docker: Docker, plain_registry: Registry, registry_daemon_config: Callable[..., None],
        busybox_image: str, unique_name: Callable[..., str]) -> None:
    """The upstream here is the registry itself (127.0.0.1 is always insecure), the mirror
    another one without the repository: the pull ends at the upstream."""
    repo = unique_name("upstream-only")
    image_id = _mirrored(docker, busybox_image, plain_registry, repo)
    ref = f"{plain_registry.host}/{repo}:latest"
    other = Registry(Path(plain_registry.root).parent / unique_name("empty-mirror"))
    other.start()
    try:
        registry_daemon_config({"registry-hosts": {plain_registry.host: {"mirrors": [other.url]}}})
        docker("pull", ref)
        assert json.loads(docker("image", "inspect", ref).stdout)[0]["Id"] == image_id
        docker("rmi", ref)
    finally:
        other.stop()


def test_registry_mirrors_keep_their_hub_meaning() -> None:
    """registry-mirrors serve Docker Hub only; registry-hosts mirrors come first."""
    settings = RegistrySettings(mirrors=("http://127.0.0.1:5001",),
                                hosts=(("docker.io", ("http://127.0.0.1:5002",)),
                                       ("registry.k8s.io", ("http://127.0.0.1:5003",))))
    assert [e.url for e in endpoints("docker.io", settings)] == [
        "http://127.0.0.1:5002", "http://127.0.0.1:5001", "https://registry-1.docker.io"]
    k8s = endpoints("registry.k8s.io", settings)
    assert [(e.url, e.mirror) for e in k8s] == [("http://127.0.0.1:5003", True),
                                                ("https://registry.k8s.io", False)]
    assert [e.url for e in endpoints("quay.io", settings)] == ["https://quay.io"]


@pytest.mark.parametrize("value, message", [
    ([], "invalid value for registry-hosts"),
    ({"bad host": {"mirrors": []}}, 'invalid registry-hosts: "bad host" is not a valid'),
    ({"a.io:99999": {}}, "is not a valid registry host name"),
    ({"a.io": ["http://m"]}, "must be an object"),
    ({"a.io": {"mirrors": [], "server": "x"}}, "unknown key(s)"),
    ({"a.io": {"mirrors": "http://m"}}, "must be a list"),
    ({"a.io": {"mirrors": ["ftp://m"]}}, 'invalid mirror: unsupported scheme "ftp"'),
    ({"a.io": {"mirrors": ["http://u:p@m"]}}, "username/password not allowed"),
    ({"a.io": {"mirrors": ["http://m/v2/x"]}}, "path not allowed"),
    ({"a.io": {"mirrors": ["http://m/?q=1"]}}, "query or fragment"),
    ({"a.io": {"mirrors": ["http://m\n"]}}, "is not a valid URI"),
    ({"a.io": {"mirrors": ["http://m_x"]}}, "does not name a valid host"),
    ({"a.io": {"mirrors": [5]}}, "is not a valid URI"),
    ({"A.io": {"mirrors": []}, "a.io": {"mirrors": []}}, "configured twice"),
])
def test_registry_hosts_are_validated(tmp_path: Path, value: Any, message: str) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"registry-hosts": value}))
    with pytest.raises(InvalidParameter) as e:
        build({}, config_file=str(path), file_required=True)
    assert message in str(e.value)


def test_registry_hosts_canonical_form(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"registry-hosts": {
        "Registry.K8s.io": {"mirrors": ["http://127.0.0.1:15500/", "HTTPS://M.example:8443"]},
        "index.docker.io": {"mirrors": ["https://hub-mirror.example"]}}}))
    cfg = build({}, config_file=str(path), file_required=True)
    assert cfg.registry_hosts == (
        ("registry.k8s.io", ("http://127.0.0.1:15500", "https://m.example:8443")),
        ("docker.io", ("https://hub-mirror.example",)))


def test_daemon_refuses_a_bad_registry_hosts_file(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"registry-hosts": {"a.io": {"mirrors": ["gopher://m"]}}}))
    done = subprocess.run([sys.executable, "-m", "dockerd_py", "--config-file", str(path),
                           "--data-root", str(tmp_path / "data"),
                           "--exec-root", str(tmp_path / "exec"),
                           "-H", f"unix://{tmp_path}/sock", "-p", str(tmp_path / "pid")],
                          capture_output=True, text=True, timeout=60,
                          preexec_fn=die_with_test_run)
    assert done.returncode != 0
    assert 'invalid mirror: unsupported scheme "gopher"' in done.stderr
