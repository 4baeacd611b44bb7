"""BuildKit front end: the /session and /grpc endpoints BuildKit clients (buildx, Compose) use."""
