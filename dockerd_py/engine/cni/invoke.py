"""Running one CNI plugin: environment, config on stdin, result or CNI error on stdout.

The plugin inherits the daemon's environment (portmap and bridge run iptables from
PATH) with every CNI_* variable replaced by this call's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import CNIError

_MAX_OUTPUT = 4 << 20


@dataclass(frozen=True)
class Call:
    command: str                 # ADD, DEL, CHECK
    container_id: str
    netns: str                   # "" for a DEL whose namespace is gone
    ifname: str
    args: tuple[tuple[str, str], ...]

    def environment(self, bin_dirs: Sequence[Path]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.update(CNI_COMMAND=self.command, CNI_CONTAINERID=self.container_id,
                   CNI_NETNS=self.netns, CNI_IFNAME=self.ifname,
                   CNI_ARGS=";".join(f"{k}={v}" for k, v in self.args),
                   CNI_PATH=os.pathsep.join(str(d) for d in bin_dirs))
        env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        return env


def find_plugin(ptype: str, bin_dirs: Sequence[Path]) -> Path:
    """The plugin's executable (blocking: stats files); `ptype` is grammar-checked."""
    for d in bin_dirs:
        candidate = d / ptype
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise CNIError(f"failed to find plugin {ptype!r} in path "
                   f"[{' '.join(str(d) for d in bin_dirs)}]")


def _error_text(stdout: bytes, stderr: bytes, returncode: int) -> tuple[str, int]:
    """The plugin's CNI error ({code, msg, details}) as one line, else its stderr."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("msg"):
        msg = str(doc["msg"])
        if doc.get("details"):
            msg += f"; {doc['details']}"
        code = doc.get("code")
        return msg, code if isinstance(code, int) else 0
    text = (stderr or stdout).decode(errors="replace").strip()
    return text or f"exited with status {returncode}", 0


async def run(plugin: Path, call: Call, conf: dict[str, Any], bin_dirs: Sequence[Path],
              network: str, timeout: float) -> dict[str, Any] | None:
    """Run one plugin; the parsed result of an ADD (None for DEL and CHECK). A plugin
    still running after `timeout` seconds (a dhcp plugin without its daemon) is killed."""
    where = f'plugin type="{plugin.name}" name="{network}" failed ({call.command.lower()})'
    proc = await asyncio.create_subprocess_exec(
        str(plugin), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=call.environment(bin_dirs), cwd="/",
        limit=_MAX_OUTPUT)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()),
                                                timeout)
    except BaseException as e:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(e, TimeoutError):
            raise CNIError(f"{where}: no answer within {timeout:g}s") from None
        raise
    if proc.returncode != 0:
        msg, code = _error_text(stdout, stderr, proc.returncode or 0)
        raise CNIError(f"{where}: {msg}", code)
    if call.command != "ADD":
        return None
    try:
        result = json.loads(stdout)
    except ValueError:
        raise CNIError(f"{where}: the plugin's result is not JSON") from None
    if not isinstance(result, dict):
        raise CNIError(f"{where}: the plugin's result is not a JSON object")
    return result
