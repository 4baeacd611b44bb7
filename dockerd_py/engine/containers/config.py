"""Container configuration as dockerd prepares it at create time (pure).

Merging the image's defaults, checking the restart policy, and turning
`VolumesFrom`, `Binds`, `Mounts` and the image's `Volumes` into mount points.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from ...errors import InvalidParameter, NotFound

_RESTART = ("no", "always", "on-failure", "unless-stopped")


def merge_image_config(config: Mapping[str, Any], image: Mapping[str, Any]) -> dict[str, Any]:
    """Fill what the client left unset from the image config, as dockerd's merge."""
    out = dict(config)
    img = dict(image or {})
    for key in ("Cmd", "Entrypoint", "Shell"):  # "strslice": a lone string is a list
        if isinstance(img.get(key), str):
            img[key] = [img[key]]
    if not out.get("User"):
        out["User"] = img.get("User", "")
    env = list(img.get("Env") or [])
    keys = {e.split("=", 1)[0]: i for i, e in enumerate(env)}
    for e in out.get("Env") or []:
        k = e.split("=", 1)[0]
        if k in keys:
            env[keys[k]] = e
        else:
            keys[k] = len(env)
            env.append(e)
    out["Env"] = env
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = img.get("Cmd")
        out["Entrypoint"] = img.get("Entrypoint")
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(img.get(key) or {})
        merged.update(out.get(key) or {})
        out[key] = merged or None
    labels = dict(img.get("Labels") or {})
    labels.update(out.get("Labels") or {})
    out["Labels"] = labels
    for key in ("WorkingDir", "StopSignal", "Healthcheck", "OnBuild", "Shell"):
        if not out.get(key) and img.get(key):
            out[key] = img[key]
    if not out.get("Cmd") and not out.get("Entrypoint"):
        raise InvalidParameter("no command specified")
    return out


def check_restart_policy(hc: Mapping[str, Any]) -> None:
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    retries = policy.get("MaximumRetryCount") or 0
    if name not in _RESTART:
        raise InvalidParameter(f"invalid restart policy: unknown policy '{name}'; use one of "
                               "'no', 'always', 'on-failure', or 'unless-stopped'")
    if retries < 0:
        raise InvalidParameter("invalid restart policy: maximum retry count must be a "
                               "positive integer")
    if retries and name != "on-failure":
        raise InvalidParameter("invalid restart policy: maximum retry count can only be used "
                               "with 'on-failure'")
    if hc.get("AutoRemove") and name != "no":
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")


def _check_destination(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config "
                               f"for type \"bind\": invalid mount path: '{dest}' mount path "
                               "must be absolute")
    return posixpath.normpath(dest)


def parse_bind(spec: str) -> dict[str, Any]:
    """One `-v` value: /host:/ctr[:opts], name:/ctr[:opts] or /ctr (anonymous volume)."""
    parts = spec.split(":")
    if not spec or len(parts) > 3 or any(p == "" for p in parts):
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    mode = parts[2] if len(parts) == 3 else ""
    if len(parts) == 1:
        return _point("volume", "", _check_destination(parts[0], spec), mode, spec)
    source, dest = parts[0], _check_destination(parts[1], spec)
    kind = "bind" if source.startswith("/") else "volume"
    return _point(kind, source, dest, mode, spec)


def _point(kind: str, source: str, dest: str, mode: str, spec: str) -> dict[str, Any]:
    options = [o for o in mode.split(",") if o]
    valid = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared",
             "slave", "rslave"}
    if any(o not in valid for o in options):
        raise InvalidParameter(f"invalid mode: {mode}")
    propagation = next((o for o in options if "private" in o or "shared" in o or "slave" in o),
                       "rprivate" if kind == "bind" else "")
    point: dict[str, Any] = {"Type": kind, "Source": source if kind == "bind" else "",
                             "Destination": dest, "Mode": mode, "RW": "ro" not in options,
                             "Propagation": propagation}
    if kind == "volume":
        point.update({"Name": source, "Driver": "local", "CopyData": "nocopy" not in options})
    return point


_OPTIONS = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}


def _mount_error(kind: str, text: str) -> InvalidParameter:
    return InvalidParameter(f'invalid mount config for type "{kind}": {text}')


def _is_local(path: str) -> bool:
    """Go's filepath.IsLocal: relative, not empty, never above where it starts."""
    if not path or path.startswith("/"):
        return False
    clean = posixpath.normpath(path)
    return clean != ".." and not clean.startswith("../")


def _subpath(kind: str, source: str, options: Mapping[str, Any]) -> str:
    """VolumeOptions.Subpath as moby's parser checks it; "" when not set."""
    subpath = options.get("Subpath") or ""
    if not isinstance(subpath, str):
        raise _mount_error(kind, "subpath must be a relative path within the volume")
    if subpath and not source:
        raise _mount_error(kind, "must not set Subpath when using anonymous volumes")
    # NUL reaches no syscall in Go either: it fails there; here it never gets that far.
    if subpath and (not _is_local(subpath) or "\0" in subpath):
        raise _mount_error(kind, "subpath must be a relative path within the volume")
    return subpath


