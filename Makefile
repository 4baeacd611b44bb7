# dockerd-py — build, run and test. Works as root on a fresh Debian 12 with python3 + pip.
#
#   make deps             install missing Debian packages and the Python package (.[test])
#   make run              run the daemon on $(SOCKET) with $(DATA_ROOT); extra flags in DOCKERD_FLAGS
#   make test             run the API tests; extra pytest flags in PYTEST_ARGS
#   make busybox          build/busybox-rootfs.tar, the offline test image
#   make bench            bench/run.py, when it exists
#   make protos           regenerate dockerd_py/protos/**/*_pb2*.py from their .proto files
#   make reference-deps   install docker.io, the reference daemon the benchmarks compare against
#
# `deps` is cheap when nothing is missing, so every target can depend on it.

PYTHON ?= python3
SOCKET ?= /var/run/docker.sock
DATA_ROOT ?= /var/lib/dockerd-py
DOCKERD_FLAGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

DEB_PACKAGES := busybox-static runc crun conmon tini zstd iproute2 netavark aardvark-dns \
	containernetworking-plugins
# The tests also produce archives with reference tools, compare with Docker's own dockerd and
# push to and pull from the reference registry (docker-registry, run by the tests on 127.0.0.1);
# gcc -static builds critest's image stand-ins (../shared/cri/mkimages.py) and a static ssh-agent
# client for busybox; openssh-client is the real ssh-agent behind the BuildKit --ssh tests.
TEST_PACKAGES := skopeo umoci docker.io docker-registry strace gcc libc6-dev openssh-client \
	xz-utils bzip2
REFERENCE_PACKAGES := docker.io
# What `import` must find for the tests to run; when one fails, pip installs the project again.
PY_PROBE := import aiohttp, isal, zstandard, grpc, google.protobuf, grpc_tools, pytest, pytest_asyncio, hypothesis, docker, aiodocker, cryptography, requests, schemathesis, yaml

SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_ENV := DEBIAN_FRONTEND=noninteractive
# Debian's own python3 refuses pip installs outside a venv (PEP 668) unless told; older pips
# ignore these variables.
PIP_ENV := PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

BUSYBOX_TAR := build/busybox-rootfs.tar

# apt-install(list): apt-get install the packages of the list that dpkg does not report as
# installed; `apt-get update` only when there is something to install.
define apt-install
@missing=""; for p in $(1); do \
	dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
	echo "installing:$$missing"; \
	$(SUDO) $(APT_ENV) apt-get update -qq && \
	$(SUDO) $(APT_ENV) apt-get install -y -qq $$missing; \
fi
endef

.PHONY: all deps deps-system deps-python reference-deps run test busybox bench protos clean

all: test

deps: deps-system deps-python

deps-system:
	$(call apt-install,$(DEB_PACKAGES))
	@command -v docker >/dev/null || \
		echo "warning: no docker CLI on PATH; the API tests drive the daemon with it" >&2

deps-python:
	@$(PYTHON) -c '$(PY_PROBE)' 2>/dev/null || \
		$(PIP_ENV) $(PYTHON) -m pip install -q -e '.[test]'

reference-deps:
	$(call apt-install,$(REFERENCE_PACKAGES))

run: deps
	$(PYTHON) -m dockerd_py -H unix://$(SOCKET) --data-root $(DATA_ROOT) $(DOCKERD_FLAGS)

test: deps
	$(call apt-install,$(TEST_PACKAGES))
	$(PYTHON) -m pytest -q api_tests $(PYTEST_ARGS)

busybox: $(BUSYBOX_TAR)

$(BUSYBOX_TAR): contrib/make-busybox-rootfs.sh | deps-system
	contrib/make-busybox-rootfs.sh $@

protos: deps-python
	contrib/gen-protos.sh

bench: deps
	@if [ -f bench/run.py ]; then $(PYTHON) bench/run.py $(BENCH_ARGS); \
	else echo "bench/run.py does not exist yet"; fi

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
