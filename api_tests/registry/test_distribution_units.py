"""Pure parts of the registry client: auth headers, challenges, platforms, manifests,
endpoint rules (no daemon, no registry)."""

from __future__ import annotations

import base64
import json

import pytest

from dockerd_py.distribution import manifests
from dockerd_py.distribution.auth import AuthConfig, decode_header, parse_challenges
from dockerd_py.distribution.endpoints import RegistrySettings, endpoints, is_insecure, login_domain
from dockerd_py.distribution.errors import registry_error
from dockerd_py.distribution.progress import Throttle, human_size, render_bar
from dockerd_py.distribution.registry import origin
from dockerd_py.errors import InvalidParameter, NotFound


def test_x_registry_auth_decoding_is_tolerant() -> None:
    doc = {"username": "u", "password": "p?>", "serveraddress": "h:5000"}
    raw = json.dumps(doc).encode()
    for encoded in (base64.urlsafe_b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode().rstrip("="),
                    base64.b64encode(raw).decode()):
        assert decode_header(encoded) == doc
    assert decode_header("e30=") == {}
    assert decode_header("") is None
    assert decode_header("%%%not base64") is None
    assert decode_header(base64.b64encode(b"[1]").decode()) is None


def test_auth_config_reads_the_auth_field() -> None:
    creds = AuthConfig.from_dict({"auth": base64.b64encode(b"alice:pa:ss").decode()})
    assert (creds.username, creds.password) == ("alice", "pa:ss")
    assert AuthConfig.from_dict(None).anonymous
    assert not AuthConfig.from_dict({"identitytoken": "x"}).anonymous


def test_challenges() -> None:
    (bearer,) = parse_challenges([
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"'])
    assert bearer.scheme == "bearer"
    assert bearer.params == {"realm": "https://auth.example/token", "service": "reg",
                             "scope": "repository:a/b:pull"}
    (basic,) = parse_challenges(['Basic realm="basic-realm"'])
    assert basic.scheme == "basic" and basic.params["realm"] == "basic-realm"


@pytest.mark.parametrize("text,expected", [
    ("linux/amd64", ("linux", "amd64", "")),
    ("linux/arm64/v8", ("linux", "arm64", "")),
    ("linux/arm", ("linux", "arm", "v7")),
    ("linux/aarch64", ("linux", "arm64", "")),
    ("arm64", ("linux", "arm64", "")),
    ("Linux/X86_64", ("linux", "amd64", "")),
])
def test_platform_parsing(text: str, expected: tuple[str, str, str]) -> None:
    p = manifests.parse_platform(text)
    assert (p.os, p.architecture, p.variant) == expected


@pytest.mark.parametrize("bad", ["", "linux/", "a/b/c/d", "/amd64"])
def test_bad_platforms(bad: str) -> None:
    with pytest.raises(InvalidParameter):
        manifests.parse_platform(bad)


def _desc(digit: str, platform: dict[str, str] | None,
          media: str = manifests.DOCKER_MANIFEST) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": media, "digest": "sha256:" + digit * 64, "size": 1}
    if platform is not None:
        out["platform"] = platform
    return out


def test_index_selection_skips_attestations_and_matches_variants() -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": [
        _desc("1", {"os": "unknown", "architecture": "unknown"}),
        _desc("2", {"os": "linux", "architecture": "arm", "variant": "v6"}),
        _desc("3", {"os": "linux", "architecture": "arm", "variant": "v7"}),
        _desc("4", {"os": "linux", "architecture": "amd64"}),
        _desc("5", {"os": "linux", "architecture": "arm64", "variant": "v8"}),
    ]}).encode()
    index = manifests.parse(body, "", "x")
    assert isinstance(index, manifests.Index)
    pick = manifests.select
    assert pick(index, manifests.parse_platform("linux/amd64")).digest.endswith("4" * 64)
    assert pick(index, manifests.parse_platform("linux/arm/v6")).digest.endswith("2" * 64)
    assert pick(index, manifests.parse_platform("linux/arm")).digest.endswith("3" * 64)
    assert pick(index, manifests.parse_platform("linux/arm64")).digest.endswith("5" * 64)
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        pick(index, manifests.parse_platform("linux/s390x"))


