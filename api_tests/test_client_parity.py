"""Behaviour real client programs rely on, driven through docker-py and aiodocker as a
program would; each case is what Docker's dockerd does (issue 11)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import tarfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import docker as docker_sdk
import pytest

T = TypeVar("T")


def test_kill_returns_once_the_container_is_dead(dockerpy: Any, busybox_image: str,
                                                 ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(busybox_image, ["sleep", "300"], name=ctr(), detach=True)
    c.kill()
    c.reload()
    assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)


def test_kill_with_another_signal_does_not_wait(dockerpy: Any, busybox_image: str,
                                                ctr: Callable[..., str]) -> None:
    # sh as pid 1 ignores SIGTERM: the container keeps running after the kill.
    c = dockerpy.containers.run(busybox_image, ["sh", "-c", "sleep 300"], name=ctr(),
                                detach=True)
    c.kill(signal="SIGTERM")
    c.reload()
    assert c.status == "running"
    c.kill()


def test_exec_framing_follows_the_tty_of_the_start(dockerpy: Any, busybox_image: str,
                                                   ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(busybox_image, ["sleep", "300"], name=ctr(), detach=True)
    api = dockerpy.api
    # A process with a TTY, started without one: multiplexed frames, as dockerd sends.
    # docker-py reads frames then; raw bytes would be misread as frame headers.
    exec_id = api.exec_create(c.id, ["echo", "hello"], tty=True)["Id"]
    assert api.exec_start(exec_id, tty=False, demux=True) == (b"hello\r\n", None)
    # Without a TTY, started with one: raw bytes.
    exec_id = api.exec_create(c.id, ["sh", "-c", "echo out; echo err >&2"], tty=False)["Id"]
    raw = api.exec_start(exec_id, tty=True)
    assert sorted(raw.split()) == [b"err", b"out"]


def _within(seconds: float, call: Callable[[], T]) -> T:
    """call() in a thread; an attach that never ends fails the test instead of hanging it
    (docker-py reads attach output with no timeout)."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(call).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False)


