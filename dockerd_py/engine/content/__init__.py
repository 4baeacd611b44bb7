"""The content store: contract.py says what it promises, local.py keeps it on disk."""
