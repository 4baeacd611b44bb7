"""Hostile request shapes get dockerd's 400 (issue 14, item 10), never a 500.

Bodies are typed by the v1.50 spec at the API boundary (dockerd_py/api/validation)
and refused in the words of dockerd's Go decoder; well-typed but invalid values
meet the engine's validators (dockerd's messages); the request line and headers
may be as long as Go's server allows, and past that the answer is still JSON.
Each case here answered 500, 201 or a plain-text 400 before.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import socket
import tarfile
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Daemon


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("api.moby.localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def call(daemon: Daemon, method: str, path: str, body: Any = None,
         ctype: str = "application/json") -> tuple[int, Any]:
    """(status, parsed JSON body or None); an error body must be dockerd's shape."""
    conn = _Unix(daemon.sock)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": ctype} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    if resp.status >= 400:
        assert resp.getheader("Content-Type") == "application/json", (resp.status, raw)
        doc = json.loads(raw)
        assert isinstance(doc, dict) and set(doc) == {"message"}, doc
        return resp.status, doc
    return resp.status, json.loads(raw) if raw.strip() else None


def _cannot(kind: str, field: str, gotype: str) -> str:
    return f"invalid JSON: json: cannot unmarshal {kind} into Go struct field {field} of type " \
           f"{gotype}"


