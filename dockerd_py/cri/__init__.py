"""The Kubernetes Container Runtime Interface (runtime.v1) served from the engine.

Pod sandboxes and their containers are engine containers, made through the same
container service as the Docker API's, told apart by their labels and names
(meta.py); the CRI view is computed from the engine's records at every call, so
it survives daemon restarts and never disagrees with `docker ps`.
"""
