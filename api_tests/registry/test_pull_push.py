"""docker push / pull / run against the reference registry (plain HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from .fixtures import Registry

Docker = Callable[..., Any]


def image_id(docker: Docker, ref: str) -> str:
    return str(docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip())


def repo_digests(docker: Docker, ref: str) -> list[str]:
    return list(json.loads(docker("image", "inspect", "-f", "{{json .RepoDigests}}",
                                  ref).stdout))


def pushed_digest(output: str, tag: str) -> str:
    m = re.search(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: \d+$", output, re.M)
    assert m, output
    return m.group(1)


def test_round_trip_push_remove_pull_run(docker: Docker, plain_registry: Registry,
                                         layered_image: str, unique_name: Callable[..., str]
                                         ) -> None:
    remote = f"{plain_registry.host}/rt/{unique_name('img')}:v1"
    original = image_id(docker, layered_image)
    docker("tag", layered_image, remote)

    push = docker("push", remote)
    assert f"The push refers to repository [{remote.rsplit(':', 1)[0]}]" in push.stdout
    # busybox's layer may already be in the registry (another test pushed it): mounted.
    assert push.stdout.count(": Pushed") >= 2, push.stdout
    assert push.stdout.count(": Pushed") + push.stdout.count(": Mounted from ") == 3
    digest = pushed_digest(push.stdout, "v1")
    assert f"{remote.rsplit(':', 1)[0]}@{digest}" in repo_digests(docker, remote)

    again = docker("push", remote)
    assert again.stdout.count(": Layer already exists") == 3, again.stdout
    assert pushed_digest(again.stdout, "v1") == digest

    docker("rmi", remote, layered_image)
    assert docker("image", "inspect", remote, check=False).returncode != 0

    pull = docker("pull", remote)
    assert "v1: Pulling from rt/" in pull.stdout
    # busybox, the base layer, is still here: only the two committed layers travel.
    assert pull.stdout.count(": Already exists") == 1, pull.stdout
    assert pull.stdout.count(": Pull complete") == 2, pull.stdout
    assert f"Digest: {digest}" in pull.stdout
    assert f"Status: Downloaded newer image for {remote}" in pull.stdout
    assert pull.stdout.rstrip().endswith(remote)
    assert image_id(docker, remote) == original
    assert f"{remote.rsplit(':', 1)[0]}@{digest}" in repo_digests(docker, remote)

    run = docker("run", "--rm", "--network", "none", remote, "sh", "-c",
                 "wc -c < /data/f1; wc -c < /data/f2")
    assert run.stdout.split() == ["20000", "40000"]

    up_to_date = docker("pull", remote)
    assert f"Status: Image is up to date for {remote}" in up_to_date.stdout
    assert "Pull complete" not in up_to_date.stdout
    docker("rmi", remote)


def test_shared_layers_not_fetched_again(docker: Docker, plain_registry: Registry,
                                         layered_image: str, busybox_image: str,
                                         unique_name: Callable[..., str]) -> None:
    remote = f"{plain_registry.host}/rt/{unique_name('shared')}:latest"
    docker("tag", layered_image, remote)
    docker("push", remote)
    docker("rmi", remote, layered_image)
    # busybox (the base layer) is still here: only the two committed layers travel.
    pull = docker("pull", remote)
    assert pull.stdout.count(": Already exists") == 1, pull.stdout
    assert pull.stdout.count(": Pull complete") == 2, pull.stdout
    docker("rmi", remote)


def test_push_to_second_repository_mounts_blobs(docker: Docker, plain_registry: Registry,
                                                layered_image: str,
                                                unique_name: Callable[..., str]) -> None:
    first = f"{plain_registry.host}/rt/{unique_name('src')}:latest"
    second = f"{plain_registry.host}/other/{unique_name('dst')}:latest"
    docker("tag", layered_image, first)
    docker("tag", layered_image, second)
    docker("push", first)
    push = docker("push", second)
    assert push.stdout.count(": Mounted from ") == 3, push.stdout  # from any repo that has it
    docker("rmi", first, second)


def test_pull_by_digest_all_tags_and_quiet(docker: Docker, plain_registry: Registry,
                                           layered_image: str, busybox_image: str,
                                           unique_name: Callable[..., str]) -> None:
    repo = f"{plain_registry.host}/rt/{unique_name('tags')}"
    docker("tag", layered_image, f"{repo}:a")
    docker("tag", busybox_image, f"{repo}:b")
    push = docker("push", "--all-tags", repo)
    digest_a = pushed_digest(push.stdout, "a")
    pushed_digest(push.stdout, "b")
    docker("rmi", f"{repo}:a", f"{repo}:b")

    by_digest = docker("pull", f"{repo}@{digest_a}")
    assert f"Digest: {digest_a}" in by_digest.stdout
    assert f"Status: Downloaded newer image for {repo}@{digest_a}" in by_digest.stdout
    assert image_id(docker, f"{repo}@{digest_a}") == image_id(docker, layered_image)

    everything = docker("pull", "--all-tags", repo)
    assert "a: Pulling from" in everything.stdout and "b: Pulling from" in everything.stdout
    assert image_id(docker, f"{repo}:b") == image_id(docker, busybox_image)

    docker("rmi", f"{repo}:a", f"{repo}:b", f"{repo}@{digest_a}", check=False)
    quiet = docker("pull", "-q", f"{repo}:a")
    assert quiet.stdout.strip() == f"{repo}:a"
    docker("rmi", f"{repo}:a")


def test_run_pulls_a_missing_image(docker: Docker, plain_registry: Registry, layered_image: str,
                                   unique_name: Callable[..., str]) -> None:
    remote = f"{plain_registry.host}/rt/{unique_name('run')}:latest"
    docker("tag", layered_image, remote)
    docker("push", remote)
    docker("rmi", remote)
    run = docker("run", "--rm", "--network", "none", remote, "sh", "-c", "wc -c < /data/f1")
    assert f"Unable to find image '{remote}' locally" in run.stderr
    assert f"Status: Downloaded newer image for {remote}" in run.stderr
    assert run.stdout.strip() == "20000"
    docker("rmi", remote)


def test_missing_manifest_and_repository(docker: Docker, plain_registry: Registry,
                                         layered_image: str, unique_name: Callable[..., str]
                                         ) -> None:
    repo = f"{plain_registry.host}/rt/{unique_name('missing')}"
    # The reference registry answers MANIFEST_UNKNOWN for a repository it never saw.
    nothing = docker("pull", f"{repo}:nope", check=False)
    assert nothing.returncode == 1
    assert f"Error response from daemon: manifest for {repo}:nope not found: " \
        "manifest unknown: manifest unknown" in nothing.stderr
    docker("tag", layered_image, f"{repo}:yes")
    docker("push", f"{repo}:yes")
    missing = docker("pull", f"{repo}:nope", check=False)
    assert f"Error response from daemon: manifest for {repo}:nope not found: manifest unknown" \
        in missing.stderr
    no_image = docker("push", f"{repo}:never", check=False)
    assert f"An image does not exist locally with the tag: {repo}" in no_image.stderr
    docker("rmi", f"{repo}:yes")


def test_docker_py_pull_push_and_registry_data(dockerpy: Any, docker: Docker,
                                               plain_registry: Registry, layered_image: str,
                                               unique_name: Callable[..., str]) -> None:
    repo = f"{plain_registry.host}/py/{unique_name('py')}"
    dockerpy.images.get(layered_image).tag(repo, "one")
    lines = list(dockerpy.images.push(repo, tag="one", stream=True, decode=True))
    assert any(line.get("aux", {}).get("Tag") == "one" for line in lines), lines
    assert not any("error" in line for line in lines), lines
    dockerpy.images.remove(f"{repo}:one")
    image = dockerpy.images.pull(repo, tag="one")
    assert image.id == image_id(docker, layered_image)
    data = dockerpy.images.get_registry_data(f"{repo}:one")
    assert data.id.startswith("sha256:")
    assert data.has_platform("linux/amd64")
    dockerpy.images.remove(f"{repo}:one")


def _put_blob(base: str, repo: str, data: bytes, digest: str) -> None:
    start = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    put = requests.put(f"{location}{sep}digest={digest}", data=data, timeout=30,
                       headers={"Content-Type": "application/octet-stream"})
    assert put.status_code == 201, put.text


def test_manifest_list_platform_selection(docker: Docker, plain_registry: Registry,
                                          busybox_image: str, unique_name: Callable[..., str]
                                          ) -> None:
    """An index with amd64 (pushed by the daemon) and arm64 (same layer, other config)."""
    import hashlib

    name = unique_name("multi")
    repo = f"rt/{name}"
    remote = f"{plain_registry.host}/{repo}"
    base = plain_registry.url
    docker("tag", busybox_image, f"{remote}:amd64")
    digest = pushed_digest(docker("push", f"{remote}:amd64").stdout, "amd64")
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                        "application/vnd.oci.image.manifest.v1+json"}
    amd64 = requests.get(f"{base}/v2/{repo}/manifests/{digest}", headers=accept, timeout=30)
    manifest = amd64.json()
    config = requests.get(f"{base}/v2/{repo}/blobs/{manifest['config']['digest']}",
                          timeout=30).json()
    config["architecture"] = "arm64"
    config["variant"] = "v8"
    arm_config = json.dumps(config).encode()
    arm_digest = "sha256:" + hashlib.sha256(arm_config).hexdigest()
    _put_blob(base, repo, arm_config, arm_digest)
    manifest["config"] = {**manifest["config"], "digest": arm_digest, "size": len(arm_config)}
    arm_manifest = json.dumps(manifest).encode()
    arm_manifest_digest = "sha256:" + hashlib.sha256(arm_manifest).hexdigest()
    ctype = {"Content-Type": manifest["mediaType"]}
    assert requests.put(f"{base}/v2/{repo}/manifests/{arm_manifest_digest}", data=arm_manifest,
                        headers=ctype, timeout=30).status_code == 201
    index = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            {"mediaType": manifest["mediaType"], "digest": arm_manifest_digest,
             "size": len(arm_manifest), "platform": {"architecture": "arm64", "os": "linux",
                                                     "variant": "v8"}},
            {"mediaType": manifest["mediaType"], "digest": digest, "size": len(amd64.content),
             "platform": {"architecture": "amd64", "os": "linux"}},
        ]}).encode()
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    ctype = {"Content-Type": "application/vnd.docker.distribution.manifest.list.v2+json"}
    assert requests.put(f"{base}/v2/{repo}/manifests/latest", data=index, headers=ctype,
                        timeout=30).status_code == 201

    native = docker("pull", remote)
    assert f"Digest: {index_digest}" in native.stdout
    assert image_id(docker, remote) == image_id(docker, busybox_image)
    assert f"{remote}@{index_digest}" in repo_digests(docker, remote)

    arm = docker("pull", "--platform", "linux/arm64", f"{remote}:latest")
    assert "Downloaded newer image" in arm.stdout
    assert docker("image", "inspect", "-f", "{{.Architecture}}", remote).stdout.strip() == "arm64"
    assert image_id(docker, remote) == arm_digest

    none = docker("pull", "--platform", "linux/s390x", remote, check=False)
    assert "no matching manifest for linux/s390x in the manifest list entries" in none.stderr
    docker("rmi", f"{remote}:latest", f"{remote}:amd64")


def test_hub_names_fail_fast_without_network(docker: Docker) -> None:
    result = docker("pull", "dpy-not-on-hub-anyway", check=False, timeout=90)
    assert result.returncode == 1
    assert "Using default tag: latest" in result.stderr + result.stdout
    assert 'Error response from daemon: Get "https://registry-1.docker.io/v2/": ' in result.stderr


@pytest.mark.parametrize("ref", ["a:b:c", "host:5000/Upper"])
def test_bad_references_are_400(docker: Docker, ref: str) -> None:
    result = docker("pull", ref, check=False)
    assert result.returncode != 0
    assert "invalid reference format" in result.stderr


def test_build_from_a_registry_image_pulls_it(docker: Docker, plain_registry: Registry,
                                              busybox_image: str, tmp_path: Any,
                                              unique_name: Callable[..., str]) -> None:
    base = f"{plain_registry.host}/rt/{unique_name('base')}:latest"
    docker("tag", busybox_image, base)
    docker("push", base)
    docker("rmi", base)
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\nRUN echo built > /built\n")
    name = unique_name("built")
    env = {"DOCKER_BUILDKIT": "0"}
    build = docker("build", "-t", name, tmp_path, env=env)
    assert "Pulling from rt/" in build.stdout + build.stderr
    assert docker("image", "inspect", base, check=False).returncode == 0
    run = docker("run", "--rm", "--network", "none", name, "cat", "/built")
    assert run.stdout.strip() == "built"
    again = docker("build", "--pull", "-t", name, tmp_path, env=env)
    assert f"Status: Image is up to date for {base}" in again.stdout + again.stderr
    docker("rmi", name, base)
