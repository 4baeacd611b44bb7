"""dockerd-py: a Docker Engine-compatible daemon.

gRPC (the CRI and BuildKit front ends) registers fork handlers that can abort a child forked
beside its threads before the child's exec (Python forks rather than vforks when a
subprocess has a preexec_fn, as the tests' processes do). Nothing forks a process that
goes on using gRPC, so they are turned off before any module imports grpc.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
