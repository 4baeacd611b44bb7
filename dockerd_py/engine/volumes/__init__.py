"""Volumes: the contract, the local driver's records, device mounts and data, and the service."""