def test_attach_replays_the_logs_without_stream(dockerpy: Any, busybox_image: str,
                                                ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(busybox_image, ["sh", "-c", "echo one; echo two >&2"],
                                name=ctr(), detach=True)
    assert c.wait()["StatusCode"] == 0
    assert _within(30, lambda: c.attach(stdout=True, stderr=True, logs=True,
                                        stream=False)) == b"one\ntwo\n"
    assert _within(30, lambda: c.attach(stdout=True, stderr=False, logs=True,
                                        stream=False)) == b"one\n"
    # A running container too: the logs so far, then the connection closes.
    r = dockerpy.containers.run(busybox_image, ["sh", "-c", "echo ready; sleep 300"],
                                name=ctr(), detach=True)
    for _ in range(100):
        if r.logs():
            break
        time.sleep(0.05)
    assert _within(30, lambda: r.attach(stdout=True, stderr=True, logs=True,
                                        stream=False)) == b"ready\n"


def test_attach_replays_then_follows(dockerpy: Any, busybox_image: str,
                                     ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(busybox_image,
                                ["sh", "-c", "echo before; sleep 1; echo after"],
                                name=ctr(), detach=True)
    for _ in range(100):
        if c.logs():
            break
        time.sleep(0.05)
    out = _within(30, lambda: b"".join(c.attach(stdout=True, stderr=True, logs=True,
                                                stream=True)))
    assert out == b"before\nafter\n"


async def test_websocket_attach_carries_stdin_and_output(
        aiodocker_client: Callable[[], Any], busybox_image: str,
        ctr: Callable[..., str]) -> None:
    client = aiodocker_client()
    container = await client.containers.create_or_replace(
        name=ctr(), config={"Image": busybox_image, "Cmd": ["cat"], "OpenStdin": True,
                            "AttachStdin": True})
    await container.start()
    ws = await container.websocket(stdin=True, stdout=True, stream=True)
    try:
        await ws.send_bytes(b"ping\n")
        msg = await asyncio.wait_for(ws.receive(), 10)
        assert msg.data == b"ping\n"
    finally:
        await ws.close()
        await container.delete(force=True)


def test_websocket_attach_of_a_missing_container_is_404(dockerpy: Any) -> None:
    resp = dockerpy.api._get(dockerpy.api._url("/containers/{0}/attach/ws", "missing-ctr"))
    assert resp.status_code == 404
    assert resp.json() == {"message": "No such container: missing-ctr"}


# -- swarm and plugins: a node that is in no swarm and has no plugins ---------------------

NOT_A_MANAGER = ('This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
                 'join" to connect this node to swarm and try again.')


def test_swarm_leave_in_cleanup_code(dockerpy: Any) -> None:
    # docker-py takes dockerd's 503 for "nothing to leave"; a 404 raised NotFound.
    assert dockerpy.swarm.leave(force=True) is True
    with pytest.raises(docker_sdk.errors.APIError) as failed:
        dockerpy.swarm.leave()
    assert failed.value.status_code == 503
    assert failed.value.explanation == "This node is not part of a swarm"


@pytest.mark.parametrize("method, path", [
    ("GET", "/swarm/unlockkey"), ("POST", "/swarm/unlock"), ("GET", "/nodes/abc"),
    ("DELETE", "/nodes/abc"), ("POST", "/services/create"), ("GET", "/services/abc"),
    ("DELETE", "/services/abc"), ("GET", "/tasks/abc"), ("POST", "/secrets/create"),
    ("GET", "/secrets/abc"), ("DELETE", "/configs/abc"), ("POST", "/nodes/abc/update?version=3"),
    ("GET", "/services/abc/logs?stdout=1"),
])
def test_swarm_routes_answer_as_a_node_in_no_swarm(dockerpy: Any, method: str,
                                                   path: str) -> None:
    r = dockerpy.api.request(method, dockerpy.api._url(path), json={} if method == "POST"
                             else None)
    assert (r.status_code, r.json()) == (503, {"message": NOT_A_MANAGER})


def test_swarm_update_checks_its_version_first(dockerpy: Any) -> None:
    r = dockerpy.api.request("POST", dockerpy.api._url("/services/abc/update"), json={})
    assert r.status_code == 400
    assert r.json()["message"] == ("invalid service version '': strconv.ParseUint: "
                                   'parsing "": invalid syntax')


def test_no_plugins(dockerpy: Any) -> None:
    assert dockerpy.plugins.list() == []
    with pytest.raises(docker_sdk.errors.NotFound) as missing:
        dockerpy.plugins.get("someplugin")
    assert missing.value.explanation == 'plugin "someplugin" not found'
    r = dockerpy.api.request("DELETE", dockerpy.api._url("/plugins/someplugin"))
    assert (r.status_code, r.json()) == (404, {"message": 'plugin "someplugin" not found'})


# -- figures clients read -------------------------------------------------------------------

async def test_inspect_carries_the_keys_dockerd_always_sends(
        aiodocker_client: Callable[[], Any], busybox_image: str,
        ctr: Callable[..., str]) -> None:
    client = aiodocker_client()
    # The smallest body a program sends: dockerd still answers with whole structs.
    c = await client.containers.create(name=ctr(), config={"Image": busybox_image})
    attrs = await c.show()
    config, hc = attrs["Config"], attrs["HostConfig"]
    for key in ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout",
                "AttachStderr"):
        assert config[key] is False, key
    assert (config["Domainname"], config["WorkingDir"], config["OnBuild"]) == ("", "", None)
    assert "ExposedPorts" not in config  # omitempty in dockerd's struct
    assert hc["MemorySwappiness"] is None and hc["PidsLimit"] is None
    assert (hc["ShmSize"], hc["IpcMode"], hc["ConsoleSize"]) == (64 << 20, "private", [0, 0])
    assert hc["Privileged"] is False and hc["CapAdd"] is None and hc["Memory"] == 0
    assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
    assert attrs["ExecIDs"] is None
    await c.delete(force=True)


def test_exec_ids_in_inspect(dockerpy: Any, busybox_image: str,
                             ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(busybox_image, ["sleep", "300"], name=ctr(), detach=True)
    first = dockerpy.api.exec_create(c.id, ["true"])["Id"]
    second = dockerpy.api.exec_create(c.id, ["true"])["Id"]
    c.reload()
    assert c.attrs["ExecIDs"] == [first, second]


def test_prunes_report_what_they_reclaimed(dockerpy: Any, busybox_image: str,
                                           ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.run(
        busybox_image, ["sh", "-c", "head -c 1048576 /dev/zero > /blob"], name=ctr(),
        labels={"parity-prune": ctr()}, detach=True)
    c.wait()
    label = c.labels["parity-prune"]
    report = dockerpy.containers.prune(filters={"label": f"parity-prune={label}"})
    assert report["ContainersDeleted"] == [c.id]
    assert report["SpaceReclaimed"] >= 1 << 20
    assert dockerpy.api.prune_builds(filters={"until": "1s"})["CachesDeleted"] is None


def test_system_df_counts_containers(dockerpy: Any, busybox_image: str,
                                     ctr: Callable[..., str]) -> None:
    c = dockerpy.containers.create(busybox_image, ["true"], name=ctr())
    usage = dockerpy.df()
    listed = [x for x in usage["Containers"] if x["Id"] == c.id]
    assert len(listed) == 1 and listed[0]["SizeRw"] >= 0
    image_id = dockerpy.images.get(busybox_image).id
    image = next(i for i in usage["Images"] if i["Id"] == image_id)
    assert image["Containers"] >= 1


def test_stats_carry_network_counters(dockerpy: Any, busybox_image: str,
                                      ctr: Callable[..., str]) -> None:
    bridged = dockerpy.containers.run(busybox_image, ["sleep", "300"], name=ctr(), detach=True)
    stats = bridged.stats(stream=False)
    assert set(stats["networks"]) == {"eth0"}
    assert set(stats["networks"]["eth0"]) == {
        "rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
        "tx_bytes", "tx_packets", "tx_errors", "tx_dropped"}
    isolated = dockerpy.containers.run(busybox_image, ["sleep", "300"], name=ctr(),
                                       network_mode="none", detach=True)
    assert "networks" not in isolated.stats(stream=False)


def test_broken_load_raises_the_load_error(dockerpy: Any) -> None:
    with pytest.raises(docker_sdk.errors.ImageLoadError):
        dockerpy.images.load(b"this is not a tar archive\n" * 100)


@pytest.mark.parametrize("platform, message", [
    ("linux/amd64!", '"amd64!" is an invalid component of "linux/amd64!": platform '
                     'specifier component must match "^[A-Za-z0-9_-]+$": invalid argument'),
    ("bogus", '"bogus": unknown operating system or architecture: invalid argument'),
    ("a/b/c/d", '"a/b/c/d": cannot parse platform specifier: invalid argument'),
])
def test_invalid_platform_is_a_400_before_any_registry(dockerpy: Any, platform: str,
                                                       message: str) -> None:
    # Nothing listens on port 9: a platform that passed would fail on the connection.
    with pytest.raises(docker_sdk.errors.APIError) as pull:
        dockerpy.images.pull("127.0.0.1:9/parity/none", tag="1", platform=platform)
    assert (pull.value.status_code, pull.value.explanation) == (400, message)
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = b"FROM 127.0.0.1:9/parity/none:1\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    with pytest.raises(docker_sdk.errors.APIError) as build:
        list(dockerpy.api.build(fileobj=io.BytesIO(context.getvalue()), custom_context=True,
                                platform=platform, decode=True))
    assert (build.value.status_code, build.value.explanation) == (400, message)
