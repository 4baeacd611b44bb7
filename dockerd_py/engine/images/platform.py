"""The platform this daemon runs images for, in OCI terms."""

import platform as _platform

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

OS = "linux"
ARCH = _ARCH.get(_platform.machine(), _platform.machine())