def parse_mount(m: Mapping[str, Any]) -> dict[str, Any]:
    """One `--mount` (HostConfig.Mounts entry)."""
    kind = m.get("Type") or "volume"
    for other, field in _OPTIONS.items():
        if other != kind and m.get(field) is not None:
            raise _mount_error(kind, f"field {field} must not be specified")
    target = m.get("Target") or ""
    if not target.startswith("/"):
        raise InvalidParameter(f"invalid mount config for type \"{kind}\": invalid mount path: "
                               f"'{target}' mount path must be absolute")
    dest = posixpath.normpath(target)
    ro = bool(m.get("ReadOnly"))
    if kind == "bind":
        source = m.get("Source") or ""
        if not source.startswith("/"):
            raise InvalidParameter("invalid mount config for type \"bind\": invalid mount path: "
                                   f"'{source}' mount path must be absolute")
        prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
        return {"Type": "bind", "Source": source, "Destination": dest, "Mode": "", "RW": not ro,
                "Propagation": prop, "MustExist": True}
    if kind == "volume":
        options = m.get("VolumeOptions") or {}
        if not isinstance(options, Mapping):
            raise _mount_error(kind, "VolumeOptions must be an object")
        name = str(m.get("Source") or "")
        point = {"Type": "volume", "Name": name, "Source": "",
                 "Destination": dest, "Driver": "local", "Mode": "z", "RW": not ro,
                 "Propagation": "", "CopyData": not options.get("NoCopy", False),
                 "Labels": options.get("Labels") or {}}
        subpath = _subpath(kind, name, options)
        if subpath:
            point["Subpath"] = subpath  # not shown in Mounts: dockerd keeps it in the Spec
        return point
    if kind == "tmpfs":
        opts = m.get("TmpfsOptions") or {}
        data = []
        if opts.get("SizeBytes"):
            data.append(f"size={opts['SizeBytes']}")
        if opts.get("Mode"):
            data.append(f"mode={opts['Mode']:o}")
        return {"Type": "tmpfs", "Source": "", "Destination": dest, "Mode": ",".join(data),
                "RW": not ro, "Propagation": ""}
    raise InvalidParameter(f"mount type unknown: {kind}")


_MODE_GROUPS = (
    frozenset({"rw", "ro"}), frozenset({"z", "Z"}), frozenset({"nocopy"}),
    frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"}),
    frozenset({"consistent", "cached", "delegated"}),
)


def parse_volumes_from(spec: str) -> tuple[str, bool]:
    """One `--volumes-from` value, `container[:mode]` → (container, read-write), as
    moby's ParseVolumesFrom: only ro/rw and a label mode; no propagation or copy mode."""
    if not spec:
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ref, _, mode = spec.partition(":")
    options = mode.split(",") if mode else []
    counts = [sum(o in group for o in options) for group in _MODE_GROUPS]
    if (any(not any(o in g for g in _MODE_GROUPS) for o in options) or max(counts, default=0) > 1
            or counts[2] or counts[3]):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ref, "ro" not in options


def inherited(points: Iterable[Mapping[str, Any]], rw: bool) -> list[dict[str, Any]]:
    """Another container's mount points as `--volumes-from` gives them: the same
    volumes and binds, read-only if either says so, never filled from the image."""
    out = []
    for p in points:
        if p.get("Type") == "tmpfs":
            # dockerd looks a tmpfs point up as a volume without a name, and fails so.
            raise NotFound("get: no such volume")
        copy = {**p, "Mode": "", "RW": bool(p.get("RW", True)) and rw}
        if p.get("Type") == "volume":
            copy["CopyData"] = False
        out.append(copy)
    return out


def mount_points(config: Mapping[str, Any], hc: Mapping[str, Any],
                 volumes_from: Iterable[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """All mount points of a new container: those of `--volumes-from` (already
    `inherited`), replaced by Binds and Mounts at the same destination; image volumes
    where nothing is mounted yet become anonymous volumes."""
    points = [parse_bind(b) for b in hc.get("Binds") or []]
    points += [parse_mount(m) for m in hc.get("Mounts") or []]
    seen: set[str] = set()
    for p in points:
        if p["Destination"] in seen:
            raise InvalidParameter(f"Duplicate mount point: {p['Destination']}")
        seen.add(p["Destination"])
    earlier = {p["Destination"]: dict(p) for p in volumes_from}  # a later donor wins
    points = [p for d, p in earlier.items() if d not in seen] + points
    seen |= earlier.keys()
    tmpfs = {posixpath.normpath(d) for d in (hc.get("Tmpfs") or {})}
    for dest in sorted(config.get("Volumes") or {}):
        dest = posixpath.normpath(dest)
        if dest not in seen and dest not in tmpfs:
            points.append(_point("volume", "", dest, "", dest))
            seen.add(dest)
    return points
