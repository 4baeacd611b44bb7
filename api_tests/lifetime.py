"""Daemons the tests start die with the test run, even one killed with SIGKILL.

A pytest killed by a timeout or ^C twice never reaches its teardowns; without this its
daemons would live on as orphans holding bridges, firewall rules and mounts."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
_test_run_pid = os.getpid()


def die_with_test_run() -> None:
    """A Popen preexec_fn: SIGTERM (a clean shutdown) when the test run goes away."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != _test_run_pid:  # the run died before prctl took hold
        os._exit(1)
