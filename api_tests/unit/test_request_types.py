"""The request types: generated from the spec (and current), and decoded as Go decodes.

Expected messages are those of dockerd's Go decoder (checked against Docker
20.10's dockerd for the shape; the struct names and the embedded-struct path
elements are those of moby v28 built with Go 1.24).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from api_tests.enginespec import spec_path
from dockerd_py.api.validation import BODY_TYPES, SyntaxErr, TypeMismatch, decode, loads

ROOT = Path(__file__).resolve().parents[2]


def test_generated_types_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "contrib" / "gen-request-types.py"),
                           "--check", "--spec", str(spec_path())],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_spec_is_the_version_served() -> None:
    assert b'basePath: "/v1.50"' in spec_path().read_bytes()


def test_every_json_route_has_a_type() -> None:
    assert BODY_TYPES == {"ContainerCreate", "ContainerUpdate", "ExecCreate", "ExecStart",
                          "NetworkCreate", "NetworkConnect", "NetworkDisconnect",
                          "VolumeCreate", "Auth"}


def _decode(body_type: str, text: bytes) -> Any:
    return decode(body_type, loads(text))


@pytest.mark.parametrize(("body_type", "text", "message"), [
    ("ContainerCreate", b'{"HostConfig": {"Binds": [1]}}',
     "json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Binds of "
     "type string"),
    ("ContainerCreate", b'{"Env": "A=1"}',
     "json: cannot unmarshal string into Go struct field CreateRequest.Config.Env of type "
     "[]string"),
    ("ContainerCreate", b'{"Cmd": [1]}',
     "json: cannot unmarshal array into Go struct field CreateRequest.Config.Cmd of type "
     "string"),
    ("ContainerCreate", b'{"HostConfig": {"BlkioWeight": -1}}',
     "json: cannot unmarshal number -1 into Go struct field "
     "HostConfig.HostConfig.Resources.BlkioWeight of type uint16"),
    ("ContainerCreate", b'{"HostConfig": {"Memory": 1e3}}',
     "json: cannot unmarshal number 1e3 into Go struct field "
     "HostConfig.HostConfig.Resources.Memory of type int64"),
    ("ContainerCreate", b'{"HostConfig": {"Memory": 9223372036854775808}}',
     "json: cannot unmarshal number 9223372036854775808 into Go struct field "
     "HostConfig.HostConfig.Resources.Memory of type int64"),
    ("ContainerCreate", b'{"ExposedPorts": {"80/tcp": 5}}',
     "json: cannot unmarshal number into Go struct field CreateRequest.Config.ExposedPorts of "
     "type struct {}"),
    ("ContainerCreate", b'{"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}',
     "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings."
     "HostPort of type string"),
    ("ContainerCreate", b'{"Healthcheck": {"Interval": "1s"}}',
     "json: cannot unmarshal string into Go struct field HealthConfig.Config.Healthcheck."
     "Interval of type time.Duration"),
    ("ContainerCreate", b'"x"',
     "json: cannot unmarshal string into Go value of type container.CreateRequest"),
    ("NetworkConnect", b'{"EndpointConfig": {"IPAMConfig": {"IPv4Address": 1}}}',
     "json: cannot unmarshal number into Go struct field EndpointIPAMConfig.EndpointConfig."
     "IPAMConfig.IPv4Address of type string"),
    ("Auth", b'{"username": 5}',
     "json: cannot unmarshal number into Go struct field AuthConfig.username of type string"),
])
def test_type_mismatch_wording(body_type: str, text: bytes, message: str) -> None:
    with pytest.raises(TypeMismatch) as e:
        _decode(body_type, text)
    assert str(e.value) == message


def test_decoded_values() -> None:
    got = _decode("ContainerCreate", b'{"image": "a", "CMD": "ls", "Unknown": 1, '
                                     b'"Env": ["A", null], "Labels": {"k": null}, '
                                     b'"HostConfig": {"memory": 0, "ConsoleSize": [5], '
                                     b'"Binds": null}, "Volumes": {"/v": {"x": 1}}}')
    assert got == {"Image": "a", "Cmd": ["ls"], "Env": ["A", ""], "Labels": {"k": ""},
                   "HostConfig": {"Memory": 0, "ConsoleSize": [5, 0], "Binds": None},
                   "Volumes": {"/v": {}}}
    assert _decode("Auth", b'{"username": "u", "auth": "x", "identitytoken": "t"}') == \
        {"username": "u", "auth": "x", "identitytoken": "t"}
    assert _decode("ContainerCreate", b'{"Image": "\\ud800x"}') == {"Image": "\ufffdx"}


@pytest.mark.parametrize(("text", "message"), [
    (b"", "unexpected EOF"),
    (b'{"a": 1', "unexpected EOF"),
    (b'{"a": "x', "unexpected EOF"),
    (b'{"a",}', "invalid character ',' after object key"),
    (b'{"a": 1 "b": 2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b'{"a": tru}', "invalid character '}' in literal true (expecting 'e')"),
    (b'[x]', "invalid character 'x' looking for beginning of value"),
    (b"{'a': 1}", "invalid character '\\'' looking for beginning of object key string"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
    (b"[NaN]", "invalid character 'N' looking for beginning of value"),
    (b"[-Infinity]", "invalid character 'I' in numeric literal"),
    (b"{} x", "unexpected content after JSON"),
    (b"[" * 5000, "exceeded max depth"),
])
def test_syntax_error_wording(text: bytes, message: str) -> None:
    with pytest.raises(SyntaxErr) as e:
        loads(text)
    assert str(e.value) == message


def test_loads_keeps_what_go_keeps() -> None:
    assert loads(b"{} ]") == {}          # Decoder.More() stops at a closing bracket
    assert loads(b"{} x", trailing=True) == {}
    assert loads(b'"\xff"') == "\ufffd"   # invalid UTF-8, as Go reads it
    assert loads(b"1.50").text == "1.50"