@pytest.mark.parametrize(("body", "message"), [
    ({"Image": "busybox", "HostConfig": {"Binds": [1]}},
     _cannot("number", "HostConfig.HostConfig.Binds", "string")),
    ({"Image": "busybox", "Env": "A=b"},
     _cannot("string", "CreateRequest.Config.Env", "[]string")),
    ({"Image": "busybox", "Labels": ["a=b"]},
     _cannot("array", "CreateRequest.Config.Labels", "map[string]string")),
    ({"Image": "busybox", "HostConfig": "host"},
     _cannot("string", "CreateRequest.HostConfig", "container.HostConfig")),
    ({"Image": 5},
     _cannot("number", "CreateRequest.Config.Image", "string")),
    ({"Image": "busybox", "HostConfig": {"Memory": 1.5}},
     _cannot("number 1.5", "HostConfig.HostConfig.Resources.Memory", "int64")),
    ({"Image": "busybox", "HostConfig": {"RestartPolicy": {"MaximumRetryCount": "3"}}},
     _cannot("string", "RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount", "int")),
    ({"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}},
     _cannot("string", "EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases",
             "[]string")),
    ([], "invalid JSON: json: cannot unmarshal array into Go value of type "
         "container.CreateRequest"),
])
def test_create_with_wrong_types_is_400(daemon: Daemon, busybox_image: str, body: Any,
                                        message: str) -> None:
    assert call(daemon, "POST", "/containers/create", body) == (400, {"message": message})


@pytest.mark.parametrize(("body", "message"), [
    (b'{"Image": "busybox",}',
     "invalid JSON: invalid character '}' looking for beginning of object key string"),
    (b'{"Image": NaN}', "invalid JSON: invalid character 'N' looking for beginning of value"),
    (b'{"Image": "busybox"} {}', "invalid JSON: unexpected content after JSON"),
    (b"[" * 100_000, "invalid JSON: exceeded max depth"),
])
def test_create_with_bad_json_is_400(daemon: Daemon, body: bytes, message: str) -> None:
    assert call(daemon, "POST", "/containers/create", body) == (400, {"message": message})


def test_field_names_match_as_go_matches_them(daemon: Daemon, busybox_image: str,
                                              ctr: Callable[..., str]) -> None:
    """Go's decoder matches keys case-insensitively; a lone surrogate becomes U+FFFD."""
    name = ctr()
    status, doc = call(daemon, "POST", f"/containers/create?name={name}",
                       {"image": busybox_image, "cmd": "true",
                        "labels": {"k": "\ud800"}})
    assert status == 201, doc
    status, info = call(daemon, "GET", f"/containers/{name}/json")
    assert info["Config"]["Cmd"] == ["true"] and info["Config"]["Labels"]["k"] == "\ufffd"


def test_network_options_as_list_is_400(daemon: Daemon) -> None:
    status, doc = call(daemon, "POST", "/networks/create",
                       {"Name": "t-opts-list", "Options": ["a=b"]})
    assert (status, doc["message"]) == (400, _cannot(
        "array", "CreateRequest.CreateOptions.Options", "map[string]string"))


def test_other_bodies_are_typed(daemon: Daemon, busybox_image: str,
                                ctr: Callable[..., str], docker: Any) -> None:
    name = ctr()
    docker("create", "--name", name, busybox_image, "sleep", "60")
    assert call(daemon, "POST", f"/containers/{name}/exec", {"Cmd": "ls"}) == (400, {
        "message": _cannot("string", "ExecOptions.Cmd", "[]string")})
    assert call(daemon, "POST", f"/containers/{name}/update", {"Memory": "1g"}) == (400, {
        "message": _cannot("string", "UpdateConfig.Resources.Memory", "int64")})
    assert call(daemon, "POST", "/volumes/create", {"Labels": ["a"]}) == (400, {
        "message": _cannot("array", "CreateOptions.Labels", "map[string]string")})
    # POST /networks/{id}/disconnect with a number for a body used to be a 500
    status, doc = call(daemon, "POST", "/networks/bridge/disconnect", 5)
    assert (status, doc["message"]) == (400, "invalid JSON: json: cannot unmarshal number "
                                             "into Go value of type network.DisconnectOptions")


def test_negative_memory_is_400(daemon: Daemon, busybox_image: str) -> None:
    body = {"Image": busybox_image, "HostConfig": {"Memory": -5}}
    assert call(daemon, "POST", "/containers/create", body) == (
        400, {"message": "Minimum memory limit allowed is 6MB"})


@pytest.mark.parametrize(("cpuset", "message"), [
    ("garbage", "Invalid value garbage for cpuset cpus: invalid format: garbage"),
    ("0-", "Invalid value 0- for cpuset cpus: invalid format: 0-"),
    ("3-1", "Invalid value 3-1 for cpuset cpus: invalid format: 3-1"),
    ("0-9223372036854775807",
     "Invalid value 0-9223372036854775807 for cpuset cpus: value of out range, maximum is "
     "8192"),
    ("\u0663", "Invalid value \u0663 for cpuset cpus: invalid format: \u0663"),
])
def test_garbage_cpuset_is_400(daemon: Daemon, busybox_image: str, cpuset: str,
                               message: str) -> None:
    body = {"Image": busybox_image, "HostConfig": {"CpusetCpus": cpuset}}
    assert call(daemon, "POST", "/containers/create", body) == (400, {"message": message})


def test_cpuset_beyond_the_host_is_400(daemon: Daemon, busybox_image: str) -> None:
    body = {"Image": busybox_image, "HostConfig": {"CpusetMems": "4000"}}
    status, doc = call(daemon, "POST", "/containers/create", body)
    assert status == 400
    assert doc["message"].startswith("Requested memory nodes are not available - requested "
                                      "4000, available: ")


def test_name_with_trailing_newline_is_400(daemon: Daemon, busybox_image: str) -> None:
    status, doc = call(daemon, "POST", "/containers/create?name=web%0A",
                       {"Image": busybox_image})
    assert (status, doc) == (400, {"message": "Invalid container name (web\n), only "
                                              "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"})


def test_network_names_follow_dockerds_rule(daemon: Daemon) -> None:
    # dockerd refuses only a name that is all white space; a network's name never reaches
    # a program run as root (netavark and aardvark-dns know networks by their IDs)
    status, doc = call(daemon, "POST", "/networks/create", {"Name": " \n"})
    assert (status, doc) == (400, {"message": "invalid name:  \n"})
    status, doc = call(daemon, "POST", "/networks/create", {"Name": "net\n"})
    assert status == 201, doc
    assert call(daemon, "DELETE", f"/networks/{doc['Id']}")[0] == 204


def _raw(daemon: Daemon, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(daemon.sock)
        try:
            s.sendall(request)
        except BrokenPipeError:
            pass    # the daemon answered and closed before reading it all
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass    # closed with our request unread: the answer came first

    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_long_request_line(daemon: Daemon) -> None:
    """dockerd (Go) takes a 9 KB request line; past its 1 MiB the refusal is JSON."""
    pad = "a" * 9000
    status, _, body = _raw(daemon, f"GET /_ping?pad={pad} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    assert (status, body) == (200, b"OK")
    pad = "a" * (2 << 20)
    status, headers, body = _raw(daemon, f"GET /_ping?pad={pad} HTTP/1.0\r\n\r\n".encode())
    assert status == 431 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"message"}
    assert headers["api-version"] == "1.50"


def test_malformed_request_answer_is_json(daemon: Daemon) -> None:
    status, headers, body = _raw(daemon, b"GET /_ping HTTP/1.1\r\nBad Header\r\n\r\n")
    assert status == 400 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"message"}


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


CONFIG = b"{}"
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()


def _oci_layout(manifest: bytes) -> bytes:
    digest = hashlib.sha256(manifest).hexdigest()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": f"sha256:{digest}", "size": len(manifest)}]}
    return _tar({"oci-layout": b'{"imageLayoutVersion": "1.0.0"}',
                 "index.json": json.dumps(index).encode(),
                 f"blobs/sha256/{digest}": manifest,
                 f"blobs/sha256/{CONFIG_DIGEST[7:]}": CONFIG})


@pytest.mark.parametrize(("manifest", "message"), [
    (b"[]", "is not a JSON object"),
    (b'{"schemaVersion": 2, "config": 5, "layers": []}', "config is not a JSON object"),
    (b'{"schemaVersion": 2, "config": {"digest": "%s"}, "layers": 5}' % CONFIG_DIGEST.encode(),
     "layers is not a JSON array"),
])
def test_load_with_a_mistyped_manifest_is_refused(daemon: Daemon, manifest: bytes,
                                                  message: str) -> None:
    # as every load error, in-band after a 200 (dockerd's way, which clients expect)
    status, doc = call(daemon, "POST", "/images/load", _oci_layout(manifest),
                       ctype="application/x-tar")
    assert status == 200 and message in doc["error"], doc
    assert doc["errorDetail"] == {"message": doc["error"]}


def test_archive_put_of_a_non_tar_is_400(daemon: Daemon, busybox_image: str,
                                         ctr: Callable[..., str], docker: Any) -> None:
    name = ctr()
    docker("create", "--name", name, busybox_image, "true")
    status, doc = call(daemon, "PUT", f"/containers/{name}/archive?path=/tmp",
                       b"this is not a tar archive, not even a short one" * 20,
                       ctype="application/x-tar")
    assert (status, doc) == (400, {"message": "archive/tar: invalid header"})


def test_top_with_arguments_ps_refuses_is_400(daemon: Daemon, busybox_image: str,
                                              ctr: Callable[..., str], docker: Any) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    status, doc = call(daemon, "GET", f"/containers/{name}/top?ps_args=%C3%B9")
    assert status == 400 and doc["message"].startswith("ps: "), doc
    status, doc = call(daemon, "GET", f"/containers/{name}/top?ps_args=-e%00f")
    assert status == 400, doc


def test_update_blkio_weight_without_host_support(daemon: Daemon, busybox_image: str,
                                                  ctr: Callable[..., str], docker: Any) -> None:
    """As dockerd: a weight the host's cgroups cannot take is dropped with a warning."""
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    status, doc = call(daemon, "POST", f"/containers/{name}/update", {"BlkioWeight": 300})
    assert status == 200, doc
    warnings = doc["Warnings"] or []
    assert warnings in ([], ["Your kernel does not support Block I/O weight or the cgroup is "
                             "not mounted. Weight discarded."]), warnings


@pytest.mark.parametrize(("path", "message"), [
    ("/containers/json?limit=%C2%B2", 'strconv.Atoi: parsing "\u00b2": invalid syntax'),
    ("/containers/json?limit=1_0", 'strconv.Atoi: parsing "1_0": invalid syntax'),
    ("/containers/json?limit=99999999999999999999",
     'strconv.Atoi: parsing "99999999999999999999": value out of range'),
])
def test_malformed_query_integers_are_400(daemon: Daemon, path: str, message: str) -> None:
    assert call(daemon, "GET", path) == (400, {"message": message})


@pytest.mark.parametrize("since", ["%C2%B2", "1.%C2%B2"])
def test_malformed_times_are_400(daemon: Daemon, since: str) -> None:
    status, _ = call(daemon, "GET", f"/events?since={since}&until=1")
    assert status == 400


@pytest.mark.parametrize(("body", "message"), [
    ({"CpuRealtimeRuntime": 1}, "CPU real-time runtime is not available: the daemon allots no "
                                "real-time CPU time to containers"),
    ({"CpuRealtimePeriod": -9342373}, "invalid CPU real-time period (-9342373): value must be "
                                      "a positive integer"),
])
def test_update_real_time_cpu_is_400(daemon: Daemon, busybox_image: str,
                                     ctr: Callable[..., str], docker: Any, body: Any,
                                     message: str) -> None:
    """Both were runtime errors (500): the kernel refused them at `runc update`."""
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    assert call(daemon, "POST", f"/containers/{name}/update", body) == (
        400, {"message": message})


def test_archive_path_with_nul_is_400(daemon: Daemon, busybox_image: str,
                                      ctr: Callable[..., str], docker: Any) -> None:
    name = ctr()
    docker("create", "--name", name, busybox_image, "true")
    for method in ("GET", "PUT"):
        status, doc = call(daemon, method, f"/containers/{name}/archive?path=/a%00b",
                           _tar({"f": b"x"}) if method == "PUT" else None,
                           ctype="application/x-tar")
        assert status == 400 and "NUL" in doc["message"], (method, doc)
    conn = _Unix(daemon.sock)
    conn.request("HEAD", f"/containers/{name}/archive?path=/a%00b")
    assert conn.getresponse().status == 400
    conn.close()


def test_top_listing_without_pids_is_400(daemon: Daemon, busybox_image: str,
                                         ctr: Callable[..., str], docker: Any) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    assert call(daemon, "GET", f"/containers/{name}/top?ps_args=L") == (
        400, {"message": "Couldn't find PID field in ps output"})


@pytest.mark.parametrize(("body", "message"), [
    ({"MemorySwap": 1}, "You should always set the Memory limit when using Memoryswap limit, "
                        "see usage"),
    ({"Memory": 8 << 20, "MemorySwap": 7 << 20},
     "Minimum memoryswap limit should be larger than memory limit, see usage"),
])
def test_update_swap_the_kernel_refuses_is_400(daemon: Daemon, busybox_image: str,
                                               ctr: Callable[..., str], docker: Any,
                                               body: Any, message: str) -> None:
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    status, doc = call(daemon, "POST", f"/containers/{name}/update", body)
    assert status == 400 and doc["message"].endswith(message), doc


@pytest.mark.parametrize(("body", "message"), [
    ({"MemoryReservation": -36},
     "invalid memory reservation (-36): value must be a positive integer"),
    ({"Memory": 8 << 20, "MemorySwap": -2},
     "invalid memory swap limit (-2): value must be a positive integer, or -1 for unlimited "
     "swap"),
    ({"CpuQuota": -5}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
])
def test_update_negative_limits_are_400(daemon: Daemon, busybox_image: str,
                                        ctr: Callable[..., str], docker: Any, body: Any,
                                        message: str) -> None:
    """The kernel refused them when runc wrote them (500)."""
    name = ctr()
    docker("run", "-d", "--name", name, busybox_image, "sleep", "60")
    status, doc = call(daemon, "POST", f"/containers/{name}/update", body)
    assert status == 400 and doc["message"].endswith(message), doc
