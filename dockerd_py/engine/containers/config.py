"""Container configuration as dockerd prepares it at create time (pure).

Merging the image's defaults, checking the restart policy, and turning
`Binds`, `Mounts` and the image's `Volumes` into mount points.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from ...errors import InvalidParameter

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


def parse_mount(m: Mapping[str, Any]) -> dict[str, Any]:
    """One `--mount` (HostConfig.Mounts entry)."""
    kind = m.get("Type") or "volume"
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
        nocopy = (m.get("VolumeOptions") or {}).get("NoCopy", False)
        return {"Type": "volume", "Name": m.get("Source") or "", "Source": "",
                "Destination": dest, "Driver": "local", "Mode": "z", "RW": not ro,
                "Propagation": "", "CopyData": not nocopy,
                "Labels": (m.get("VolumeOptions") or {}).get("Labels") or {}}
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


def mount_points(config: Mapping[str, Any], hc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """All mount points of a new container; image volumes become anonymous volumes."""
    points = [parse_bind(b) for b in hc.get("Binds") or []]
    points += [parse_mount(m) for m in hc.get("Mounts") or []]
    seen: set[str] = set()
    for p in points:
        if p["Destination"] in seen:
            raise InvalidParameter(f"Duplicate mount point: {p['Destination']}")
        seen.add(p["Destination"])
    tmpfs = {posixpath.normpath(d) for d in (hc.get("Tmpfs") or {})}
    for dest in sorted(config.get("Volumes") or {}):
        dest = posixpath.normpath(dest)
        if dest not in seen and dest not in tmpfs:
            points.append(_point("volume", "", dest, "", dest))
            seen.add(dest)
    return points
