"""Login, Basic and token auth, TLS with certs.d, insecure-registries and mirrors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from .fixtures import Registry

Docker = Callable[..., Any]


def login(docker: Docker, registry: Registry, password: str | None = None,
          check: bool = True) -> Any:
    return docker("login", registry.host, "-u", registry.user,  # type: ignore[attr-defined]
                  "--password-stdin",
                  input=(password or registry.password) + "\n",  # type: ignore[attr-defined]
                  check=check)


def test_basic_auth_login_push_pull_logout(docker: Docker, daemon: Any,
                                           basic_registry: Registry,
                                           busybox_image: str, unique_name: Callable[..., str]
                                           ) -> None:
    remote = f"{basic_registry.host}/auth/{unique_name('basic')}:latest"
    docker("tag", busybox_image, remote)
    anonymous = docker("pull", remote, check=False)
    assert anonymous.returncode == 1
    assert "no basic auth credentials" in anonymous.stderr

    wrong = login(docker, basic_registry, "not-the-password", check=False)
    assert wrong.returncode == 1
    assert (f"login attempt to http://{basic_registry.host}/v2/ failed with status: "
            "401 Unauthorized") in wrong.stderr

    assert "Login Succeeded" in login(docker, basic_registry).stdout
    import docker as docker_sdk

    client = docker_sdk.DockerClient(base_url=daemon.host)
    try:
        answer = client.login(username=basic_registry.user,  # type: ignore[attr-defined]
                              password=basic_registry.password,  # type: ignore[attr-defined]
                              registry=basic_registry.host, reauth=True)
        assert answer["Status"] == "Login Succeeded"
    finally:
        client.close()
    try:
        push = docker("push", remote)
        assert "latest: digest: sha256:" in push.stdout
        docker("rmi", remote)
        pull = docker("pull", remote)
        assert f"Status: Downloaded newer image for {remote}" in pull.stdout
    finally:
        docker("logout", basic_registry.host)
    docker("rmi", remote)
    assert "no basic auth credentials" in docker("pull", remote, check=False).stderr


def test_token_auth_with_scopes_and_identity_token(docker: Docker, daemon: Any,
                                                   token_registry: Registry, busybox_image: str,
                                                   unique_name: Callable[..., str]) -> None:
    remote = f"{token_registry.host}/tok/{unique_name('token')}:v1"
    docker("tag", busybox_image, remote)
    anonymous = docker("push", remote, check=False)
    assert anonymous.returncode == 1
    assert "unauthorized: authentication required" in anonymous.stderr

    wrong = login(docker, token_registry, "nope", check=False)
    assert wrong.returncode == 1
    assert "invalid username or password" in wrong.stderr

    assert "Login Succeeded" in login(docker, token_registry).stdout
    try:
        # The token server granted a refresh token: the CLI keeps it instead of the password.
        config = json.loads((daemon.tmp / "cli" / "config.json").read_text())
        entry = config["auths"][token_registry.host]
        assert entry.get("identitytoken")
        assert base64.b64decode(entry["auth"]) == b"bob:"  # no password kept
        push = docker("push", remote)
        assert push.stdout.count(": Pushed") == 1, push.stdout
        docker("rmi", remote)
        pull = docker("pull", remote)
        assert f"Status: Downloaded newer image for {remote}" in pull.stdout
    finally:
        docker("logout", token_registry.host)
    docker("rmi", remote)
    assert docker("pull", remote, check=False).returncode == 1


def test_tls_registry_needs_its_ca_in_certs_d(docker: Docker, tls_registry: Registry,
                                              busybox_image: str, request: Any,
                                              unique_name: Callable[..., str]) -> None:
    remote = f"{tls_registry.host}/tls/{unique_name('tls')}:latest"
    docker("tag", busybox_image, remote)
    untrusted = docker("push", remote, check=False)
    assert untrusted.returncode == 1
    assert (f'Get "https://{tls_registry.host}/v2/": tls: failed to verify certificate: '
            "x509: certificate signed by unknown authority") in untrusted.stderr

    request.getfixturevalue("certs_d")
    push = docker("push", remote)
    assert "latest: digest: sha256:" in push.stdout
    docker("rmi", remote)
    docker("pull", remote)
    docker("rmi", remote)


def test_client_certificate_from_certs_d(docker: Docker, mtls_registry: Registry,
                                        busybox_image: str, unique_name: Callable[..., str]
                                        ) -> None:
    import shutil

    from .fixtures import CERTS_D

    remote = f"{mtls_registry.host}/mtls/{unique_name('mtls')}:latest"
    docker("tag", busybox_image, remote)
    directory = CERTS_D / mtls_registry.host
    directory.mkdir(parents=True)
    try:
        shutil.copy(mtls_registry.ca, directory / "ca.crt")  # type: ignore[attr-defined]
        refused = docker("push", remote, check=False)  # the CA alone is not enough
        assert refused.returncode == 1
        assert f'"https://{mtls_registry.host}/v2/"' in refused.stderr

        cert, key = mtls_registry.client  # type: ignore[attr-defined]
        shutil.copy(cert, directory / "client.cert")
        shutil.copy(key, directory / "client.key")
        assert "latest: digest: sha256:" in docker("push", remote).stdout
        docker("rmi", remote)
        docker("pull", remote)
        docker("rmi", remote)
    finally:
        shutil.rmtree(directory)


def test_plain_http_only_for_insecure_registries(docker: Docker,
                                                 offnet_plain_registry: Registry,
                                                 registry_daemon_config: Callable[..., None],
                                                 busybox_image: str,
                                                 unique_name: Callable[..., str]) -> None:
    reg = offnet_plain_registry
    remote = f"{reg.host}/plain/{unique_name('insecure')}:latest"
    docker("tag", busybox_image, remote)
    refused = docker("push", remote, check=False)
    assert refused.returncode == 1
    assert (f'Get "https://{reg.host}/v2/": http: server gave HTTP response to HTTPS client'
            in refused.stderr)
    assert docker("pull", remote, check=False).returncode == 1

    registry_daemon_config({"insecure-registries": [reg.host]})
    docker("push", remote)
    docker("rmi", remote)
    assert "Downloaded newer image" in docker("pull", remote).stdout
    docker("rmi", remote)

    registry_daemon_config({"insecure-registries": [f"{reg.ip}/32"]})  # a CIDR works as well
    docker("pull", remote)
    docker("rmi", remote)


def test_registry_mirror_serves_hub_names(docker: Docker, plain_registry: Registry,
                                          registry_daemon_config: Callable[..., None],
                                          busybox_image: str, unique_name: Callable[..., str]
                                          ) -> None:
    name = unique_name("mirrored")
    docker("tag", busybox_image, f"{plain_registry.host}/library/{name}:latest")
    docker("push", f"{plain_registry.host}/library/{name}:latest")
    docker("rmi", f"{plain_registry.host}/library/{name}:latest")

    registry_daemon_config({"registry-mirrors": [plain_registry.url]})
    pull = docker("pull", name)
    assert f"latest: Pulling from library/{name}" in pull.stdout
    assert f"Status: Downloaded newer image for {name}:latest" in pull.stdout
    assert pull.stdout.rstrip().endswith(f"docker.io/library/{name}:latest")
    image = json.loads(docker("image", "inspect", name).stdout)[0]
    assert image["Id"] == json.loads(docker("image", "inspect", busybox_image).stdout)[0]["Id"]
    assert any(d.startswith(f"{name}@sha256:") for d in image["RepoDigests"])
    docker("rmi", name)

    # Not on the mirror: Docker Hub is tried next, and is unreachable here.
    missing = docker("pull", unique_name("absent"), check=False, timeout=90)
    assert missing.returncode == 1
    assert 'Get "https://registry-1.docker.io/v2/"' in missing.stderr
