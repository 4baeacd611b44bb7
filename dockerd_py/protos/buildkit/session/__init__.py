"""BuildKit's session services, which a client (buildx) serves to the daemon over /session."""
