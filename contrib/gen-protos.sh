#!/bin/sh
# Regenerates the Python modules of every .proto under dockerd_py/protos (make protos).
# Import paths in the .proto files are relative to the repository root, so the generated
# modules import each other as dockerd_py.protos.<pkg>.<name>_pb2. Only a file that
# declares a service gets a _pb2_grpc module.
set -eu
cd "$(dirname "$0")/.."
find dockerd_py/protos -name '*.proto' | sort | while read -r proto; do
	grpc_out=""
	if grep -q '^service ' "$proto"; then grpc_out="--grpc_python_out=."; fi
	python3 -m grpc_tools.protoc -I. --python_out=. --pyi_out=. $grpc_out "$proto"
done
