"""Schemathesis against a real daemon: every operation of the v1.50 spec, a bounded
number of generated requests each (valid and invalid by the spec), and not one
answer may be a 5xx (save the 503 a swarm-less dockerd gives), nor an error
without dockerd's {"message": str} JSON body.

Two passes, on a daemon of this module's own (it listens on 127.0.0.1 as well,
for schemathesis's HTTP client):
  * every operation, path parameters generated (most name nothing: 404s, but
    the bodies and queries are checked first, as dockerd does);
  * the operations on one object, with the path naming a real container, image,
    network, volume or exec instance, so the handlers behind the lookups run.

Left out, and why:
  * operations that reach registries or URLs, i.e. traffic off this machine:
    POST /images/create (pull, or import from a URL), POST /images/{name}/push,
    GET /distribution/{name}/json, POST /auth (logs in), GET /images/search,
    POST /build (FROM pulls, `remote` fetches);
  * streams that end only when the client leaves: GET /events, and on live
    objects logs, stats, attach, wait (the first pass still checks their
    parameters against unknown containers); export on live objects too (a
    rootfs tar per request, slow and checked by the cp/export tests);
  * on live objects, what would take the objects away or block on them: DELETE,
    prune, rename, stop and restart (their `t` is fixed to 0 instead of skipped);
  * the network option com.docker.network.bridge.name is dropped from generated
    network bodies: it names a host interface in firewall rules (issue 14 item 2,
    fixed elsewhere), which a fuzzer must not write on the host.

DPY_FUZZ_EXAMPLES sets the examples per operation and pass (default 40);
DPY_FUZZ_SEED a seed (default: derandomized, the same requests every run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .conftest import DOCKER_CLI, Daemon, stop_and_check
from .enginespec import spec_path

EXAMPLES = int(os.environ.get("DPY_FUZZ_EXAMPLES", "40"))
SEED = os.environ.get("DPY_FUZZ_SEED")
TIMEOUT = 20.0

OFF_MACHINE = {("POST", "/images/create"), ("POST", "/images/{name}/push"),
               ("GET", "/distribution/{name}/json"), ("POST", "/auth"),
               ("GET", "/images/search"), ("POST", "/build")}
ENDLESS = {("GET", "/events")}
# on live objects: streams, and what removes or blocks on the object
LIVE_SKIP = {("GET", "/containers/{id}/logs"), ("GET", "/containers/{id}/stats"),
             ("POST", "/containers/{id}/attach"), ("GET", "/containers/{id}/attach/ws"),
             ("POST", "/containers/{id}/wait"), ("POST", "/containers/{id}/rename"),
             ("GET", "/containers/{id}/export")}
# dockerd's answers without a swarm (503), which the spec documents
SWARM_ONLY = ("/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs")
SWARM_503 = {("PUT", "/volumes/{name}"), ("POST", "/volumes/create")}
# what this daemon refuses by design (a 501 in dockerd's message shape): joining a swarm and
# installing plugins
REFUSED_501 = {("POST", "/swarm/init"), ("POST", "/swarm/join"),
               ("GET", "/plugins/privileges"), ("POST", "/plugins/pull"),
               ("POST", "/plugins/create")}

schemathesis.serializer.alias("application/x-tar", "application/octet-stream")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def fuzz_daemon() -> Iterator[tuple[Daemon, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="dpf-", dir="/tmp"))
    port = _free_port()
    d = Daemon(tmp, extra_args=("-H", f"tcp://127.0.0.1:{port}"))
    d.start()
    try:
        yield d, f"http://127.0.0.1:{port}"
    finally:
        stop_and_check(d, tmp)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def schema() -> Any:
    return schemathesis.openapi.from_path(spec_path())


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _key(op: Any) -> tuple[str, str]:
    return op.method.upper(), op.path


def _problem(op: Any, response: Any) -> str | None:
    """What is wrong with an answer, or None."""
    method, path = _key(op)
    status = response.status_code
    if status >= 500:
        swarm = path.startswith(SWARM_ONLY) or (method, path) in SWARM_503
        refused = status == 501 and (method, path) in REFUSED_501
        if not (status == 503 and swarm) and not refused:
            return f"status {status}"
    if status < 400 or status == 304 or method == "HEAD":
        return None
    ctype = (response.headers.get("content-type") or [""])[0]
    if ctype != "application/json":
        return f"status {status} with Content-Type {ctype!r}"
    try:
        doc = json.loads(response.content)
    except ValueError:
        return f"status {status} with a body that is not JSON"
    if not (isinstance(doc, dict) and set(doc) == {"message"} and isinstance(doc["message"],
                                                                              str)):
        return f"status {status} with error body {doc!r}"
    return None


def _without_bridge_name(case: Any) -> Any:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("Options"), dict):
        body["Options"].pop("com.docker.network.bridge.name", None)
    return case


def _with_image(case: Any) -> Any:
    if isinstance(case.body, dict):
        case.body["Image"] = "busybox:latest"
    return case


def _fuzz(base_url: str, op: Any, examples: int, counts: Counter[str],
          failures: list[str], *, image: bool = False, **fixed: Any) -> None:
    strategy = st.one_of(op.as_strategy(schemathesis.GenerationMode.POSITIVE, **fixed),
                         op.as_strategy(schemathesis.GenerationMode.NEGATIVE, **fixed))
    if _key(op) == ("POST", "/networks/create"):
        strategy = strategy.map(_without_bridge_name)
    if image:   # a create that gets past the image lookup
        strategy = strategy.map(_with_image)

    @settings(max_examples=examples, deadline=None, database=None,
              derandomize=SEED is None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, timeout=TIMEOUT)
        except requests.RequestException as e:
            failures.append(f"{op.label}: {type(e).__name__}: {e}\n    "
                            f"{case.as_curl_command(base_url=base_url)[:1000]}")
            return
        counts[f"{response.status_code}"] += 1
        problem = _problem(op, response)
        if problem:
            failures.append(f"{op.label}: {problem}: {response.content[:300]!r}\n    "
                            f"{case.as_curl_command(base_url=base_url)[:1000]}")

    if SEED is not None:
        run = seed(int(SEED))(run)
    run()


def _report(failures: list[str], counts: Counter[str], started: float) -> str:
    return (f"{len(failures)} bad answers ({dict(sorted(counts.items()))}, "
            f"{time.monotonic() - started:.0f}s):\n" + "\n".join(failures[:60]))


def test_fuzz_every_operation(fuzz_daemon: tuple[Daemon, str], schema: Any) -> None:
    _, base_url = fuzz_daemon
    failures: list[str] = []
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for op in _operations(schema):
        if _key(op) in OFF_MACHINE | ENDLESS:
            continue
        _fuzz(base_url, op, EXAMPLES, counts, failures)
    assert not failures, _report(failures, counts, started)


def _cli(d: Daemon) -> Callable[..., str]:
    def run(*args: str) -> str:
        out = subprocess.run([DOCKER_CLI, *args], env=d.cli_env(), capture_output=True,
                             text=True, timeout=120, check=False)
        assert out.returncode == 0, f"docker {' '.join(args)}: {out.stderr}"
        return out.stdout.strip()
    return run


def test_fuzz_live_objects(fuzz_daemon: tuple[Daemon, str], schema: Any,
                           busybox_tar: Path) -> None:
    d, base_url = fuzz_daemon
    cli = _cli(d)
    cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    objects = {
        "container": cli("run", "-d", "--name", "fuzzc", "busybox", "sleep", "3600"),
        "lifecycle": cli("run", "-d", "--name", "fuzzlife", "busybox", "sleep", "3600"),
        "network": cli("network", "create", "fuzznet"),
        "volume": cli("volume", "create", "fuzzvol"),
        "image": "busybox:latest",
    }
    exec_id = requests.post(f"{base_url}/containers/fuzzc/exec", json={"Cmd": ["true"]},
                            timeout=TIMEOUT).json()["Id"]
    lifecycle = ("/start", "/stop", "/restart", "/kill", "/pause", "/unpause")
    failures: list[str] = []
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for op in _operations(schema):
        method, path = _key(op)
        if (method, path) in OFF_MACHINE | ENDLESS | LIVE_SKIP or method == "DELETE" \
                or path.endswith("/prune"):
            continue
        fixed: dict[str, Any] = {}
        if path.startswith("/containers/{id}"):
            name = "lifecycle" if path.endswith(lifecycle) else "container"
            fixed["path_parameters"] = {"id": objects[name]}
            if path.endswith(("/stop", "/restart")):
                fixed["query"] = {"t": "0"}
        elif path.startswith("/images/{name}"):
            fixed["path_parameters"] = {"name": objects["image"]}
        elif path.startswith("/networks/{id}"):
            fixed["path_parameters"] = {"id": objects["network"]}
        elif path.startswith("/volumes/{name}"):
            fixed["path_parameters"] = {"name": objects["volume"]}
        elif path.startswith("/exec/{id}"):
            fixed["path_parameters"] = {"id": exec_id}
        elif (method, path) == ("POST", "/commit"):
            fixed["query"] = {"container": objects["container"]}
        elif (method, path) == ("POST", "/containers/create"):
            fixed["image"] = True
        else:
            continue
        _fuzz(base_url, op, EXAMPLES, counts, failures, **fixed)
    assert not failures, _report(failures, counts, started)
