"""Generated gRPC and protobuf modules, one sub-package per wire contract.

Every `.proto` here is written for this project from the public contract it names
(kubernetes/cri-api, moby/buildkit, tonistiigi/fsutil); the `*_pb2.py`, `*_pb2.pyi` and
`*_pb2_grpc.py` next to it are generated from it by `make protos` (grpcio-tools) and committed,
so that installing the daemon needs no code generator. Edit the `.proto`, never the output.
"""