def test_schema1_and_unknown_documents_are_refused() -> None:
    with pytest.raises(InvalidParameter, match="schema 1 support has been removed"):
        manifests.parse(b'{"schemaVersion": 1, "fsLayers": []}', "", "x:1")
    with pytest.raises(InvalidParameter, match="unsupported manifest media type"):
        manifests.parse(b'{"schemaVersion": 2, "mediaType": "text/plain"}', "", "x")
    bad_layer = {"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST,
                 "config": _desc("1", None, manifests.OCI_CONFIG),
                 "layers": [_desc("2", None, "application/x-evil")]}
    with pytest.raises(InvalidParameter, match="unsupported layer media type"):
        manifests.parse(json.dumps(bad_layer).encode(), "", "x")


def test_built_manifest_is_docker_schema2_for_gzip_layers() -> None:
    body, media = manifests.build(b"{}", [(manifests.DOCKER_LAYER_GZIP, "sha256:" + "a" * 64, 3)])
    assert media == manifests.DOCKER_MANIFEST
    assert body.startswith(b'{\n   "schemaVersion": 2,')  # Go's MarshalIndent, 3 spaces
    doc = json.loads(body)
    assert doc["config"]["mediaType"] == manifests.DOCKER_CONFIG
    _, media = manifests.build(b"{}", [(manifests.OCI_LAYER, "sha256:" + "a" * 64, 3)])
    assert media == manifests.OCI_MANIFEST


def test_registry_errors_read_like_distributions() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"},
                                  {"code": "X", "message": "ignored"}]}).encode()
    err = registry_error(404, body, fallback="nope")
    assert str(err) == "manifest unknown: manifest unknown"
    assert err.codes == ("MANIFEST_UNKNOWN", "X") and err.status == 404
    assert str(registry_error(502, b"<html>", fallback="bad gateway")) == "bad gateway"


def test_insecure_rules_and_endpoints() -> None:
    plain = RegistrySettings()
    assert is_insecure("127.0.0.1:5000", plain)
    assert is_insecure("localhost:5000", plain)
    assert not is_insecure("198.18.0.1:5000", plain)
    assert is_insecure("198.18.0.1:5000", RegistrySettings(insecure=("198.18.0.1:5000",)))
    assert is_insecure("198.18.0.1:5000", RegistrySettings(insecure=("198.18.0.0/16",)))
    assert not is_insecure("198.18.0.1:5000", RegistrySettings(insecure=("198.18.0.1:5001",)))
    assert [e.url for e in endpoints("127.0.0.1:5000", plain)] == [
        "https://127.0.0.1:5000", "http://127.0.0.1:5000"]
    assert [e.url for e in endpoints("198.18.0.1:5000", plain)] == ["https://198.18.0.1:5000"]
    hub = endpoints("docker.io", RegistrySettings(mirrors=("http://127.0.0.1:5001/",)))
    assert [(e.url, e.mirror) for e in hub] == [("http://127.0.0.1:5001", True),
                                                 ("https://registry-1.docker.io", False)]


def test_origins_are_scheme_host_and_port() -> None:
    """Credentials follow the origin: the same one however it is spelled, another one
    for another scheme (plain HTTP), host or port."""
    assert origin("https://Reg.Example/v2/") == origin("https://reg.example:443/x")
    assert origin("http://reg.example") == origin("http://reg.example:80/v2/")
    mine = origin("https://reg.example:5000")
    assert {origin("http://reg.example:5000"), origin("https://reg.example:5001"),
            origin("https://other.example:5000"), origin("https://reg.example")} & {mine} == set()


def test_login_addresses() -> None:
    assert login_domain("") == "docker.io"
    assert login_domain("https://index.docker.io/v1/") == "docker.io"
    assert login_domain("127.0.0.1:5000") == "127.0.0.1:5000"
    assert login_domain("https://reg.example:443/v2/") == "reg.example:443"


def test_progress_rendering() -> None:
    assert human_size(0) == "0B"
    assert human_size(1_234_567) == "1.235MB"
    bar = render_bar(50, 100)
    assert bar.startswith("[" + "=" * 25 + ">") and bar.endswith("50B/100B")
    throttle = Throttle(100 << 20)
    due = [n for n in range(0, (100 << 20) + 1, 64 << 10) if throttle.due(n)]
    assert 90 <= len(due) <= 110 and due[-1] == 100 << 20
