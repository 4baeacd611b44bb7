"""The legacy builder's progress messages, as Docker 20.10 writes them.

Pure: each function returns the JSON messages (dicts) for one event; the build
service hands them to a sink (the HTTP stream). Wording and message split
follow dockerd 20.10 byte for byte ("Step N/M : X" and its newline are two
messages; stderr of RUN is wrapped in the red terminal escape).
"""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


def stream(text: str) -> Message:
    return {"stream": text}


def step(n: int, total: int, original: str) -> list[Message]:
    return [stream(f"Step {n}/{total} : {original}"), stream("\n")]


def image(image_id: str) -> Message:
    return stream(f" ---> {short(image_id)}\n")


def using_cache() -> Message:
    return stream(" ---> Using cache\n")


def running_in(container_id: str) -> Message:
    return stream(f" ---> Running in {container_id[:12]}\n")


def removing(container_id: str) -> Message:
    return stream(f"Removing intermediate container {container_id[:12]}\n")


def stdout(data: str) -> Message:
    return stream(data)


def stderr(data: str) -> Message:
    return stream(f"\x1b[91m{data}\x1b[0m")


def aux_id(image_id: str) -> Message:
    return {"aux": {"ID": image_id}}


def built(image_id: str) -> Message:
    return stream(f"Successfully built {short(image_id)}\n")


def tagged(familiar: str) -> Message:
    return stream(f"Successfully tagged {familiar}\n")


def unused_args(names: list[str]) -> Message:
    return stream(f"[Warning] One or more build-args [{' '.join(sorted(names))}] "
                  "were not consumed\n")


def error(message: str, code: int | None = None) -> Message:
    detail: dict[str, Any] = {"message": message}
    if code is not None:
        detail = {"code": code, "message": message}
    return {"errorDetail": detail, "error": message}


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def downloaded(size: int) -> list[Message]:
    """ADD <url>: the download's progress (as dockerd's last update), then a newline."""
    bar = "[" + "=" * 50 + ">] " + f"{human_size(size):>8}/{human_size(size)}"
    return [{"status": "Downloading", "progressDetail": {"current": size, "total": size},
             "progress": bar}, stream("\n")]


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, 4 significant digits."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"
