"""Image config documents as the legacy builder writes them.

Pure. The runtime config keeps every field of Go's container.Config that has no
`omitempty` (so an image built here inspects like one dockerd 20.10 built), in
the same order; history entries carry `empty_layer` for steps that changed no
file. `created_by` is the step's command line: the shell and a `#(nop)` marker
for metadata steps, the RUN command (prefixed `|N K=V...` when build args are
in effect) for RUN.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from dockerd_py.engine.images.platform import ARCH, OS
from dockerd_py.engine.runtime.spec import DEFAULT_PATH_ENV

DEFAULT_SHELL = ["/bin/sh", "-c"]

# (key, default) in container.Config's order; None defaults are Go nil values.
_FIELDS: tuple[tuple[str, Any, bool], ...] = (
    ("Hostname", "", False), ("Domainname", "", False), ("User", "", False),
    ("AttachStdin", False, False), ("AttachStdout", False, False),
    ("AttachStderr", False, False), ("ExposedPorts", None, True), ("Tty", False, False),
    ("OpenStdin", False, False), ("StdinOnce", False, False), ("Env", None, False),
    ("Cmd", None, False), ("Healthcheck", None, True), ("ArgsEscaped", False, True),
    ("Image", "", False), ("Volumes", None, False), ("WorkingDir", "", False),
    ("Entrypoint", None, False), ("NetworkDisabled", False, True), ("MacAddress", "", True),
    ("OnBuild", None, False), ("Labels", None, False), ("StopSignal", "", True),
    ("StopTimeout", None, True), ("Shell", None, True),
)


def normalize(config: dict[str, Any] | None) -> dict[str, Any]:
    """A runtime config with every field present, in Go's order (omitempty ones only
    when set)."""
    source = config or {}
    out: dict[str, Any] = {}
    for key, default, omitempty in _FIELDS:
        value = source.get(key, default)
        if omitempty and value in (None, "", [], {}, False):
            continue
        out[key] = copy.deepcopy(value)
    return out


def with_default_path(config: dict[str, Any]) -> dict[str, Any]:
    """A stage starts with PATH in its environment when its base has none (as dockerd)."""
    env = list(config.get("Env") or [])
    if not any(e.split("=", 1)[0] == "PATH" for e in env):
        env.insert(0, f"PATH={DEFAULT_PATH_ENV}")
    config["Env"] = env
    return config


def shell_of(config: dict[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def nop(config: dict[str, Any], text: str, *, spaced: bool = True) -> str:
    """created_by of a metadata step: `<shell> #(nop)  <text>`. dockerd puts the marker
    and the text in separate words (two spaces) except for COPY/ADD and WORKDIR."""
    marker = ["#(nop) ", text] if spaced else [f"#(nop) {text}"]
    return " ".join(shell_of(config) + marker)


def go_quote_list(words: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(w, ensure_ascii=False) for w in words) + "]"


def history_entry(created: str, created_by: str, empty: bool, comment: str = "",
                  author: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"created": created}
    if author:
        entry["author"] = author
    entry["created_by"] = created_by
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    return entry


def image_document(base: dict[str, Any], runtime: dict[str, Any], diff_ids: list[str],
                   history: list[dict[str, Any]], created: str,
                   author: str = "") -> dict[str, Any]:
    """The whole config document of a step's image."""
    doc: dict[str, Any] = {
        "architecture": base.get("architecture") or ARCH,
        "config": runtime,
        "created": created,
    }
    if author:
        doc["author"] = author
    doc["history"] = history
    doc["os"] = base.get("os") or OS
    if base.get("variant"):
        doc["variant"] = base["variant"]
    doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()
