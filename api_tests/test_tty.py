"""Interactive use through a real pseudo-terminal: `docker run -it`, resize, detach, exec.

The stock CLI runs on the slave side of a pty that the test drives as a person
at a terminal would: typing commands, resizing the window, pressing the detach
keys. Output is read until an expected marker shows up.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import DOCKER_CLI


class Terminal:
    def __init__(self, env: dict[str, str], *args: str, rows: int = 24, cols: int = 80) -> None:
        self.master, slave = pty.openpty()
        self.resize(rows, cols)
        self.proc = subprocess.Popen([DOCKER_CLI, *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def winch(self) -> None:
        os.killpg(self.proc.pid, signal.SIGWINCH)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, marker: bytes, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{marker!r} not seen; output so far: {self.output!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {marker!r}: {self.output!r}")
                self.output += chunk
        return self.output

    def until(self, command: bytes, marker: bytes, timeout: float = 15.0,
              before: Callable[[], None] | None = None) -> None:
        """Type command again until its output shows marker (e.g. a resize to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            if before is not None:
                before()
                time.sleep(0.2)
            self.send(command)
            try:
                self.expect(marker, timeout=1.0)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    def wait(self, timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    pass
        return self.proc.wait(timeout=1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(daemon: Any) -> Any:
    opened: list[Terminal] = []

    def open_terminal(*args: str, **size: int) -> Terminal:
        t = Terminal(daemon.cli_env(), *args, **size)
        opened.append(t)
        return t

    yield open_terminal
    for t in opened:
        t.close()


def test_run_it_shell_size_resize_and_exit_code(terminal: Callable[..., Terminal],
                                                busybox_image: str) -> None:
    # Markers are computed by the shell ($((6*7))): the terminal's own echo of what
    # was typed before the CLI switched it to raw mode cannot match them.
    t = terminal("run", "-it", "--rm", busybox_image, "sh", rows=33, cols=101)
    t.send(b"stty size; echo R$((6*7))\r")
    t.expect(b"33 101\r\nR42")
    t.resize(40, 120)  # the kernel sends SIGWINCH; the CLI calls /resize
    # The CLI installs its SIGWINCH handler only after the start request returned,
    # which may be after the first output: repeat the signal until the size arrives.
    t.until(b"stty size; echo S$((6*7))\r", b"40 120\r\nS42", before=t.winch)
    t.send(b"exit 7\r")
    assert t.wait() == 7


def test_ctrl_c_reaches_the_foreground_process(terminal: Callable[..., Terminal],
                                               busybox_image: str) -> None:
    t = terminal("run", "-it", "--rm", busybox_image, "sh")
    t.send(b"echo T$((6*7))\r")
    t.expect(b"T42")
    t.send(b"sleep 30\r")
    time.sleep(1.0)
    t.send(b"\x03")  # the container's tty turns ^C into SIGINT for sleep
    t.send(b"echo AFTER-$((100+$?))\r")
    t.expect(b"AFTER-230", timeout=10)
    t.send(b"exit 0\r")
    assert t.wait() == 0


def test_detach_keys_leave_the_container_running(terminal: Callable[..., Terminal], docker: Any,
                                                 busybox_image: str,
                                                 unique_name: Callable[..., str]) -> None:
    name = unique_name("tty")
    try:
        t = terminal("run", "-it", "--name", name, busybox_image, "sh")
        t.send(b"echo U$((6*7))\r")
        t.expect(b"U42")
        t.send(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.wait() == 0
        status = docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
        assert status == "running"
        again = terminal("attach", name)
        again.until(b"echo V$((6*7))\r", b"V42")
        again.send(b"exit 4\r")
        assert again.wait() == 4
        assert docker("wait", name).stdout.strip() == "4"
    finally:
        docker("rm", "-f", name, check=False)


def test_exec_it_has_a_tty_of_the_terminal_size(terminal: Callable[..., Terminal], docker: Any,
                                                busybox_image: str,
                                                unique_name: Callable[..., str]) -> None:
    name = unique_name("ttyx")
    try:
        docker("run", "-d", "--name", name, busybox_image, "sleep", "300")
        t = terminal("exec", "-it", name, "sh", rows=20, cols=90)
        t.send(b"tty; stty size; echo W$((6*7))\r")
        t.expect(b"20 90\r\nW42")
        assert b"/dev/pts/" in t.output
        t.send(b"exit 9\r")
        assert t.wait() == 9
    finally:
        docker("rm", "-f", name, check=False)


def test_exec_into_a_container_started_before_a_daemon_restart(daemon: Any, docker: Any,
                                                               busybox_image: str,
                                                               unique_name: Callable[..., str]
                                                               ) -> None:
    name = unique_name("live")
    try:
        docker("run", "-d", "--name", name, busybox_image, "sleep", "300")
        pid = docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        daemon.kill9_and_restart()
        assert docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip() == pid
        out = docker("exec", name, "sh", "-c", "echo from-exec; exit 6", check=False)
        assert out.returncode == 6
        assert out.stdout == "from-exec\n"
        echoed = docker("exec", "-i", name, "cat", input="piped\n")
        assert echoed.stdout == "piped\n"
    finally:
        docker("rm", "-f", name, check=False)
