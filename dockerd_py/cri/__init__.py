"""The Kubernetes CRI front end (issue 13)."""
