"""crictl (cri-tools v1.36, client-go's SPDY and websocket clients) against our streaming
server: exec with and without stdin/TTY, exit codes, attach, port-forward, over SPDY
(crictl's default) and over websockets (--transport websocket: v5.channel.k8s.io for
exec, the SPDY-over-websocket tunnel for port-forward)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
from concurrent.futures import ThreadPoolExecutor

import pytest

from ..cri.conftest import CRICTL, CriRun
from ..lifetime import die_with_test_run
from ..registry.fixtures import free_port
from .conftest import PAGE, WEB_PORT, Pod

TRANSPORTS = ["spdy", "websocket"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_output_and_stderr(crictl: CriRun, stream_pod: Pod, transport: str) -> None:
    done = crictl("exec", "-r", transport, stream_pod.web, "sh", "-c",
                  "echo to-stdout; echo to-stderr >&2")
    assert done.stdout == "to-stdout\n"
    assert "to-stderr\n" in done.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_exit_code(crictl: CriRun, stream_pod: Pod, transport: str) -> None:
    done = crictl("exec", "-r", transport, stream_pod.web, "sh", "-c", "echo before; exit 7",
                  check=False)
    assert done.returncode != 0
    assert done.stdout == "before\n"
    assert "command terminated with exit code 7" in done.stderr


def test_exec_missing_command(crictl: CriRun, stream_pod: Pod) -> None:
    done = crictl("exec", stream_pod.web, "/no/such/command", check=False)
    assert done.returncode != 0
    assert "/no/such/command" in done.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_stdin(crictl: CriRun, stream_pod: Pod, transport: str) -> None:
    """-i without a TTY: the client's EOF ends the command's stdin (v5's close signal
    over websockets, a FIN over SPDY)."""
    data = "".join(f"line {i}\n" for i in range(20000))
    done = crictl("exec", "-i", "-r", transport, stream_pod.web, "cat", input=data)
    assert done.stdout == data
    done = crictl("exec", "-i", "-r", transport, stream_pod.web, "wc", "-l", input=data)
    assert done.stdout.strip() == "20000"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_stdin_backpressure(crictl: CriRun, stream_pod: Pod, transport: str) -> None:
    """More stdin than the server buffers (4 MiB a SPDY connection, 1 MiB a websocket
    channel) while the command does not read yet: the server stops reading the client,
    then resumes, and nothing is lost."""
    data = "x" * (24 << 20)
    done = crictl("exec", "-i", "-r", transport, stream_pod.web, "sh", "-c",
                  "sleep 2; wc -c", input=data)
    assert done.stdout.strip() == str(len(data))


def test_exec_sync(crictl: CriRun, stream_pod: Pod) -> None:
    done = crictl("exec", "-s", stream_pod.web, "cat", "/w/index.html")
    assert PAGE in done.stdout


def _pty_run(args: list[str], script: bytes, rows: int, cols: int) -> tuple[int, bytes]:
    """Run crictl on a pseudo-terminal of the given size, type script, collect the screen."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([str(CRICTL), *args], stdin=slave, stdout=slave, stderr=slave,
                            preexec_fn=lambda: (os.setsid(), fcntl.ioctl(0, termios.TIOCSCTTY, 0),
                                                die_with_test_run()))
    os.close(slave)
    out = b""
    os.write(master, script)
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every slave end is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    return code, out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exec_tty_and_resize(crictl: CriRun, cri_daemon: object, stream_pod: Pod,
                             transport: str) -> None:
    """-it: a TTY whose size is the client terminal's (the resize stream), raw input."""
    config = str(cri_daemon.tmp / "crictl.yaml")  # type: ignore[attr-defined]
    code, out = _pty_run(["--config", config, "exec", "-it", "-r", transport,
                          stream_pod.web, "sh"],
                         b"stty size; tty; echo marker-$((6*7)); exit 3\n", 37, 123)
    text = out.decode(errors="replace")
    assert "37 123" in text, text
    assert "/dev/pts/" in text, text
    assert "marker-42" in text, text
    assert code != 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach_stdin_once(crictl: CriRun, stream_pod: Pod, transport: str) -> None:
    """attach -i to a container with stdin_once: output of what it reads; the client's EOF
    closes the container's stdin and the attach ends with the container."""
    done = crictl("attach", "-i", "-r", transport, stream_pod.reader[transport],
                  input="one\ntwo\n")
    assert "got:one\ngot:two\n" in done.stdout
    assert "reader-done" in done.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_attach_tty_and_resize(cri_daemon: object, stream_pod: Pod, transport: str) -> None:
    """attach -it to a container on a TTY: its terminal takes the client's size."""
    config = str(cri_daemon.tmp / "crictl.yaml")  # type: ignore[attr-defined]
    code, out = _pty_run(["--config", config, "attach", "-it", "-r", transport,
                          stream_pod.shell[transport]],
                         b"stty size; echo marker-$((6*7)); exit 0\n", 41, 97)
    text = out.decode(errors="replace")
    assert "41 97" in text, text
    assert "marker-42" in text, text


def _forward(crictl_args: list[str], local: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([str(CRICTL), *crictl_args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_test_run)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "Forwarding from" not in line:
        proc.kill()
        pytest.fail(f"crictl port-forward: {line}{proc.stdout.read()}")
    return proc


def _http_get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_port_forward(cri_daemon: object, stream_pod: Pod, transport: str) -> None:
    """Traffic to 127.0.0.1:8080 inside the pod's network namespace, connections at once
    over one forwarding session."""
    config = str(cri_daemon.tmp / "crictl.yaml")  # type: ignore[attr-defined]
    local = free_port()
    proc = _forward(["--config", config, "port-forward", "-r", transport, stream_pod.id,
                     f"{local}:{WEB_PORT}"], local)
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: _http_get(local), range(24)))
        for reply in replies:
            assert reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n")[0]
            assert PAGE.encode() in reply
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def test_port_forward_closed_port(cri_daemon: object, stream_pod: Pod) -> None:
    """Nothing listens on the port in the pod: the error stream says so and the local
    connection ends; the session stays up for the next one."""
    config = str(cri_daemon.tmp / "crictl.yaml")  # type: ignore[attr-defined]
    local = free_port()
    proc = _forward(["--config", config, "port-forward", stream_pod.id, f"{local}:1"], local)
    try:
        assert _http_get(local) == b""
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        rest = proc.stdout.read()
        proc.wait(timeout=30)
    assert "error forwarding port 1" in rest
