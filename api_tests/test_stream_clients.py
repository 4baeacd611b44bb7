"""Attach and exec output through docker-py, which reads the 101 response head
through a buffer and then switches to the raw socket: output that arrives
together with the head would be lost to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_exec_run_never_loses_output(dockerpy: Any, busybox_image: str,
                                     unique_name: Callable[..., str]) -> None:
    ctr = dockerpy.containers.run(busybox_image, "sleep 300", name=unique_name("xr"),
                                  detach=True)
    try:
        expected = ctr.exec_run("cat /etc/passwd").output
        assert expected.startswith(b"root:")
        results = [ctr.exec_run("cat /etc/passwd") for _ in range(30)]
        assert [(r.exit_code, r.output) for r in results] == [(0, expected)] * 30
        demuxed = ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
        assert demuxed.exit_code == 3
        assert demuxed.output == (b"out\n", b"err\n")
    finally:
        ctr.remove(force=True)


def test_run_output_through_docker_py(dockerpy: Any, busybox_image: str) -> None:
    for _ in range(10):
        out = dockerpy.containers.run(busybox_image, ["echo", "hello"], remove=True)
        assert out == b"hello\n"
