#!/usr/bin/env python3
"""Generate dockerd_py/api/validation/request_types.json from the Engine API spec.

The JSON request bodies the daemon accepts are typed by the v1.50 swagger file
(the project's shared reference, ../shared/reference/docker-engine-api-v1.50.yaml;
--spec names another copy). dockerd decodes them into Go
structs with encoding/json, and its 400s name those Go types; the spec does not,
so the tables below add what dockerd's Go types say where the spec is silent:
type names, fields the spec leaves out, and strslice fields that also take a
lone string.

    contrib/gen-request-types.py            rewrite the JSON file
    contrib/gen-request-types.py --check    exit 1 if it is not current

api_tests/unit/test_request_types.py runs the check.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "reference" / "docker-engine-api-v1.50.yaml"
OUTPUT = ROOT / "dockerd_py" / "api" / "validation" / "request_types.json"

# body name -> (method, path, the Go type dockerd decodes it into, moby v28.2.2)
BODIES = {
    "ContainerCreate": ("post", "/containers/create", "container.CreateRequest"),
    "ContainerUpdate": ("post", "/containers/{id}/update", "container.UpdateConfig"),
    "ExecCreate": ("post", "/containers/{id}/exec", "container.ExecOptions"),
    "ExecStart": ("post", "/exec/{id}/start", "container.ExecStartOptions"),
    "NetworkCreate": ("post", "/networks/create", "network.CreateRequest"),
    "NetworkConnect": ("post", "/networks/{id}/connect", "network.ConnectOptions"),
    "NetworkDisconnect": ("post", "/networks/{id}/disconnect", "network.DisconnectOptions"),
    "VolumeCreate": ("post", "/volumes/create", "volume.CreateOptions"),
    "Auth": ("post", "/auth", "registry.AuthConfig"),
}

# swagger definition -> Go type
GO_NAMES = {
    "ContainerConfig": "container.Config",
    "HostConfig": "container.HostConfig",
    "Resources": "container.Resources",
    "RestartPolicy": "container.RestartPolicy",
    "HealthConfig": "container.HealthConfig",
    "DeviceMapping": "container.DeviceMapping",
    "DeviceRequest": "container.DeviceRequest",
    "ThrottleDevice": "blkiodev.ThrottleDevice",
    "PortMap": "nat.PortMap",
    "PortBinding": "nat.PortBinding",
    "Mount": "mount.Mount",
    "MountType": "mount.Type",
    "NetworkingConfig": "network.NetworkingConfig",
    "EndpointSettings": "network.EndpointSettings",
    "EndpointIPAMConfig": "network.EndpointIPAMConfig",
    "IPAM": "network.IPAM",
    "IPAMConfig": "network.IPAMConfig",
    "ConfigReference": "network.ConfigReference",
    "AuthConfig": "registry.AuthConfig",
    "VolumeCreateOptions": "volume.CreateOptions",
    "ClusterVolumeSpec": "volume.ClusterVolumeSpec",
    "Topology": "volume.Topology",
}


def scalar(kind: str, go: str) -> dict[str, Any]:
    return {"k": kind, "go": go}


STRSLICE = {"k": "strslice", "go": "strslice.StrSlice"}
EMPTY_STRUCT = {"k": "struct", "go": "struct {}", "fields": {}}
DURATION = scalar("int", "time.Duration")

# (definition or body, property) -> the Go type where the spec's own type is not it
FIELD_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("ContainerConfig", "Cmd"): STRSLICE,
    ("ContainerConfig", "Entrypoint"): STRSLICE,
    ("ContainerConfig", "Shell"): STRSLICE,
    ("ContainerConfig", "ExposedPorts"): {"k": "map", "go": "nat.PortSet", "of": EMPTY_STRUCT},
    ("ContainerConfig", "Volumes"): {"k": "map", "go": "map[string]struct {}",
                                     "of": EMPTY_STRUCT},
    ("HealthConfig", "Interval"): DURATION,
    ("HealthConfig", "Timeout"): DURATION,
    ("HealthConfig", "StartPeriod"): DURATION,
    ("HealthConfig", "StartInterval"): DURATION,
    ("HostConfig", "NetworkMode"): scalar("str", "container.NetworkMode"),
    ("HostConfig", "IpcMode"): scalar("str", "container.IpcMode"),
    ("HostConfig", "PidMode"): scalar("str", "container.PidMode"),
    ("HostConfig", "UTSMode"): scalar("str", "container.UTSMode"),
    ("HostConfig", "UsernsMode"): scalar("str", "container.UsernsMode"),
    ("HostConfig", "CgroupnsMode"): scalar("str", "container.CgroupnsMode"),
    ("HostConfig", "Cgroup"): scalar("str", "container.CgroupSpec"),
    ("HostConfig", "Isolation"): scalar("str", "container.Isolation"),
    ("HostConfig", "ConsoleSize"): {"k": "array", "go": "[2]uint", "len": 2,
                                    "of": scalar("int", "uint")},
    ("Resources", "CpuShares"): scalar("int", "int64"),
    ("Resources", "BlkioWeight"): scalar("int", "uint16"),
    ("Resources", "PidsLimit"): scalar("int", "int64"),
    ("ThrottleDevice", "Rate"): scalar("int", "uint64"),
    ("RestartPolicy", "Name"): scalar("str", "container.RestartPolicyMode"),
    ("ExecCreate", "ConsoleSize"): {"k": "array", "go": "[2]uint", "len": 2,
                                    "of": scalar("int", "uint")},
    ("ExecStart", "ConsoleSize"): {"k": "array", "go": "[2]uint", "len": 2,
                                   "of": scalar("int", "uint")},
    ("EndpointSettings", "GwPriority"): scalar("int", "int"),
}

# (definition or body, property) -> Go type of an inline object or of array items
INLINE_NAMES = {
    ("HostConfig", "LogConfig"): "container.LogConfig",
    ("Resources", "Ulimits"): "container.Ulimit",
    ("Resources", "BlkioWeightDevice"): "blkiodev.WeightDevice",
    ("Mount", "BindOptions"): "mount.BindOptions",
    ("Mount", "VolumeOptions"): "mount.VolumeOptions",
    ("Mount", "ImageOptions"): "mount.ImageOptions",
    ("Mount", "TmpfsOptions"): "mount.TmpfsOptions",
    ("ClusterVolumeSpec", "AccessMode"): "volume.AccessMode",
}

# inline object properties, one level down: (Go type, property) -> Go type
NESTED_TYPES: dict[tuple[str, str], dict[str, Any]] = {
    ("container.Ulimit", "Soft"): scalar("int", "int64"),
    ("container.Ulimit", "Hard"): scalar("int", "int64"),
    ("blkiodev.WeightDevice", "Weight"): scalar("int", "uint16"),
    ("mount.BindOptions", "Propagation"): scalar("str", "mount.Propagation"),
    ("mount.TmpfsOptions", "Mode"): scalar("int", "os.FileMode"),
    ("mount.VolumeOptions", "DriverConfig"): {
        "k": "struct", "go": "mount.Driver",
        "fields": {"Name": {"t": scalar("str", "string")},
                   "Options": {"t": {"k": "map", "go": "map[string]string",
                                     "of": scalar("str", "string")}}}},
}

# fields dockerd's Go types have and the spec leaves out
EXTRA_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "AuthConfig": {"auth": scalar("str", "string"),
                   "identitytoken": scalar("str", "string"),
                   "registrytoken": scalar("str", "string")},
    "ExecCreate": {"Detach": scalar("bool", "bool")},
    "Resources": {"KernelMemory": scalar("int", "int64")},   # deprecated, still decoded
    "NetworkCreate": {"CheckDuplicate": scalar("bool", "bool")},
}

# Go structs that embed another whose fields the spec lists flat: body -> (embedded
# struct, the fields that are not its own)
EMBEDDED = {
    "NetworkCreate": ("CreateOptions", {"Name", "CheckDuplicate"}),
}

INT_FORMATS = {"int64": "int64", "int32": "int32", "uint16": "uint16", "uint32": "uint32",
               "uint64": "uint64", "uint8": "uint8", "int8": "int8", "int16": "int16"}


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.defs: dict[str, Any] = spec["definitions"]
        self.types: dict[str, dict[str, Any]] = {}

    def ref_name(self, schema: dict[str, Any]) -> str | None:
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf", [])) == 1:
            ref = schema["allOf"][0].get("$ref")
        return str(ref).rsplit("/", 1)[-1] if ref else None

    def node(self, owner: str, prop: str, schema: dict[str, Any]) -> dict[str, Any]:
        """The Go type of property `prop` of `owner`."""
        if (owner, prop) in FIELD_TYPES:
            return FIELD_TYPES[(owner, prop)]
        if (owner, prop) in NESTED_TYPES:
            return NESTED_TYPES[(owner, prop)]
        name = self.ref_name(schema)
        if name is not None:
            return self.definition(name)
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items") or {}
            of = self.node(owner, prop + "[]", items)
            if items.get("type") == "object" and "properties" in items:
                of = self.inline(INLINE_NAMES.get((owner, prop), prop), items)
            return {"k": "slice", "go": "[]" + go_name(of), "of": of}
        if kind == "object" or "properties" in schema:
            if "properties" in schema:
                return self.inline(INLINE_NAMES.get((owner, prop), prop), schema)
            extra = schema.get("additionalProperties")
            of = (self.node(owner, prop + "{}", extra) if isinstance(extra, dict) and extra
                  else {"k": "any"})
            return {"k": "map", "go": "map[string]" + go_name(of), "of": of}
        if kind == "string":
            return scalar("str", "string")
        if kind == "boolean":
            return scalar("bool", "bool")
        if kind == "integer":
            return scalar("int", INT_FORMATS.get(schema.get("format", ""), "int"))
        if kind == "number":
            return scalar("float", "float64")
        return {"k": "any"}

    def inline(self, go: str, schema: dict[str, Any]) -> dict[str, Any]:
        fields = {}
        for prop, sub in (schema.get("properties") or {}).items():
            fields[prop] = {"t": self.node(go, prop, sub)}
        return {"k": "struct", "go": go, "fields": fields}

    def definition(self, name: str) -> dict[str, Any]:
        """A reference to a definition, compiled into self.types once."""
        schema = self.defs[name]
        go = GO_NAMES.get(name, name)
        if "properties" not in schema and "allOf" not in schema:   # a scalar or a map
            node = self.node(name, "", schema)
            return {**node, "go": go} if node["k"] != "any" else node
        if name not in self.types:
            self.types[name] = {}  # a placeholder while its fields refer back to it
            self.types[name] = self.struct(name, go, schema)
        return {"k": "ref", "to": name}

    def struct(self, owner: str, go: str, schema: dict[str, Any]) -> dict[str, Any]:
        """A Go struct: an allOf's $ref members are embedded structs (their fields are
        promoted, reached through the embedded type's name), the rest its own fields."""
        fields: dict[str, dict[str, Any]] = {}
        embedded: list[tuple[str, dict[str, Any]]] = []
        for member in schema.get("allOf", []):
            name = self.ref_name(member)
            if name is not None:
                self.definition(name)
                embedded.append((GO_NAMES.get(name, name).rpartition(".")[2],
                                 self.types[name]))
            else:
                for prop, sub in (member.get("properties") or {}).items():
                    fields[prop] = {"t": self.node(owner, prop, sub)}
        for prop, sub in (schema.get("properties") or {}).items():
            fields[prop] = {"t": self.node(owner, prop, sub)}
        for prop, node in EXTRA_FIELDS.get(owner, {}).items():
            fields[prop] = {"t": node}
        if owner in EMBEDDED:
            via, own = EMBEDDED[owner]
            fields = {k: (v if k in own else {**v, "via": [via]}) for k, v in fields.items()}
        for via, inner in embedded:   # a shallower field wins over a promoted one
            for prop, field in inner["fields"].items():
                if prop not in fields:
                    fields[prop] = {**field, "via": [via, *field.get("via", [])]}
        return {"k": "struct", "go": go, "fields": fields}

    def body(self, name: str, method: str, path: str, go: str) -> dict[str, Any]:
        params = self.spec["paths"][path][method]["parameters"]
        schema = next(p["schema"] for p in params if p["in"] == "body")
        owner = name
        if "$ref" in schema:    # a definition's fields, with its overrides
            owner = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.defs[owner]
        node = self.struct(owner, go, schema)
        self.types[name] = node
        return {"k": "ref", "to": name}


def go_name(node: dict[str, Any]) -> str:
    if node["k"] == "any":
        return "interface {}"
    if node["k"] == "ref":
        return GO_NAMES.get(node["to"], node["to"])
    return str(node["go"])


def generate(spec_path: Path) -> str:
    raw = spec_path.read_bytes()
    gen = Generator(yaml.safe_load(raw))
    bodies = {name: gen.body(name, *where) for name, where in BODIES.items()}
    out = {
        "comment": "generated by contrib/gen-request-types.py; do not edit",
        "spec": {"file": spec_path.name, "sha256": hashlib.sha256(raw).hexdigest()},
        "bodies": bodies,
        "types": dict(sorted(gen.types.items())),
    }
    return json.dumps(out, indent=1, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--spec", type=Path, default=SPEC)
    args = parser.parse_args()
    text = generate(args.spec)
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run contrib/gen-request-types.py",
                  file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
