"""The Dockerfile builder: parser, expansion, .dockerignore, dispatcher, cache."""
